// Journey 6: a stored image to Adobe Stock. Readiness (what the agency would refuse, and how
// to fix it), a metadata editor that lints as one types (title, keywords, category), then
// publish and watch the status move live: queued, uploading, uploaded, submitted, decided.
import { html, useState, useEffect, useRef } from "../lib.js";
import { get, patch, post, put, thumbnailUrl } from "../api.js";
import { hub } from "../events.js";
import { href, navigate } from "../router.js";
import { ago, bytes, plural } from "../format.js";
import { Badge, Button, Empty, ErrorNote, Icon, Loading, Segmented, useAction, useLoad, useToast } from "../ui.js";

const AGENCY = "adobe_stock";
const TITLE_MAX = 70;
const KEYWORDS_MAX = 49;
const CATEGORIES = [
  "Animals", "Buildings and Architecture", "Business", "Drinks", "The Environment",
  "States of Mind", "Food", "Graphic Resources", "Hobbies and Leisure", "Industry",
  "Landscapes", "Lifestyle", "People", "Plants and Flowers", "Culture and Religion", "Science",
  "Social Issues", "Sports", "Technology", "Transport", "Travel",
];
const STEPS = ["draft", "ready", "queued", "uploading", "uploaded", "submitted", "accepted"];
const TONES = {
  draft: "neutral", ready: "ok", blocked: "error", queued: "info", uploading: "info",
  uploaded: "info", submitted: "info", accepted: "ok", rejected: "error", failed: "error",
  withdrawn: "muted",
};
const EDITABLE = new Set(["draft", "ready", "blocked", "failed"]);
const PUBLISHABLE = new Set(["ready", "failed"]);

export function publicationStatus(status) {
  return html`<${Badge} tone=${TONES[status] || "neutral"}>${status}</${Badge}>`;
}

/** Client-side hints while typing; the server's findings are the ones that count. */
function lint({ title, keywords, category }) {
  const hints = [];
  if (!title.trim()) hints.push("Give it a title.");
  if ([...title].length > TITLE_MAX) hints.push(`The title has ${[...title].length} characters; at most ${TITLE_MAX}.`);
  if (title.includes(",")) hints.push("Adobe Stock titles cannot contain commas.");
  if (keywords.length > KEYWORDS_MAX) hints.push(`${keywords.length} keywords; at most ${KEYWORDS_MAX}.`);
  if (keywords.length < 5) hints.push("Add keywords: most relevant first, the first 10 matter most.");
  if (!category) hints.push("Choose a category.");
  return hints;
}

function onPublicationEvents(listener) {
  return hub.subscribe((type, payload) => {
    if (type.startsWith("publication.") && payload.publication) listener(payload.publication, type);
  });
}

// --- the agency account -----------------------------------------------------------------

function Account() {
  const toast = useToast();
  const account = useLoad((signal) => get(`/api/v1/publications/accounts/${AGENCY}`, undefined, { signal })
    .catch((error) => { if (error.status === 404) return null; throw error; }), []);
  const [open, setOpen] = useState(false);
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [save, saving, error] = useAction(async () => {
    account.setData(await put(`/api/v1/publications/accounts/${AGENCY}`, { username, password }));
    setPassword("");
    setOpen(false);
    toast("Adobe Stock account saved");
  });
  if (account.loading && account.data === null) return html`<${Loading} label="Checking your Adobe Stock account…" />`;
  if (account.error) return html`<${ErrorNote} error=${account.error} onRetry=${account.reload} compact />`;
  const data = account.data;
  return html`<section class="panel account-panel" aria-labelledby="account-title">
    <div class="row spread wrap">
      <div>
        <h2 id="account-title">Adobe Stock account</h2>
        <p class="muted small">${data ? html`Uploads go to <code>${data.username}@${data.host}</code> over SFTP. The password is kept encrypted and never shown.`
          : "Uploads need your Adobe Stock SFTP login (Adobe Stock Contributor → Upload → SFTP)."}</p>
      </div>
      ${!open && html`<${Button} kind=${data ? "ghost" : "primary"} icon="edit" onClick=${() => setOpen(true)}>${data ? "Change" : "Set up"}</${Button}>`}
    </div>
    ${open && html`<form class="row wrap account-form" onSubmit=${(e) => { e.preventDefault(); save(); }}>
      <label class="field field-grow"><span class="field-label">SFTP user</span>
        <input value=${username} required maxlength="200" autocomplete="username" onInput=${(e) => setUsername(e.currentTarget.value)} /></label>
      <label class="field field-grow"><span class="field-label">SFTP password</span>
        <input type="password" value=${password} required maxlength="500" autocomplete="current-password"
          onInput=${(e) => setPassword(e.currentTarget.value)} /></label>
      <${Button} kind="primary" type="submit" busy=${saving}>Save</${Button}>
      <${Button} kind="ghost" onClick=${() => setOpen(false)}>Cancel</${Button}>
    </form>`}
    <${ErrorNote} error=${error} compact />
  </section>`;
}

// --- a new publication from an image ----------------------------------------------------

function NewPublication({ imageId }) {
  const [enlarge, setEnlarge] = useState(1);
  const [publishWhenReady, setPublishWhenReady] = useState(true);
  const readiness = useLoad((signal) => get("/api/v1/publications/readiness",
    { image_id: imageId, agency: AGENCY, enlarge }, { signal }), [imageId, enlarge]);
  const [create, creating, error] = useAction(async () => {
    const created = await post("/api/v1/publications", {
      image_ids: [imageId], agency: AGENCY, enlarge, publish_when_ready: publishWhenReady,
    });
    if (created.errors.length) throw { title: "Not published", detail: created.errors[0].detail };
    navigate("publish", created.items[0].id);
  });
  // The publisher learns of stored images from the event stream: a just-stored image may
  // take a moment to reach it.
  const [waits, setWaits] = useState(0);
  const learning = readiness.error && readiness.error.status === 404 && waits < 10;
  useEffect(() => {
    if (!learning) return undefined;
    const timer = setTimeout(() => { setWaits((n) => n + 1); readiness.reload(); }, 1000);
    return () => clearTimeout(timer);
  }, [learning, waits]);
  const r = readiness.data;
  return html`<section class="panel new-publication" aria-labelledby="new-publication-title">
    <h2 id="new-publication-title">Publish this image</h2>
    <div class="publication-layout">
      <img class="publication-image" src=${thumbnailUrl(imageId)} alt="The image to publish" />
      <div class="stack">
        <div class="field"><span class="field-label">Enlarge before upload</span>
          <${Segmented} label="Enlarge" name="enlarge" value=${enlarge} onChange=${setEnlarge}
            options=${[1, 2, 3, 4].map((n) => ({ value: n, label: n === 1 ? "As is" : `${n}×` }))} /></div>
        ${learning ? html`<${Loading} label="The image is on its way to the publisher…" />`
          : readiness.loading && !r ? html`<${Loading} label="Checking what Adobe Stock accepts…" />`
          : readiness.error ? html`<${ErrorNote} error=${readiness.error} onRetry=${readiness.reload} />`
          : r && html`<div class=${`readiness ${r.ready ? "readiness-ok" : ""}`} role="status">
              <p><${Icon} name=${r.ready ? "check" : "alert"} />
                ${r.ready ? "Ready for Adobe Stock" : "Not ready yet"} · ${(Math.floor(r.megapixels * 10) / 10).toFixed(1)} megapixels
                ${r.suggested_file_type && ` · ${r.suggested_file_type}`}</p>
              ${r.findings.length > 0 && html`<ul class="findings">${r.findings.map((f) => html`<li><${Icon} name="alert" size=${14} /><span>${f.message}</span></li>`)}</ul>`}
            </div>`}
        <label class="check"><input type="checkbox" checked=${publishWhenReady}
          onChange=${(e) => setPublishWhenReady(e.currentTarget.checked)} />
          <span>Upload as soon as its metadata is ready</span></label>
        <p class="muted small">The language model suggests a title, keywords and a category from the prompt;
          you can edit them before or after.</p>
        <${ErrorNote} error=${error} />
        <div class="row"><${Button} kind="primary" icon="upload" busy=${creating} onClick=${create}>Create publication</${Button}>
          <a class="btn btn-ghost" href=${href("publish")}>Cancel</a></div>
      </div>
    </div>
  </section>`;
}

// --- the list ---------------------------------------------------------------------------

function PublicationList() {
  const list = useLoad((signal) => get("/api/v1/publications", { limit: 100 }, { signal }), []);
  useEffect(() => onPublicationEvents((publication) => list.setData((page) => {
    if (!page) return page;
    const known = page.items.some((p) => p.id === publication.id);
    const items = known ? page.items.map((p) => (p.id === publication.id ? publication : p)) : [publication, ...page.items];
    return { ...page, items };
  })), []);
  if (list.loading && !list.data) return html`<${Loading} label="Loading publications…" />`;
  if (list.error) return html`<${ErrorNote} error=${list.error} onRetry=${list.reload} />`;
  const items = list.data.items;
  if (items.length === 0) {
    return html`<${Empty} icon="upload" title="Nothing published yet"
      actions=${html`<a class="btn btn-primary" href=${href("gallery", null, { show: "upscale" })}><${Icon} name="grid" /><span>Choose an upscale</span></a>`}>
      Open an image in the Gallery and choose Publish: Imagetron checks it, writes its metadata and uploads it.</${Empty}>`;
  }
  return html`<ul class="publication-list" aria-label="Publications">
    ${items.map((p) => html`<li key=${p.id}><a class="publication-row" href=${href("publish", p.id)} data-publication-id=${p.id} data-status=${p.status}>
      <img src=${thumbnailUrl(p.source.image_id)} alt="" loading="lazy" />
      <span class="publication-title">${p.status === "draft" && !p.metadata.title ? "Writing metadata…" : p.metadata.title || "Untitled"}</span>
      <span class="muted small">${plural(p.metadata.keywords.length, "keyword")} · ${ago(p.updated_at)}</span>
      ${p.findings.length > 0 && html`<span class="small finding-count">${plural(p.findings.length, "finding")}</span>`}
      ${publicationStatus(p.status)}
    </a></li>`)}
  </ul>`;
}

// --- the editor -------------------------------------------------------------------------

function Keywords({ keywords, onChange, disabled }) {
  const [draft, setDraft] = useState("");
  const input = useRef(null);
  const add = (text) => {
    const words = text.split(",").map((w) => w.trim().toLowerCase()).filter(Boolean);
    const next = [...keywords];
    for (const word of words) if (!next.includes(word)) next.push(word);
    onChange(next);
    setDraft("");
  };
  const onKey = (event) => {
    if ((event.key === "Enter" || event.key === ",") && draft.trim()) {
      event.preventDefault();
      add(draft);
    } else if (event.key === "Backspace" && !draft && keywords.length) {
      onChange(keywords.slice(0, -1));
    }
  };
  const over = keywords.length > KEYWORDS_MAX;
  return html`<div class="field">
    <div class="row spread"><span class="field-label" id="keywords-label">Keywords</span>
      <span class=${`counter ${over ? "over" : ""}`} aria-live="polite">${keywords.length}/${KEYWORDS_MAX}</span></div>
    <ul class="keywords" aria-labelledby="keywords-label">
      ${keywords.map((word, index) => html`<li key=${word} class=${index < 10 ? "top" : ""}>
        <span>${word}</span>
        ${!disabled && html`<button type="button" aria-label=${`Remove ${word}`} onClick=${() => onChange(keywords.filter((w) => w !== word))}>
          <${Icon} name="close" size=${12} /></button>`}
      </li>`)}
    </ul>
    ${!disabled && html`<input ref=${input} value=${draft} placeholder="Add keywords: Enter or a comma after each"
      aria-label="Add keywords" onInput=${(e) => { const v = e.currentTarget.value; if (v.endsWith(",")) add(v); else setDraft(v); }}
      onKeyDown=${onKey} onBlur=${() => draft.trim() && add(draft)} />`}
    <span class="field-help">The first 10 (highlighted) matter most to Adobe Stock's search.</span>
  </div>`;
}

function Stepper({ status }) {
  const at = STEPS.indexOf(status === "blocked" ? "ready" : status);
  const ended = ["rejected", "failed", "withdrawn"].includes(status);
  return html`<ol class="stepper" aria-label="Progress">
    ${STEPS.map((step, index) => html`<li key=${step}
      class=${index < at ? "done" : index === at ? "now" : ""} aria-current=${index === at ? "step" : undefined}>${step}</li>`)}
    ${ended && html`<li class="now ended" aria-current="step">${status}</li>`}
  </ol>`;
}

function Editor({ id }) {
  const toast = useToast();
  const loaded = useLoad((signal) => get(`/api/v1/publications/${id}`, undefined, { signal }), [id]);
  const [form, setForm] = useState(null);
  const [dirty, setDirty] = useState(false);
  const publication = loaded.data;
  useEffect(() => {
    if (publication && !dirty) {
      const m = publication.metadata;
      setForm({ title: m.title, keywords: m.keywords, category: m.category, file_type: m.file_type,
        fictional_people_and_property: m.fictional_people_and_property });
    }
  }, [publication, dirty]);
  useEffect(() => onPublicationEvents((p) => { if (p.id === id) loaded.setData(p); }), [id]);
  const change = (field, value) => { setForm((f) => ({ ...f, [field]: value })); setDirty(true); };

  const [save, saving, saveError] = useAction(async () => {
    loaded.setData(await patch(`/api/v1/publications/${id}`, { metadata: form }));
    setDirty(false);
    toast("Metadata saved");
  });
  const [act, acting, actError] = useAction(async (what) => {
    loaded.setData(await post(`/api/v1/publications/${id}/${what}`));
    setDirty(false);
    toast(what === "publish" ? "Queued for upload" : what === "suggest" ? "Asking for new metadata…" : "Withdrawn");
  });

  if (loaded.loading && !publication) return html`<${Loading} label="Opening the publication…" />`;
  if (loaded.error && !publication) return html`<${ErrorNote} error=${loaded.error} onRetry=${loaded.reload} />`;
  if (!form) return null;
  const editable = EDITABLE.has(publication.status);
  const hints = editable ? lint(form) : [];
  const titleLength = [...form.title].length;
  return html`<div class="publication-editor" data-publication-id=${id} data-status=${publication.status}>
    <a class="back" href=${href("publish")}><${Icon} name="back" size=${16} /> Publications</a>
    <header class="screen-head"><h1>${publication.metadata.title || "New publication"} ${publicationStatus(publication.status)}</h1></header>
    <${Stepper} status=${publication.status} />
    ${publication.status === "draft" && html`<p class="note note-info" role="status"><${Icon} name="spark" />The language model is writing a title, keywords and a category…</p>`}
    ${publication.error && html`<${ErrorNote} error=${{ title: publication.status === "failed" ? "The upload failed" : "Note", detail: publication.error }} />`}
    ${publication.rejection_reason && html`<${ErrorNote} error=${{ title: "Adobe Stock rejected it", detail: publication.rejection_reason }} />`}
    <div class="publication-layout">
      <div class="stack">
        <img class="publication-image" src=${thumbnailUrl(publication.source.image_id)} alt=${publication.metadata.title || "The image"} />
        <p class="muted small">${publication.source.width}×${publication.source.height}${publication.enlarge > 1 ? `, enlarged ${publication.enlarge}×` : ""}
          ${publication.file && html`<br />Prepared: ${publication.file.name}, ${publication.file.width}×${publication.file.height}, ${bytes(publication.file.bytes)}`}</p>
      </div>
      <form class="stack metadata" onSubmit=${(e) => { e.preventDefault(); save(); }} aria-label="Stock metadata">
        ${publication.findings.length > 0 && html`<div><p class="field-label">What stops it</p>
          <ul class="findings">${publication.findings.map((f) => html`<li><${Icon} name="alert" size=${14} /><span>${f.match && html`<strong>${f.match}</strong> · `}${f.message}</span></li>`)}</ul></div>`}
        <label class="field">
          <span class="row spread"><span class="field-label">Title</span>
            <span class=${`counter ${titleLength > TITLE_MAX ? "over" : ""}`} aria-live="polite">${titleLength}/${TITLE_MAX}</span></span>
          <input value=${form.title} maxlength="200" disabled=${!editable} onInput=${(e) => change("title", e.currentTarget.value)} />
        </label>
        <${Keywords} keywords=${form.keywords} disabled=${!editable} onChange=${(k) => change("keywords", k)} />
        <div class="row wrap">
          <label class="field"><span class="field-label">Category</span>
            <select value=${form.category ?? ""} disabled=${!editable}
              onChange=${(e) => change("category", e.currentTarget.value ? Number(e.currentTarget.value) : null)}>
              <option value="">Choose…</option>
              ${CATEGORIES.map((name, index) => html`<option value=${index + 1}>${index + 1} · ${name}</option>`)}
            </select></label>
          <div class="field"><span class="field-label">File type</span>
            <${Segmented} label="File type" name="file_type" value=${form.file_type}
              onChange=${(v) => editable && change("file_type", v)}
              options=${[{ value: "photo", label: "Photo" }, { value: "illustration", label: "Illustration" }]} /></div>
        </div>
        <label class="check"><input type="checkbox" checked disabled />
          <span>Created using generative AI tools (always, as Adobe Stock requires)</span></label>
        <label class="check"><input type="checkbox" checked=${form.fictional_people_and_property} disabled=${!editable}
          onChange=${(e) => change("fictional_people_and_property", e.currentTarget.checked)} />
          <span>People and property are fictional</span></label>
        ${hints.length > 0 && html`<ul class="hints" aria-label="Before publishing">${hints.map((h) => html`<li>${h}</li>`)}</ul>`}
        <${ErrorNote} error=${saveError || actError} compact />
        <div class="row wrap">
          ${editable && html`<${Button} kind="secondary" type="submit" icon="check" busy=${saving} disabled=${!dirty}>Save</${Button}>`}
          ${editable && html`<${Button} kind="ghost" icon="spark" busy=${acting} onClick=${() => act("suggest")}>Suggest again</${Button}>`}
          ${PUBLISHABLE.has(publication.status) && html`<${Button} kind="primary" icon="upload" busy=${acting} disabled=${dirty}
            onClick=${() => act("publish")}>${publication.status === "failed" ? "Try the upload again" : "Publish"}</${Button}>`}
          ${!["withdrawn", "uploading", "accepted", "rejected"].includes(publication.status) && html`<${Button} kind="ghost" icon="stop" busy=${acting}
            onClick=${() => act("withdraw")}>Withdraw</${Button}>`}
        </div>
        ${dirty && PUBLISHABLE.has(publication.status) && html`<p class="muted small">Save your changes before publishing.</p>`}
      </form>
    </div>
  </div>`;
}

export function Publish({ route }) {
  const image = route.params.get("image");
  if (route.id) return html`<${Editor} key=${route.id} id=${route.id} />`;
  return html`<div class="publish">
    <header class="screen-head"><h1>Publish</h1></header>
    <${Account} />
    ${image && html`<${NewPublication} key=${image} imageId=${image} />`}
    <section aria-labelledby="publications-title" class="publications">
      <h2 id="publications-title">Publications</h2>
      <${PublicationList} />
    </section>
  </div>`;
}

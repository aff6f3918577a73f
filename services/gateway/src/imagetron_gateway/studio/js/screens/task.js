// Journey 4: one task. A completed grid shows its four versions with the follow-ups its
// `actions` allow (upscale, variation strong or subtle, reroll); an active task can be
// cancelled while the provider allows it. Each follow-up starts a new live card, and the
// lineage shows where this render comes from and what came of it.
import { html, useState, useEffect } from "../lib.js";
import { get, post, contentUrl, thumbnailUrl } from "../api.js";
import { store, useStore, GRID_COMMANDS } from "../store.js";
import { href, navigate } from "../router.js";
import { ago, bytes, commandLabel } from "../format.js";
import { TaskCard, TaskPicture, statusBadge } from "../cards.js";
import { Button, Dialog, ErrorNote, Icon, Loading, Progress, Segmented, useAction, useToast } from "../ui.js";

async function loadLineage(id, signal) {
  const task = await get(`/api/v1/tasks/${id}`, undefined, { signal });
  // The whole family of renders of one prompt, and their images, in two requests.
  const [family, images] = await Promise.all([
    get("/api/v1/tasks", { prompt_id: task.prompt_id, limit: 200 }, { signal }),
    get("/api/v1/images", { prompt_id: task.prompt_id, limit: 200 }, { signal }),
  ]);
  store.putAll({ tasks: [task, ...family.items], images: images.items });
  // Ancestors may belong to the same prompt (always, today); fetch any that are missing.
  let origin = task.origin_task_id;
  for (let depth = 0; origin && depth < 10 && !store.tasks.has(origin); depth += 1) {
    const parent = await get(`/api/v1/tasks/${origin}`, undefined, { signal });
    store.putTask(parent);
    origin = parent.origin_task_id;
  }
}

export function ImageViewer({ image, onClose, children }) {
  return html`<${Dialog} open=${Boolean(image)} onClose=${onClose} label="Image" class="viewer">
    ${image && html`<div class="viewer-body">
      <img src=${contentUrl(image.id)} alt=${`${image.kind} ${image.index || ""}`} />
      <div class="viewer-bar">
        <span class="muted small">${image.kind}${image.index ? ` ${image.index}` : ""} · ${image.width}×${image.height} · ${bytes(image.bytes)}</span>
        <div class="row">
          ${children}
          <a class="btn btn-secondary" href=${contentUrl(image.id)} download=${`imagetron-${image.id}.${(image.content_type || "image/png").split("/")[1]}`}>
            <${Icon} name="download" /><span>Download</span></a>
          <${Button} kind="ghost" icon="close" onClick=${onClose}>Close</${Button}>
        </div>
      </div>
    </div>`}
  </${Dialog}>`;
}

function RetryImage({ image }) {
  const [retry, busy, error] = useAction(async () => store.putImage(await post(`/api/v1/images/${image.id}/retry`)));
  return html`<div class="version-failed">
    <${Icon} name="alert" /><p class="small">${image.error || "Not stored yet."}</p>
    <${Button} kind="ghost" icon="retry" busy=${busy} onClick=${retry}>Retry</${Button}>
    <${ErrorNote} error=${error} compact />
  </div>`;
}

function Versions({ task, onView }) {
  const toast = useToast();
  const [strength, setStrength] = useState("strong");
  const versions = store.imagesOf(task.id).filter((i) => i.kind === "version");
  const can = new Set(task.actions || []);
  const [follow, busy, error] = useAction(async (kind, index) => {
    const body = kind === "variation" ? { index, strength } : kind === "upscale" ? { index } : undefined;
    const created = await post(`/api/v1/tasks/${task.id}/${kind}`, body);
    store.putTask(created);
    toast(`${commandLabel(created)} started`);
  });
  return html`<section class="versions" aria-labelledby="versions-title">
    <div class="row spread wrap">
      <h2 id="versions-title">Versions</h2>
      <div class="row wrap">
        <div class="field field-inline"><span class="field-label">Variation</span>
          <${Segmented} label="Variation strength" name="strength" value=${strength} onChange=${setStrength}
            options=${[{ value: "strong", label: "Strong" }, { value: "subtle", label: "Subtle" }]} /></div>
        ${can.has("reroll") && html`<${Button} icon="retry" busy=${busy} onClick=${() => follow("reroll")}>Reroll</${Button}>`}
      </div>
    </div>
    <${ErrorNote} error=${error} compact />
    <ol class="version-grid">
      ${[1, 2, 3, 4].map((index) => {
        const image = versions.find((v) => v.index === index);
        return html`<li key=${index} class="version">
          ${image && image.is_persisted
            ? html`<button type="button" class="version-image" onClick=${() => onView(image)}
                aria-label=${`View version ${index} at full size`}>
                <img src=${thumbnailUrl(image.id)} alt=${`Version ${index}`} decoding="async" /></button>`
            : image && image.error ? html`<${RetryImage} image=${image} />`
            : html`<div class="version-image picture-empty shimmer" role="img" aria-label=${`Version ${index} is being stored`}></div>`}
          <div class="version-actions" role="group" aria-label=${`Version ${index}`}>
            <span class="version-number" aria-hidden="true">${index}</span>
            <${Button} kind="secondary" disabled=${!can.has(`upscale${index}`) || busy} onClick=${() => follow("upscale", index)}
              aria-label=${`U${index}: upscale version ${index}`}>U${index}</${Button}>
            <${Button} kind="secondary" disabled=${!can.has(`variation${index}`) || busy} onClick=${() => follow("variation", index)}
              aria-label=${`V${index}: vary version ${index} (${strength})`}>V${index}</${Button}>
          </div>
        </li>`;
      })}
    </ol>
  </section>`;
}

function Lineage({ task }) {
  const ancestors = [];
  for (let t = task; t && t.origin_task_id && ancestors.length < 10;) {
    t = store.tasks.get(t.origin_task_id);
    if (t) ancestors.unshift(t);
  }
  const children = store.childrenOf(task.id);
  return html`<aside class="lineage" aria-labelledby="lineage-title">
    <h2 id="lineage-title">Lineage</h2>
    ${ancestors.length > 0 && html`<p class="field-label">From</p><div class="lineage-list">
      ${ancestors.map((t) => html`<${TaskCard} key=${t.id} task=${t} compact />`)}</div>`}
    <p class="field-label">This render</p>
    <div class="lineage-list"><${TaskCard} task=${task} compact current /></div>
    <p class="field-label">Follow-ups</p>
    ${children.length === 0
      ? html`<p class="muted small">${GRID_COMMANDS.has(task.command) ? "Upscales, variations and rerolls of this grid appear here, live." : "None."}</p>`
      : html`<div class="lineage-list">${children.map((t) => html`<${TaskCard} key=${t.id} task=${t} compact />`)}</div>`}
  </aside>`;
}

export function TaskScreen({ route }) {
  useStore();
  const id = route.id;
  const [state, setState] = useState({ loading: true, error: null });
  const [viewing, setViewing] = useState(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const controller = new AbortController();
    setState({ loading: true, error: null });
    loadLineage(id, controller.signal).then(() => setState({ loading: false, error: null }),
      (error) => error.name !== "AbortError" && setState({ loading: false, error }));
    return () => controller.abort();
  }, [id, tick]);
  const [cancel, cancelling, cancelError] = useAction(async () => store.putTask(await post(`/api/v1/tasks/${id}/cancel`)));

  const task = store.tasks.get(id);
  if (!task) {
    return state.error ? html`<${ErrorNote} error=${state.error} onRetry=${() => setTick((t) => t + 1)} />`
      : html`<${Loading} label="Loading the render…" />`;
  }
  const active = ["pending", "submitted", "processing"].includes(task.status);
  const cover = store.coverOf(task);
  const isGrid = GRID_COMMANDS.has(task.command);
  return html`<div class="task-screen">
    <header class="screen-head">
      <div>
        <a class="back" href=${href("create")}><${Icon} name="back" size=${16} /> Create</a>
        <h1>${commandLabel(task)} ${statusBadge(task)}</h1>
        <p class="task-prompt-full">${task.prompt_text}</p>
        <p class="muted small">${task.aspect_ratio} · ${task.process_mode} · ${task.provider} · ${ago(task.created_at)}</p>
      </div>
    </header>
    <div class="task-layout">
      <div class="task-main">
        ${active && html`<div class="panel stack">
          <div class="hero"><${TaskPicture} task=${task} alt=${task.prompt_text} /></div>
          <${Progress} value=${task.status === "processing" ? task.progress : 0} label="Progress" />
          <div class="row spread"><span class="muted">${task.status === "pending" && task.queue_position ? `Waiting for a slot · #${task.queue_position}` : `${task.status === "processing" ? `Rendering · ${task.progress}%` : task.status === "submitted" ? "Sent to the provider" : "Queued"}`}</span>
            ${(task.actions || []).includes("cancel") && html`<${Button} kind="danger" icon="stop" busy=${cancelling} onClick=${cancel}>Cancel</${Button}>`}</div>
          <${ErrorNote} error=${cancelError} compact />
        </div>`}
        ${task.status === "failed" && html`<${ErrorNote} error=${{ title: "The render failed", detail: task.error || "The provider gave no reason." }} />`}
        ${task.status === "cancelled" && html`<p class="note note-info">This render was cancelled.</p>`}
        ${task.status === "completed" && isGrid && html`<${Versions} task=${task} onView=${setViewing} />`}
        ${task.status === "completed" && !isGrid && (cover && cover.is_persisted
          ? html`<div class="panel stack upscale-view">
              <button type="button" class="hero" onClick=${() => setViewing(cover)} aria-label="View the upscale at full size">
                <img src=${thumbnailUrl(cover.id)} alt=${task.prompt_text} /></button>
              <div class="row">
                <${Button} icon="expand" onClick=${() => setViewing(cover)}>Full size</${Button}>
                <a class="btn btn-secondary" href=${contentUrl(cover.id)} download><${Icon} name="download" /><span>Download</span></a>
                <a class="btn btn-primary" href=${href("publish", null, { image: cover.id })}><${Icon} name="upload" /><span>Publish</span></a>
                <span class="muted small">${cover.width}×${cover.height} · ${bytes(cover.bytes)} · stored</span>
              </div></div>`
          : cover && cover.error ? html`<${RetryImage} image=${cover} />`
          : html`<${Loading} label="Storing the image…" />`)}
      </div>
      <${Lineage} task=${task} />
    </div>
    <${ImageViewer} image=${viewing} onClose=${() => setViewing(null)} />
  </div>`;
}

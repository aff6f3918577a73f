// A prompt with its stock-rule findings shown on the words they are about, and the actions
// its state allows: edit, retitle, approve, reject, archive, delete, render.
import { html, useState, useRef, useEffect } from "./lib.js";
import { del, patch, post, put } from "./api.js";
import { href } from "./router.js";
import { ago, plural, sliceCodePoints, codePointLength } from "./format.js";
import { Badge, Button, ErrorNote, Icon, useAction, useToast } from "./ui.js";

/** `text` with the findings on `field` marked; offsets are code points (as the API's). */
export function Highlighted({ text, findings = [], field }) {
  const spans = findings
    .filter((f) => f.field === field && f.end > f.start)
    .sort((a, b) => a.start - b.start);
  if (!text || spans.length === 0) return text || "";
  const parts = [];
  let at = 0;
  for (const finding of spans) {
    if (finding.start < at) continue; // overlapping: the first one wins
    if (finding.start > at) parts.push(sliceCodePoints(text, at, finding.start));
    parts.push(html`<mark class="finding" title=${finding.message}>${sliceCodePoints(text, finding.start, finding.end)}</mark>`);
    at = finding.end;
  }
  if (at < codePointLength(text)) parts.push(sliceCodePoints(text, at));
  return parts;
}

export function Findings({ findings }) {
  if (!findings || findings.length === 0) return null;
  return html`<ul class="findings" aria-label="Stock rules">
    ${findings.map((f) => html`<li>
      <${Icon} name="alert" size=${14} />
      <span>${f.match && html`<strong>${f.match}</strong> · `}${f.message}</span>
    </li>`)}
  </ul>`;
}

const STATUS_TONE = { new: "neutral", approved: "ok", rejected: "error", archived: "muted" };
const GENERATION = {
  idle: null,
  generating: ["info", "Rendering"],
  generated: ["ok", "Rendered"],
  failed: ["error", "Render failed"],
};

export function PromptCard({ prompt, onChanged, onDeleted, headingLevel = 3 }) {
  const toast = useToast();
  const [editing, setEditing] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [text, setText] = useState(prompt.text);
  const [title, setTitle] = useState(prompt.title || "");
  const textArea = useRef(null);
  useEffect(() => {
    if (editing) textArea.current?.focus();
  }, [editing]);

  const [save, saving, saveError] = useAction(async () => {
    const updated = await patch(`/api/v1/prompts/${prompt.id}`, { text, title: title.trim() || null });
    onChanged(updated);
    setEditing(false);
    toast("Prompt saved");
  });
  const [act, acting, actError] = useAction(async (kind, value) => {
    if (kind === "status") {
      onChanged(await put(`/api/v1/prompts/${prompt.id}/status`, { status: value }));
      toast(`Prompt ${value}`);
    } else if (kind === "retitle") {
      onChanged(await post(`/api/v1/prompts/${prompt.id}/retitle`));
      toast("New title written");
    } else if (kind === "delete") {
      await del(`/api/v1/prompts/${prompt.id}`);
      onDeleted(prompt);
      toast("Prompt deleted");
    }
  });

  const generation = GENERATION[prompt.generation_state];
  const Heading = `h${headingLevel}`;
  const statusButton = (value, label, icon) => prompt.status !== value && html`<${Button}
    kind="ghost" icon=${icon} busy=${acting} onClick=${() => act("status", value)}>${label}</${Button}>`;

  if (editing) {
    return html`<article class="prompt-card editing" data-prompt-id=${prompt.id}>
      <form onSubmit=${(e) => { e.preventDefault(); save(); }} class="stack">
        <label class="field"><span class="field-label">Title</span>
          <input value=${title} maxlength="200" onInput=${(e) => setTitle(e.currentTarget.value)}
            placeholder="A stock-ready title (at most 70 characters, no commas)" /></label>
        <label class="field"><span class="field-label">Prompt</span>
          <textarea ref=${textArea} rows="4" maxlength="4000" required value=${text}
            onInput=${(e) => setText(e.currentTarget.value)}></textarea></label>
        <${ErrorNote} error=${saveError} compact />
        <div class="row">
          <${Button} kind="primary" type="submit" busy=${saving} icon="check">Save</${Button}>
          <${Button} kind="ghost" onClick=${() => { setEditing(false); setText(prompt.text); setTitle(prompt.title || ""); }}>Cancel</${Button}>
        </div>
      </form>
    </article>`;
  }

  return html`<article class=${`prompt-card status-${prompt.status}`} data-prompt-id=${prompt.id}>
    <header class="prompt-head">
      <${Heading} class=${`prompt-title ${prompt.title ? "" : "muted"}`}>
        ${prompt.title ? html`<${Highlighted} text=${prompt.title} findings=${prompt.findings} field="title" />` : "Untitled"}
      </${Heading}>
      <div class="badges">
        <${Badge} tone=${STATUS_TONE[prompt.status]}>${prompt.status}</${Badge}>
        ${generation && html`<${Badge} tone=${generation[0]}>${generation[1]}</${Badge}>`}
      </div>
    </header>
    <p class="prompt-text"><${Highlighted} text=${prompt.text} findings=${prompt.findings} field="text" /></p>
    <${Findings} findings=${prompt.findings} />
    <p class="muted small">${ago(prompt.created_at)}${prompt.completed_tasks > 0 ? ` · ${plural(prompt.completed_tasks, "render")}` : ""}${prompt.active_tasks > 0 ? ` · ${prompt.active_tasks} rendering` : ""}</p>
    <${ErrorNote} error=${actError} compact />
    ${confirming
      ? html`<div class="row confirm" role="group" aria-label="Confirm deletion">
          <span>Delete this prompt for good?</span>
          <${Button} kind="danger" icon="trash" busy=${acting} onClick=${() => act("delete")}>Delete</${Button}>
          <${Button} kind="ghost" onClick=${() => setConfirming(false)}>Keep it</${Button}>
        </div>`
      : html`<div class="row actions">
          ${prompt.status !== "archived" && html`<a class="btn btn-primary" href=${href("create", null, { prompt: prompt.id })}>
            <${Icon} name="wand" /><span>Create</span></a>`}
          ${statusButton("approved", "Approve", "check")}
          ${statusButton("rejected", "Reject", "close")}
          ${statusButton("archived", "Archive", "stop")}
          ${prompt.status === "archived" && statusButton("new", "Restore", "retry")}
          <div class="actions-end">
            <${Button} kind="ghost" icon="edit" onClick=${() => setEditing(true)}>Edit</${Button}>
            <${Button} kind="ghost" icon="title" busy=${acting} onClick=${() => act("retitle")}>New title</${Button}>
            <${Button} kind="ghost" icon="trash" onClick=${() => setConfirming(true)}>Delete</${Button}>
          </div>
        </div>`}
  </article>`;
}

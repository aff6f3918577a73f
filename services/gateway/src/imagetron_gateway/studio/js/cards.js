// A generation task as a live card: status, progress, the provider's preview while it
// renders, then the stored image. Everything on it comes from the event stream.
import { html } from "./lib.js";
import { previewUrl, thumbnailUrl } from "./api.js";
import { store } from "./store.js";
import { href } from "./router.js";
import { ago, commandLabel, ratioValue, STATUS_LABELS } from "./format.js";
import { Badge, Icon, Progress } from "./ui.js";

const TONES = {
  pending: "neutral", submitted: "info", processing: "info",
  completed: "ok", failed: "error", cancelled: "neutral",
};

export function statusBadge(task) {
  return html`<${Badge} tone=${TONES[task.status]}>${STATUS_LABELS[task.status]}</${Badge}>`;
}

function waitingText(task) {
  if (task.status === "pending") {
    return task.queue_position ? `Waiting for a slot · #${task.queue_position}` : "Queued";
  }
  if (task.status === "submitted") return "Sent to the provider";
  if (task.status === "processing") return `Rendering · ${task.progress}%`;
  return STATUS_LABELS[task.status];
}

/** The picture of a task: stored image, else preview, else a placeholder. */
export function TaskPicture({ task, alt }) {
  const cover = store.coverOf(task);
  const ratio = ratioValue(task.aspect_ratio);
  let content;
  if (cover && cover.is_persisted) {
    content = html`<img src=${thumbnailUrl(cover.id)} alt=${alt} loading="lazy" decoding="async" />`;
  } else if (task.preview_url && task.status !== "failed") {
    content = html`<img class="preview" src=${previewUrl(task)} alt=${`Preview of ${alt}`} decoding="async" />`;
  } else if (cover && cover.error) {
    content = html`<div class="picture-empty picture-error"><${Icon} name="alert" /><span>Not stored</span></div>`;
  } else if (task.status === "failed" || task.status === "cancelled") {
    content = html`<div class="picture-empty"><${Icon} name=${task.status === "failed" ? "alert" : "stop"} /></div>`;
  } else {
    content = html`<div class="picture-empty shimmer" aria-hidden="true"></div>`;
  }
  return html`<div class="picture" style=${{ aspectRatio: ratio }}>${content}</div>`;
}

export function TaskCard({ task, compact = false, current = false, children }) {
  const active = ["pending", "submitted", "processing"].includes(task.status);
  const label = `${commandLabel(task)}: ${task.prompt_text}`;
  return html`<article class=${`task-card ${compact ? "task-card-compact" : ""} status-${task.status} ${current ? "current" : ""}`}
      data-task-id=${task.id} data-status=${task.status} aria-label=${label}>
    <a class="task-link" href=${href("tasks", task.id)} aria-current=${current ? "page" : undefined}>
      <${TaskPicture} task=${task} alt=${task.prompt_text} />
      <div class="task-meta">
        <div class="task-line">
          <span class="task-command">${commandLabel(task)}</span>
          ${statusBadge(task)}
        </div>
        ${!compact && html`<p class="task-prompt">${task.prompt_text}</p>`}
        ${active && html`<div class="task-progress">
          <${Progress} value=${task.status === "processing" ? task.progress : 0} label=${`Progress of ${commandLabel(task)}`} />
          <span class="muted small">${waitingText(task)}</span>
        </div>`}
        ${task.status === "failed" && html`<p class="task-error">${task.error || "The provider gave no reason."}</p>`}
        ${!active && task.status !== "failed" && html`<span class="muted small">${ago(task.completed_at || task.updated_at)}</span>`}
      </div>
    </a>
    ${children && html`<div class="task-actions">${children}</div>`}
  </article>`;
}

// Journey 1: a brief → the assistant proposes subjects → refine → prompts with titles.
import { html, useState, useEffect, useRef } from "../lib.js";
import { get, post, del } from "../api.js";
import { href, navigate } from "../router.js";
import { ago, ASPECT_RATIOS, plural } from "../format.js";
import { Button, Empty, ErrorNote, Icon, Loading, useAction, useLoad, useToast } from "../ui.js";
import { Findings, Highlighted, PromptCard } from "../prompt-view.js";
import { hub } from "../events.js";

const EXAMPLES = [
  "Autumn still lifes for stock",
  "Minimal travel posters of Nordic towns",
  "Cozy winter interiors, warm light",
];

function ChatList({ chats, currentId }) {
  return html`<nav class="chat-list" aria-label="Briefs">
    <a class=${`btn btn-secondary new-brief ${currentId ? "" : "on"}`} href=${href("assistant")}
      aria-current=${currentId ? undefined : "page"}><${Icon} name="plus" /><span>New brief</span></a>
    ${chats.length === 0 && html`<p class="muted small">Your briefs appear here.</p>`}
    <ul>
      ${chats.map((chat) => html`<li key=${chat.id}>
        <a href=${href("assistant", chat.id)} class=${chat.id === currentId ? "on" : ""}
          aria-current=${chat.id === currentId ? "page" : undefined}>
          <span class="chat-title">${chat.title}</span>
          <span class="muted small">${ago(chat.updated_at)}</span>
        </a></li>`)}
    </ul>
  </nav>`;
}

function NewBrief({ onStarted }) {
  const [brief, setBrief] = useState("");
  const [count, setCount] = useState("");
  const area = useRef(null);
  useEffect(() => area.current?.focus(), []);
  const [start, busy, error] = useAction(async () => {
    const chat = await post("/api/v1/chats", { brief: brief.trim(), count: count ? Number(count) : null });
    onStarted(chat);
  });
  return html`<section class="panel brief" aria-labelledby="brief-title">
    <h1 id="brief-title">What are the images for?</h1>
    <p class="muted">Describe the set you want to make. The assistant suggests concrete subjects; you pick
      one and it writes Midjourney prompts with stock-ready titles.</p>
    <form class="stack" onSubmit=${(e) => { e.preventDefault(); if (brief.trim()) start(); }}>
      <label class="field"><span class="field-label">Brief</span>
        <textarea ref=${area} rows="3" maxlength="2000" value=${brief} required disabled=${busy}
          placeholder="e.g. autumn still lifes for stock, soft morning light"
          onInput=${(e) => setBrief(e.currentTarget.value)}></textarea></label>
      <div class="examples" role="group" aria-label="Examples">
        ${EXAMPLES.map((example) => html`<button type="button" class="chip" disabled=${busy}
          onClick=${() => setBrief(example)}>${example}</button>`)}
      </div>
      <div class="row wrap brief-actions">
        <label class="field field-inline"><span class="field-label">Subjects</span>
          <select value=${count} onChange=${(e) => setCount(e.currentTarget.value)} disabled=${busy}>
            <option value="">Let the assistant choose</option>
            ${[3, 5, 8, 10].map((n) => html`<option value=${n}>${n}</option>`)}
          </select></label>
        <${Button} kind="primary" type="submit" icon="spark" busy=${busy} disabled=${!brief.trim()}>
          ${busy ? "Thinking of subjects…" : "Suggest subjects"}</${Button}>
      </div>
      <${ErrorNote} error=${error} />
    </form>
  </section>`;
}

function WritePrompts({ chatId, subject, onClose }) {
  const toast = useToast();
  const [count, setCount] = useState(4);
  const [style, setStyle] = useState("");
  const [aspect, setAspect] = useState("3:2");
  const [written, setWritten] = useState(null);
  const first = useRef(null);
  useEffect(() => first.current?.focus(), []);
  const [write, busy, error] = useAction(async () => {
    const result = await post("/api/v1/prompts/generate", {
      subject, count: Number(count), style: style.trim() || null, aspect_ratio: aspect, chat_id: chatId,
    });
    setWritten(result.prompts);
    toast(`${plural(result.prompts.length, "prompt")} written`);
  });
  const replace = (updated) => setWritten((list) => list.map((p) => (p.id === updated.id ? updated : p)));
  const remove = (gone) => setWritten((list) => list.filter((p) => p.id !== gone.id));
  return html`<section class="write-prompts" aria-label=${`Write prompts for ${subject}`}>
    <form class="row wrap" onSubmit=${(e) => { e.preventDefault(); write(); }}>
      <label class="field field-inline"><span class="field-label">Prompts</span>
        <select ref=${first} value=${count} onChange=${(e) => setCount(e.currentTarget.value)} disabled=${busy}>
          ${[1, 2, 3, 4, 5, 6, 8, 10].map((n) => html`<option value=${n}>${n}</option>`)}
        </select></label>
      <label class="field field-inline"><span class="field-label">Aspect</span>
        <select value=${aspect} onChange=${(e) => setAspect(e.currentTarget.value)} disabled=${busy}>
          ${ASPECT_RATIOS.map((r) => html`<option value=${r}>${r}</option>`)}
        </select></label>
      <label class="field field-inline field-grow"><span class="field-label">Style (optional)</span>
        <input value=${style} maxlength="200" placeholder="watercolor, editorial photo…" disabled=${busy}
          onInput=${(e) => setStyle(e.currentTarget.value)} /></label>
      <${Button} kind="primary" type="submit" icon="text" busy=${busy}>${busy ? "Writing…" : `Write ${plural(Number(count), "prompt")}`}</${Button}>
      <${Button} kind="ghost" onClick=${onClose} aria-label="Close">Close</${Button}>
    </form>
    <${ErrorNote} error=${error} />
    ${written && html`<div class="written">
      <div class="row spread"><h3>${plural(written.length, "new prompt")}</h3>
        <a href=${href("prompts", null, { chat: chatId })}>All prompts of this brief <${Icon} name="arrow" size=${14} /></a></div>
      ${written.map((prompt) => html`<${PromptCard} key=${prompt.id} prompt=${prompt} headingLevel=${4}
        onChanged=${replace} onDeleted=${remove} />`)}
    </div>`}
  </section>`;
}

function Message({ message, chatId, chosen, onChoose }) {
  if (message.role === "user") {
    return html`<div class="message message-user"><p>${message.content}</p></div>`;
  }
  return html`<div class="message message-assistant">
    <p>${message.content}</p>
    <ol class="subjects">
      ${message.subjects.map((subject, index) => {
        const key = `${message.id}:${index}`;
        const open = chosen === key;
        return html`<li key=${key} class=${`subject ${open ? "open" : ""}`}>
          <div class="subject-row">
            <span class="subject-text"><${Highlighted} text=${subject.text} findings=${subject.findings} field="text" /></span>
            <${Button} kind=${open ? "secondary" : "ghost"} icon="text" aria-expanded=${open ? "true" : "false"}
              onClick=${() => onChoose(open ? null : key)}>Write prompts</${Button}>
          </div>
          <${Findings} findings=${subject.findings} />
          ${open && html`<${WritePrompts} chatId=${chatId} subject=${subject.text} onClose=${() => onChoose(null)} />`}
        </li>`;
      })}
    </ol>
  </div>`;
}

function Conversation({ chatId, onChanged }) {
  const { data: chat, error, loading, reload, setData } = useLoad(
    (signal) => get(`/api/v1/chats/${chatId}`, undefined, { signal }), [chatId],
  );
  const [text, setText] = useState("");
  const [chosen, setChosen] = useState(null);
  const [refine, busy, refineError] = useAction(async () => {
    const updated = await post(`/api/v1/chats/${chatId}/messages`, { text: text.trim() });
    setText("");
    setData(updated);
    onChanged();
  });
  const [remove, removing, removeError] = useAction(async () => {
    await del(`/api/v1/chats/${chatId}`);
    onChanged();
    navigate("assistant");
  });
  if (loading && !chat) return html`<${Loading} label="Opening the brief…" />`;
  if (error && !chat) return html`<${ErrorNote} error=${error} onRetry=${reload} />`;
  return html`<section class="conversation" aria-labelledby="chat-title">
    <header class="row spread wrap">
      <h1 id="chat-title">${chat.title}</h1>
      <div class="row">
        <a class="btn btn-ghost" href=${href("prompts", null, { chat: chat.id })}><${Icon} name="text" /><span>Its prompts</span></a>
        <${Button} kind="ghost" icon="trash" busy=${removing} onClick=${remove}>Delete brief</${Button}>
      </div>
    </header>
    <${ErrorNote} error=${removeError} compact />
    <div class="messages">
      ${chat.messages.map((message) => html`<${Message} key=${message.id} message=${message} chatId=${chat.id}
        chosen=${chosen} onChoose=${setChosen} />`)}
      ${busy && html`<div class="message message-assistant thinking" role="status"><span class="dots" aria-hidden="true"></span> The assistant is thinking…</div>`}
    </div>
    <form class="refine" onSubmit=${(e) => { e.preventDefault(); if (text.trim()) refine(); }}>
      <label class="field field-grow"><span class="visually-hidden">Refine the subjects</span>
        <input value=${text} maxlength="2000" disabled=${busy} placeholder="Refine: more minimal, only pears, no people…"
          onInput=${(e) => setText(e.currentTarget.value)} /></label>
      <${Button} kind="primary" type="submit" icon="send" busy=${busy} disabled=${!text.trim()}>Refine</${Button}>
    </form>
    <${ErrorNote} error=${refineError} />
  </section>`;
}

export function Assistant({ route }) {
  const chats = useLoad((signal) => get("/api/v1/chats", { limit: 50 }, { signal }), []);
  useEffect(() => hub.subscribe((type) => { if (type.startsWith("chat.")) chats.reload(); }), []);
  const list = chats.data ? chats.data.items : [];
  return html`<div class="assistant">
    <aside class="assistant-side">
      ${chats.loading && !chats.data ? html`<${Loading} label="Loading briefs…" />`
        : chats.error && !chats.data ? html`<${ErrorNote} error=${chats.error} onRetry=${chats.reload} compact />`
        : html`<${ChatList} chats=${list} currentId=${route.id} />`}
    </aside>
    <div class="assistant-main">
      ${route.id
        ? html`<${Conversation} key=${route.id} chatId=${route.id} onChanged=${chats.reload} />`
        : html`<${NewBrief} onStarted=${(chat) => { chats.reload(); navigate("assistant", chat.id); }} />`}
    </div>
  </div>`;
}

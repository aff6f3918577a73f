// Journey 2: every prompt with its status and stock-rule findings; filter, search, edit,
// retitle, approve, reject, archive, delete, or send one to Create.
import { html, useState, useEffect, useLayoutEffect, useRef } from "../lib.js";
import { get, post } from "../api.js";
import { hub } from "../events.js";
import { href, navigate } from "../router.js";
import { Button, Empty, ErrorNote, Icon, Loading, Segmented, useAction, useToast } from "../ui.js";
import { PromptCard } from "../prompt-view.js";

const FILTERS = [
  { value: "", label: "All" },
  { value: "new", label: "New" },
  { value: "approved", label: "Approved" },
  { value: "rejected", label: "Rejected" },
  { value: "archived", label: "Archived" },
];
const PAGE = 30;

function NewPrompt({ onCreated, onClose }) {
  const toast = useToast();
  const [text, setText] = useState("");
  const [title, setTitle] = useState("");
  const area = useRef(null);
  useEffect(() => area.current?.focus(), []);
  const [create, busy, error] = useAction(async () => {
    const prompt = await post("/api/v1/prompts", { text: text.trim(), title: title.trim() || null });
    onCreated(prompt);
    toast("Prompt added");
  });
  return html`<form class="panel stack new-prompt" onSubmit=${(e) => { e.preventDefault(); if (text.trim()) create(); }}
      aria-label="New prompt">
    <label class="field"><span class="field-label">Prompt</span>
      <textarea ref=${area} rows="3" maxlength="4000" required value=${text} disabled=${busy}
        placeholder="a pear on a linen cloth, morning light, soft shadows --ar 3:2"
        onInput=${(e) => setText(e.currentTarget.value)}></textarea></label>
    <label class="field"><span class="field-label">Title (optional)</span>
      <input maxlength="200" value=${title} disabled=${busy} placeholder="Pear on linen in morning light"
        onInput=${(e) => setTitle(e.currentTarget.value)} /></label>
    <${ErrorNote} error=${error} compact />
    <div class="row">
      <${Button} kind="primary" type="submit" icon="plus" busy=${busy} disabled=${!text.trim()}>Add prompt</${Button}>
      <${Button} kind="ghost" onClick=${onClose}>Cancel</${Button}>
    </div>
  </form>`;
}

export function Prompts({ route }) {
  const status = route.params.get("status") || "";
  const chat = route.params.get("chat") || "";
  const [search, setSearch] = useState(route.params.get("q") || "");
  const [query, setQuery] = useState(search);
  const [items, setItems] = useState([]);
  const [next, setNext] = useState(null);
  const [state, setState] = useState({ loading: true, error: null });
  const [adding, setAdding] = useState(false);
  const [tick, setTick] = useState(0);

  // The new-prompt form closes (added, or cancelled) with the keyboard's focus inside it: the
  // focus goes back to the button that opened it, not to the page's start. In the same task
  // as the form's removal, so no script ever sees the focus on the body in between.
  const head = useRef(null);
  const wasAdding = useRef(false);
  useLayoutEffect(() => {
    const closed = wasAdding.current && !adding;
    wasAdding.current = adding;
    if (closed && (!document.activeElement || document.activeElement === document.body)) {
      head.current?.querySelector("button")?.focus();
    }
  }, [adding]);

  // Search as one types, without a request per key.
  useEffect(() => {
    const timer = setTimeout(() => setQuery(search.trim()), 250);
    return () => clearTimeout(timer);
  }, [search]);

  const filters = { status, chat_id: chat, q: query, limit: PAGE };
  useEffect(() => {
    const controller = new AbortController();
    setState({ loading: true, error: null });
    get("/api/v1/prompts", filters, { signal: controller.signal }).then((page) => {
      setItems(page.items);
      setNext(page.next_cursor);
      setState({ loading: false, error: null });
    }, (error) => error.name !== "AbortError" && setState({ loading: false, error }));
    return () => controller.abort();
  }, [status, chat, query, tick]);

  const [more, loadingMore, moreError] = useAction(async () => {
    const page = await get("/api/v1/prompts", { ...filters, cursor: next });
    setItems((list) => [...list, ...page.items.filter((p) => !list.some((q) => q.id === p.id))]);
    setNext(page.next_cursor);
  });

  // Live: changes made elsewhere (another tab, the terminal, renders finishing).
  useEffect(() => hub.subscribe((type, payload) => {
    if (!type.startsWith("prompt.") || !payload.prompt) return;
    const prompt = payload.prompt;
    setItems((list) => {
      const known = list.some((p) => p.id === prompt.id);
      if (type === "prompt.deleted") return list.filter((p) => p.id !== prompt.id);
      const fits = (!status || prompt.status === status) && (!chat || prompt.chat_id === chat);
      if (known) return fits ? list.map((p) => (p.id === prompt.id ? prompt : p)) : list.filter((p) => p.id !== prompt.id);
      return type === "prompt.created" && fits && !query ? [prompt, ...list] : list;
    });
  }), [status, chat, query]);

  const setFilter = (value) => navigate("prompts", null, { status: value, chat, q: search.trim() }, { replace: true });
  const replace = (updated) => setItems((list) => list.map((p) => (p.id === updated.id ? updated : p)));
  const remove = (gone) => setItems((list) => list.filter((p) => p.id !== gone.id));

  return html`<div class="prompts">
    <header class="screen-head" ref=${head}>
      <h1>Prompts</h1>
      <${Button} kind="primary" icon="plus" onClick=${() => setAdding(true)} aria-expanded=${adding ? "true" : "false"}>New prompt</${Button}>
    </header>
    ${adding && html`<${NewPrompt} onClose=${() => setAdding(false)}
      onCreated=${(p) => { setAdding(false); setItems((list) => [p, ...list.filter((q) => q.id !== p.id)]); }} />`}
    <div class="toolbar">
      <${Segmented} label="Status" name="status" options=${FILTERS} value=${status} onChange=${setFilter} />
      <label class="search"><${Icon} name="search" />
        <span class="visually-hidden">Search prompts</span>
        <input type="search" placeholder="Search text and titles" value=${search} maxlength="200"
          onInput=${(e) => setSearch(e.currentTarget.value)} /></label>
    </div>
    ${chat && html`<p class="filter-note">Prompts of one brief.
      <a href=${href("assistant", chat)}>Open the brief</a> · <a href=${href("prompts", null, { status })}>Show all</a></p>`}
    ${state.loading && items.length === 0 ? html`<${Loading} label="Loading prompts…" />`
      : state.error ? html`<${ErrorNote} error=${state.error} onRetry=${() => setTick((t) => t + 1)} />`
      : items.length === 0 ? (query || status || chat
        ? html`<${Empty} icon="search" title="No prompt matches">Try another word or status.</${Empty}>`
        : html`<${Empty} icon="text" title="No prompts yet"
            actions=${html`<a class="btn btn-primary" href=${href("assistant")}><${Icon} name="spark" /><span>Ask the assistant</span></a>
              <${Button} icon="plus" onClick=${() => setAdding(true)}>Write one yourself</${Button}>`}>
            Start from a brief: the assistant suggests subjects and writes prompts with titles.</${Empty}>`)
      : html`<div class="prompt-list" aria-busy=${state.loading ? "true" : "false"}>
          ${items.map((prompt) => html`<${PromptCard} key=${prompt.id} prompt=${prompt} onChanged=${replace} onDeleted=${remove} headingLevel=${2} />`)}
        </div>
        ${next && html`<div class="more"><${Button} busy=${loadingMore} onClick=${more}>Load more</${Button}></div>`}
        <${ErrorNote} error=${moreError} compact />`}
  </div>`;
}

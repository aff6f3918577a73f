// Journey 3: imagine with an aspect ratio and a mode; every task a live card, fed by the
// event stream (progress, the provider's preview, then the stored grid).
import { html, useState, useEffect, useRef } from "../lib.js";
import { get, post } from "../api.js";
import { store, useStore } from "../store.js";
import { href, navigate } from "../router.js";
import { ASPECT_RATIOS } from "../format.js";
import { TaskCard } from "../cards.js";
import { Button, Empty, ErrorNote, Icon, Loading, Segmented, useAction, useToast } from "../ui.js";
import { Highlighted } from "../prompt-view.js";

const MODES = [
  { value: "relax", label: "Relax" },
  { value: "fast", label: "Fast" },
  { value: "turbo", label: "Turbo" },
];
const PAGE = 24;

/** Tasks and their cover images, newest first, into the store; returns the next cursor. */
export async function loadTasks(query, signal) {
  const [tasks, grids, upscales] = await Promise.all([
    get("/api/v1/tasks", query, { signal }),
    get("/api/v1/images", { kind: "grid", limit: 100 }, { signal }),
    get("/api/v1/images", { kind: "upscale", limit: 100 }, { signal }),
  ]);
  store.putAll({ tasks: tasks.items, images: [...grids.items, ...upscales.items] });
  return tasks.next_cursor;
}

function Composer({ promptId }) {
  const toast = useToast();
  const [text, setText] = useState("");
  const [aspect, setAspect] = useState("1:1");
  const [mode, setMode] = useState("fast");
  const [prompt, setPrompt] = useState(null);
  const [promptError, setPromptError] = useState(null);
  const area = useRef(null);

  useEffect(() => {
    setPrompt(null);
    setPromptError(null);
    if (!promptId) return undefined;
    const controller = new AbortController();
    get(`/api/v1/prompts/${promptId}`, undefined, { signal: controller.signal }).then(setPrompt,
      (error) => error.name !== "AbortError" && setPromptError(error));
    return () => controller.abort();
  }, [promptId]);

  const [imagine, busy, error] = useAction(async () => {
    let id = promptId;
    if (!id) id = (await post("/api/v1/prompts", { text: text.trim() })).id;
    const task = await post(`/api/v1/prompts/${id}/imagine`, { aspect_ratio: aspect, process_mode: mode });
    store.putTask(task);
    if (!promptId) setText("");
    toast("Imagining…");
  });
  const ready = promptId ? Boolean(prompt) : Boolean(text.trim());

  return html`<form class="composer panel" onSubmit=${(e) => { e.preventDefault(); if (ready) imagine(); }} aria-label="Imagine">
    ${promptId
      ? html`<div class="chosen-prompt">
          <div class="row spread"><span class="field-label">Prompt</span>
            <a href=${href("create")} class="small">Write a new one instead</a></div>
          ${prompt ? html`<p class="prompt-title">${prompt.title || "Untitled"}</p>
              <p class="prompt-text"><${Highlighted} text=${prompt.text} findings=${prompt.findings} field="text" /></p>`
            : promptError ? html`<${ErrorNote} error=${promptError} compact />` : html`<${Loading} label="Loading the prompt…" />`}
        </div>`
      : html`<label class="field"><span class="field-label">Describe the image</span>
          <textarea ref=${area} rows="3" maxlength="4000" value=${text} disabled=${busy}
            placeholder="a pear on a linen cloth, morning light, soft shadows"
            onInput=${(e) => setText(e.currentTarget.value)}
            onKeyDown=${(e) => { if (e.key === "Enter" && (e.metaKey || e.ctrlKey) && ready) imagine(); }}></textarea>
          <span class="field-help">Or pick one of your <a href=${href("prompts", null, { status: "approved" })}>approved prompts</a>. Ctrl+Enter imagines.</span>
        </label>`}
    <div class="composer-options">
      <div class="field"><span class="field-label" id="aspect-label">Aspect ratio</span>
        <${Segmented} label="Aspect ratio" name="aspect" value=${aspect} onChange=${setAspect}
          options=${ASPECT_RATIOS.map((r) => ({ value: r, label: r }))} /></div>
      <div class="field"><span class="field-label">Mode</span>
        <${Segmented} label="Mode" name="mode" value=${mode} onChange=${setMode} options=${MODES} /></div>
      <${Button} kind="primary" type="submit" icon="wand" busy=${busy} disabled=${!ready} class="imagine">Imagine</${Button}>
    </div>
    <${ErrorNote} error=${error} />
  </form>`;
}

export function Create({ route }) {
  const s = useStore();
  const [limit, setLimit] = useState(PAGE);
  const [next, setNext] = useState(undefined);
  const [state, setState] = useState({ loading: true, error: null });
  const [tick, setTick] = useState(0);

  useEffect(() => {
    const controller = new AbortController();
    setState({ loading: true, error: null });
    loadTasks({ limit: PAGE }, controller.signal).then((cursor) => {
      setNext(cursor);
      setState({ loading: false, error: null });
    }, (error) => error.name !== "AbortError" && setState({ loading: false, error }));
    return () => controller.abort();
  }, [tick]);

  const [more, loadingMore, moreError] = useAction(async () => {
    setNext(await loadTasks({ limit: PAGE, cursor: next }));
    setLimit((l) => l + PAGE);
  });

  const tasks = s.recentTasks(limit);
  return html`<div class="create">
    <header class="screen-head"><h1>Create</h1></header>
    <${Composer} promptId=${route.params.get("prompt")} />
    <section aria-labelledby="tasks-title" class="tasks">
      <h2 id="tasks-title">Your renders</h2>
      ${state.loading && tasks.length === 0 ? html`<${Loading} label="Loading your renders…" />`
        : state.error ? html`<${ErrorNote} error=${state.error} onRetry=${() => setTick((t) => t + 1)} />`
        : tasks.length === 0 ? html`<${Empty} icon="wand" title="Nothing rendered yet"
            actions=${html`<a class="btn btn-secondary" href=${href("assistant")}><${Icon} name="spark" /><span>Start from a brief</span></a>`}>
            Describe an image above and press Imagine: a live card shows its progress here.</${Empty}>`
        : html`<div class="task-grid">${tasks.map((task) => html`<${TaskCard} key=${task.id} task=${task} />`)}</div>
          ${next && html`<div class="more"><${Button} busy=${loadingMore} onClick=${more}>Load more</${Button}></div>`}
          <${ErrorNote} error=${moreError} compact />`}
    </section>
  </div>`;
}

// Small shared pieces: icons, buttons, states (loading, empty, error), toasts, dialogs.
import { html, useEffect, useRef, useState, createContext, useContext, useCallback } from "./lib.js";

const ICONS = {
  spark: "M12 3l1.8 5.2L19 10l-5.2 1.8L12 17l-1.8-5.2L5 10l5.2-1.8z M19 15l.9 2.1L22 18l-2.1.9L19 21l-.9-2.1L16 18l2.1-.9z",
  text: "M4 6h16M4 12h16M4 18h10",
  wand: "M4 20L16 8 M14 4l1 2 2 1-2 1-1 2-1-2-2-1 2-1z M18 12l.7 1.3L20 14l-1.3.7L18 16l-.7-1.3L16 14l1.3-.7z",
  grid: "M4 4h7v7H4z M13 4h7v7h-7z M4 13h7v7H4z M13 13h7v7h-7z",
  upload: "M12 16V4 M7 9l5-5 5 5 M5 20h14",
  out: "M15 4h4v16h-4 M10 8l-4 4 4 4 M6 12h11",
  close: "M6 6l12 12 M18 6L6 18",
  check: "M5 12l5 5 9-10",
  alert: "M12 4l9 16H3z M12 10v4 M12 17v.5",
  retry: "M4 12a8 8 0 1 0 3-6.2 M4 4v5h5",
  download: "M12 4v12 M7 11l5 5 5-5 M5 20h14",
  search: "M11 18a7 7 0 1 1 0-14 7 7 0 0 1 0 14z M16 16l5 5",
  plus: "M12 5v14 M5 12h14",
  edit: "M4 20h4L19 9l-4-4L4 16z",
  trash: "M5 7h14 M10 7V4h4v3 M7 7l1 13h8l1-13",
  arrow: "M5 12h14 M13 6l6 6-6 6",
  back: "M19 12H5 M11 6l-6 6 6 6",
  expand: "M4 9V4h5 M20 9V4h-5 M4 15v5h5 M20 15v5h-5",
  stop: "M7 7h10v10H7z",
  send: "M4 12l16-8-6 16-2-6z",
  title: "M5 5h14 M12 5v14",
  branch: "M7 4v16 M7 12c0 -4 10 -4 10 -8 M17 4v0",
};

export function Icon({ name, size = 18, label }) {
  return html`<svg class="icon" width=${size} height=${size} viewBox="0 0 24 24" aria-hidden=${label ? undefined : "true"}
    role=${label ? "img" : undefined} aria-label=${label} focusable="false">
    <path d=${ICONS[name] || ICONS.spark} fill="none" stroke="currentColor" stroke-width="1.8"
      stroke-linecap="round" stroke-linejoin="round" />
  </svg>`;
}

export function Spinner({ label = "Loading" }) {
  return html`<span class="spinner" role="status" aria-label=${label}></span>`;
}

export function Button({ kind = "secondary", icon, busy, children, class: extra = "", ...props }) {
  return html`<button type="button" class=${`btn btn-${kind} ${extra}`} disabled=${busy || props.disabled}
    aria-busy=${busy ? "true" : undefined} ...${props}>
    ${busy ? html`<span class="spinner spinner-small" aria-hidden="true"></span>` : icon && html`<${Icon} name=${icon} />`}
    ${children && html`<span>${children}</span>`}
  </button>`;
}

/** An error from the API, in its own words (the problem document's `detail`). */
export function ErrorNote({ error, onRetry, compact }) {
  if (!error) return null;
  const detail = error.detail || error.message || String(error);
  return html`<div class=${`note note-error ${compact ? "note-compact" : ""}`} role="alert">
    <${Icon} name="alert" />
    <div class="note-body">
      ${!compact && error.title && html`<strong>${error.title}</strong>`}
      <p>${detail}</p>
      ${error.errors && error.errors.length > 0 && html`<ul>${error.errors.map((e) => html`<li>${e.loc.filter((p) => p !== "body").join(".")}: ${e.msg}</li>`)}</ul>`}
    </div>
    ${onRetry && html`<${Button} kind="ghost" icon="retry" onClick=${onRetry}>Try again</${Button}>`}
  </div>`;
}

export function Loading({ label = "Loading…" }) {
  return html`<div class="state state-loading"><${Spinner} label=${label} /><span>${label}</span></div>`;
}

export function Empty({ icon = "spark", title, children, actions }) {
  return html`<div class="state state-empty">
    <div class="state-icon"><${Icon} name=${icon} size=${28} /></div>
    <h2>${title}</h2>
    ${children && html`<p>${children}</p>`}
    ${actions && html`<div class="state-actions">${actions}</div>`}
  </div>`;
}

export function Badge({ tone = "neutral", children, title }) {
  return html`<span class=${`badge badge-${tone}`} title=${title}>${children}</span>`;
}

export function Progress({ value, label }) {
  return html`<div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100"
    aria-valuenow=${value} aria-label=${label}>
    <div class="progress-fill" style=${{ width: `${value}%` }}></div>
  </div>`;
}

/** A row of choices where exactly one is on (radio semantics, arrow keys move). */
export function Segmented({ label, options, value, onChange, name }) {
  const refs = useRef([]);
  const onKey = (event, index) => {
    const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
    if (!step) return;
    event.preventDefault();
    const next = (index + step + options.length) % options.length;
    onChange(options[next].value);
    refs.current[next]?.focus();
  };
  return html`<div class="segmented" role="radiogroup" aria-label=${label} data-name=${name}>
    ${options.map((option, index) => html`<button type="button" role="radio"
      ref=${(el) => { refs.current[index] = el; }}
      aria-checked=${option.value === value ? "true" : "false"}
      tabindex=${option.value === value ? 0 : -1}
      class=${option.value === value ? "on" : ""}
      onClick=${() => onChange(option.value)} onKeyDown=${(event) => onKey(event, index)}>
      ${option.label}${option.count !== undefined && html` <span class="count">${option.count}</span>`}
    </button>`)}
  </div>`;
}

// --- toasts -----------------------------------------------------------------------------

const ToastContext = createContext(() => {});
export const useToast = () => useContext(ToastContext);

export function ToastProvider({ children }) {
  const [toasts, setToasts] = useState([]);
  const push = useCallback((text, tone = "ok") => {
    const id = Math.random().toString(36).slice(2);
    setToasts((list) => [...list.slice(-1), { id, text, tone }]);
    setTimeout(() => setToasts((list) => list.filter((t) => t.id !== id)), 3500);
  }, []);
  return html`<${ToastContext.Provider} value=${push}>
    ${children}
    <div class="toasts" role="status" aria-live="polite">
      ${toasts.map((t) => html`<div key=${t.id} class=${`toast toast-${t.tone}`}>
        <${Icon} name=${t.tone === "error" ? "alert" : "check"} />${t.text}</div>`)}
    </div>
  </${ToastContext.Provider}>`;
}

// --- dialog -----------------------------------------------------------------------------

/** The native modal dialog: focus stays inside, Escape closes, focus returns after. */
export function Dialog({ open, onClose, label, children, class: extra = "" }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return html`<dialog ref=${ref} class=${`dialog ${extra}`} aria-label=${label}
    onClose=${onClose} onCancel=${(event) => { event.preventDefault(); onClose(); }}>
    ${open && children}
  </dialog>`;
}

/** Runs an async action, tracking busy and error; returns [run, busy, error, clear]. */
export function useAction(action) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = async (...args) => {
    setBusy(true);
    setError(null);
    try {
      return await action(...args);
    } catch (caught) {
      setError(caught);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return [run, busy, error, () => setError(null)];
}

/** Loads with `load(signal)` when `deps` change; returns {data, error, loading, reload, setData}. */
export function useLoad(load, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const controller = new AbortController();
    setState((s) => ({ ...s, loading: true, error: null }));
    load(controller.signal).then(
      (data) => !controller.signal.aborted && setState({ data, error: null, loading: false }),
      (error) => !controller.signal.aborted && error.name !== "AbortError"
        && setState((s) => ({ ...s, error, loading: false })),
    );
    return () => controller.abort();
  }, [...deps, tick]);
  const setData = (update) => setState((s) => ({ ...s, data: typeof update === "function" ? update(s.data) : update }));
  return { ...state, reload: () => setTick((t) => t + 1), setData };
}

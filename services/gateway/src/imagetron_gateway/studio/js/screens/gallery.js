// Journey 5: every image, as thumbnails only (the full size loads when one is opened),
// page by page as one scrolls; images that could not be stored, with why and a retry.
import { html, h, Component, useState, useEffect, useRef } from "../lib.js";
import { get, post, thumbnailUrl } from "../api.js";
import { hub } from "../events.js";
import { href, navigate } from "../router.js";
import { Button, Empty, ErrorNote, Icon, Loading, Segmented, useAction } from "../ui.js";
import { ImageViewer } from "./task.js";

const FILTERS = [
  { value: "", label: "All" },
  { value: "upscale", label: "Upscales" },
  { value: "grid", label: "Grids" },
  { value: "version", label: "Versions" },
  { value: "failed", label: "Not stored" },
];
const PAGE = 200;
const ROW_HEIGHT = 190;

function query(filter) {
  if (filter === "failed") return { is_persisted: false, limit: PAGE };
  return { kind: filter || undefined, limit: PAGE };
}

function fits(filter, image) {
  if (filter === "failed") return !image.is_persisted;
  return !filter || image.kind === filter;
}

function Tile({ image, onOpen, onRetried }) {
  const [retry, busy, error] = useAction(async () => onRetried(await post(`/api/v1/images/${image.id}/retry`)));
  const label = `${image.kind}${image.index ? ` ${image.index}` : ""}`;
  const badge = image.kind === "upscale" ? `U${image.index}` : image.kind === "version" ? `#${image.index}` : "grid";
  const shape = image.width && image.height ? image.width / image.height : 1;
  const ratio = `${shape}`;
  const size = { flexGrow: shape, flexBasis: `${Math.round(shape * ROW_HEIGHT)}px` };
  if (!image.is_persisted) {
    return html`<li class="tile tile-failed" data-image-id=${image.id} style=${{ flexGrow: 1, flexBasis: `${ROW_HEIGHT}px` }}>
      <div class="tile-frame" style=${{ aspectRatio: ratio }}>
        <${Icon} name="alert" size=${22} />
        <p class="small">${image.error || "Being stored…"}</p>
        ${image.error && html`<${Button} kind="secondary" icon="retry" busy=${busy} onClick=${retry}
          aria-label=${`Retry storing ${label}`}>Retry</${Button}>`}
        <${ErrorNote} error=${error} compact />
      </div>
    </li>`;
  }
  return html`<li class="tile" data-image-id=${image.id} style=${size}>
    <button type="button" class="tile-frame" style=${{ aspectRatio: ratio }} onClick=${() => onOpen(image)}
      aria-label=${`${badge === "grid" ? "" : `${badge}: `}open ${label}, ${image.width}×${image.height}`}>
      <img src=${thumbnailUrl(image.id)} alt="" loading="lazy" decoding="async" width=${image.width} height=${image.height} />
      <span class="tile-kind" aria-hidden="true">${badge}</span>
    </button>
  </li>`;
}

/** A tile re-renders only when its image changes: with a thousand of them, appending a page
 * or one image arriving must not redraw the rest. */
class StillTile extends Component {
  shouldComponentUpdate(next) {
    return next.image !== this.props.image;
  }

  render(props) {
    return h(Tile, props);
  }
}

export function Gallery({ route }) {
  const filter = route.params.get("show") || "";
  const [items, setItems] = useState([]);
  const [next, setNext] = useState(null);
  const [state, setState] = useState({ loading: true, error: null });
  const [open, setOpen] = useState(null);
  const [tick, setTick] = useState(0);
  const sentinel = useRef(null);

  useEffect(() => {
    const controller = new AbortController();
    setState({ loading: true, error: null });
    setItems([]);
    get("/api/v1/images", query(filter), { signal: controller.signal }).then((page) => {
      setItems(page.items);
      setNext(page.next_cursor);
      setState({ loading: false, error: null });
    }, (error) => error.name !== "AbortError" && setState({ loading: false, error }));
    return () => controller.abort();
  }, [filter, tick]);

  const [more, loadingMore, moreError] = useAction(async () => {
    const page = await get("/api/v1/images", { ...query(filter), cursor: next });
    setItems((list) => {
      const known = new Set(list.map((i) => i.id));
      return [...list, ...page.items.filter((i) => !known.has(i.id))];
    });
    setNext(page.next_cursor);
  });

  // The next page loads as its end comes into view (the button does the same by hand).
  useEffect(() => {
    if (!next || !sentinel.current) return undefined;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && !loadingMore) more();
    }, { rootMargin: "800px" });
    observer.observe(sentinel.current);
    return () => observer.disconnect();
  }, [next, loadingMore]);

  useEffect(() => hub.subscribe((type, payload) => {
    if (!type.startsWith("image.") || !payload.image) return;
    const image = payload.image;
    setItems((list) => {
      if (list.some((i) => i.id === image.id)) {
        return fits(filter, image) ? list.map((i) => (i.id === image.id ? image : i)) : list.filter((i) => i.id !== image.id);
      }
      return fits(filter, image) ? [image, ...list] : list;
    });
  }), [filter]);

  const replace = (image) => setItems((list) => list.map((i) => (i.id === image.id ? image : i)));
  const stored = items.filter((i) => i.is_persisted);
  const step = (delta) => {
    const index = stored.findIndex((i) => i.id === open.id);
    const target = stored[index + delta];
    if (target) setOpen(target);
  };

  return html`<div class="gallery">
    <header class="screen-head">
      <h1>Gallery</h1>
      <span class="muted">${items.length > 0 ? `${items.length}${next ? "+" : ""} images` : ""}</span>
    </header>
    <div class="toolbar">
      <${Segmented} label="Show" name="show" options=${FILTERS} value=${filter}
        onChange=${(value) => navigate("gallery", null, { show: value }, { replace: true })} />
    </div>
    ${state.loading && items.length === 0 ? html`<${Loading} label="Loading images…" />`
      : state.error ? html`<${ErrorNote} error=${state.error} onRetry=${() => setTick((t) => t + 1)} />`
      : items.length === 0 ? (filter === "failed"
        ? html`<${Empty} icon="check" title="Every image is stored">Images that could not be stored would wait here for a retry.</${Empty}>`
        : html`<${Empty} icon="grid" title="No images yet"
            actions=${html`<a class="btn btn-primary" href=${href("create")}><${Icon} name="wand" /><span>Create one</span></a>`}>
            Every image you render is stored and shows up here.</${Empty}>`)
      : html`<ul class="tiles" aria-label="Images">
          ${items.map((image) => html`<${StillTile} key=${image.id} image=${image} onOpen=${setOpen} onRetried=${replace} />`)}
        </ul>
        <div ref=${sentinel} class="more">
          ${next && html`<${Button} busy=${loadingMore} onClick=${more}>Load more</${Button}>`}
        </div>
        <${ErrorNote} error=${moreError} compact />`}
    <${ImageViewer} image=${open} onClose=${() => setOpen(null)}>
      ${open && html`<div class="row" onKeyDown=${(e) => { if (e.key === "ArrowLeft") step(-1); if (e.key === "ArrowRight") step(1); }}>
        <${Button} kind="ghost" icon="back" onClick=${() => step(-1)} aria-label="Previous image">Previous</${Button}>
        <${Button} kind="ghost" icon="arrow" onClick=${() => step(1)} aria-label="Next image">Next</${Button}>
        <a class="btn btn-ghost" href=${href("tasks", open.task_id)} onClick=${() => setOpen(null)}><${Icon} name="branch" /><span>Its render</span></a>
        <a class="btn btn-ghost" href=${href("publish", null, { image: open.id })} onClick=${() => setOpen(null)}><${Icon} name="upload" /><span>Publish</span></a>
      </div>`}
    </${ImageViewer}>
  </div>`;
}

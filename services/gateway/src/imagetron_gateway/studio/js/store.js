// What the page knows about the user's tasks and images: loaded once from the API, then
// kept current by the event stream alone. Screens read it through useStore().
import { useEffect, useState } from "./lib.js";

export const GRID_COMMANDS = new Set(["imagine", "variation", "reroll"]);

class Store {
  constructor() {
    this.tasks = new Map(); // id -> task
    this.images = new Map(); // id -> image
    this.version = 0;
    this.listeners = new Set();
  }

  changed() {
    this.version += 1;
    for (const listener of this.listeners) listener(this.version);
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  putTask(task, { notify = true } = {}) {
    const known = this.tasks.get(task.id);
    // Events arrive in order, but a page load and an event can race: keep the newer.
    if (known && known.updated_at > task.updated_at) return;
    // Events do not carry the queue position (it changes without events): keep ours.
    const queue = task.queue_position ?? (known && task.status === "pending" ? known.queue_position : null);
    this.tasks.set(task.id, { ...task, queue_position: queue });
    if (notify) this.changed();
  }

  putImage(image, { notify = true } = {}) {
    this.images.set(image.id, image);
    if (notify) this.changed();
  }

  putAll({ tasks = [], images = [] }) {
    for (const task of tasks) this.putTask(task, { notify: false });
    for (const image of images) this.putImage(image, { notify: false });
    this.changed();
  }

  imagesOf(taskId) {
    return [...this.images.values()]
      .filter((image) => image.task_id === taskId)
      .sort((a, b) => a.index - b.index);
  }

  /** The image that shows a task: its grid, or its upscale. */
  coverOf(task) {
    const kind = GRID_COMMANDS.has(task.command) ? "grid" : "upscale";
    return this.imagesOf(task.id).find((image) => image.kind === kind) || null;
  }

  childrenOf(taskId) {
    return [...this.tasks.values()]
      .filter((task) => task.origin_task_id === taskId)
      .sort((a, b) => (a.created_at < b.created_at ? -1 : 1));
  }

  recentTasks(limit) {
    return [...this.tasks.values()]
      .sort((a, b) => (a.created_at < b.created_at ? 1 : -1))
      .slice(0, limit);
  }

  apply(type, payload) {
    if (type.startsWith("task.") && payload.task) this.putTask(payload.task);
    else if (type.startsWith("image.") && payload.image) this.putImage(payload.image);
  }
}

export const store = new Store();

/** Re-render when the store changes; returns the store. A change between the render and
 * the effect that subscribes (effects run after the paint) is caught by reading the version
 * again there. */
export function useStore() {
  const [, setVersion] = useState(store.version);
  useEffect(() => {
    const unsubscribe = store.subscribe(setVersion);
    setVersion(store.version);
    return unsubscribe;
  }, []);
  return store;
}

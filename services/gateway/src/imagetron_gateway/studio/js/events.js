// The one event stream of the page: every change of the user's tasks, images, prompts and
// chats arrives here, nothing is polled.
//
// While the stream drops and comes back, the browser's EventSource reconnects by itself and
// sends Last-Event-ID, so nothing is missed. If the server is away long enough to answer an
// error, EventSource gives up for good; then a new one is opened after a growing delay with
// the last id in its URL (`last_event_id`), which the gateway treats like the header.

export const EVENT_TYPES = [
  "task.created", "task.submitted", "task.progress", "task.completed", "task.failed",
  "task.cancelled", "image.persisted", "image.failed", "prompt.created", "prompt.updated",
  "prompt.deleted", "chat.created", "chat.updated", "chat.deleted",
  // EventSource needs a listener per event name: every publication event of the contract.
  ...["created", "updated", "ready", "blocked", "queued", "uploading", "uploaded", "submitted",
    "accepted", "rejected", "failed", "withdrawn", "csv_uploaded"].map((t) => `publication.${t}`),
];

const MAX_RETRY_MS = 5000;

export class EventHub {
  constructor(url = "/api/v1/events") {
    this.url = url;
    this.source = null;
    this.lastId = null;
    this.status = "connecting";
    this.retryMs = 500;
    this.timer = null;
    this.stopped = false;
    this.listeners = new Set();
    this.statusListeners = new Set();
    this.received = 0;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.source = null;
  }

  /** listener(type, payload, id) for every event; returns an unsubscribe function. */
  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onStatus(listener) {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    for (const listener of this.statusListeners) listener(status);
  }

  open() {
    const url = this.lastId === null
      ? this.url
      : `${this.url}?last_event_id=${encodeURIComponent(this.lastId)}`;
    const source = new EventSource(url);
    this.source = source;
    source.onopen = () => {
      this.retryMs = 500;
      this.setStatus("live");
    };
    source.onerror = () => {
      if (source !== this.source) return;
      if (source.readyState === EventSource.CLOSED) {
        this.setStatus("offline");
        this.reopenLater();
      } else {
        this.setStatus("reconnecting");
      }
    };
    const deliver = (event) => this.deliver(event);
    for (const type of EVENT_TYPES) source.addEventListener(type, deliver);
    source.addEventListener("reset", (event) => this.deliver(event));
  }

  reopenLater() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.source.close();
    // Jitter: after an outage, thousands of pages do not all come back in the same instant.
    const delay = this.retryMs * (0.8 + Math.random() * 0.4);
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    this.timer = setTimeout(() => {
      if (!this.stopped) {
        this.setStatus("reconnecting");
        this.open();
      }
    }, delay);
  }

  deliver(event) {
    const id = event.lastEventId;
    if (id && this.lastId !== null && Number(id) <= Number(this.lastId)) return; // seen
    if (id) this.lastId = id;
    let payload = null;
    try {
      payload = JSON.parse(event.data);
    } catch {
      return;
    }
    this.received += 1;
    for (const listener of this.listeners) {
      try {
        listener(event.type, payload, id);
      } catch (error) {
        console.error("event listener failed", error);
      }
    }
  }
}

/** The page's one stream. */
export const hub = new EventHub();

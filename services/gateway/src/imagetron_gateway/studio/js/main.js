// The studio: sign-in, then one shell (navigation, live status) around five screens.
import { html, render, useEffect, useState } from "./lib.js";
import { del, get, onSessionEnded, setCsrfToken } from "./api.js";
import { hub } from "./events.js";
import { store } from "./store.js";
import { href, useRoute } from "./router.js";
import { Button, Icon, Loading, ToastProvider, ErrorNote } from "./ui.js";
import { SignIn } from "./screens/signin.js";
import { Assistant } from "./screens/assistant.js";
import { Prompts } from "./screens/prompts.js";
import { Create } from "./screens/create.js";
import { TaskScreen } from "./screens/task.js";
import { Gallery } from "./screens/gallery.js";
import { Publish } from "./screens/publish.js";

const SCREENS = [
  { id: "assistant", label: "Assistant", icon: "spark", component: Assistant },
  { id: "prompts", label: "Prompts", icon: "text", component: Prompts },
  { id: "create", label: "Create", icon: "wand", component: Create },
  { id: "gallery", label: "Gallery", icon: "grid", component: Gallery },
  { id: "publish", label: "Publish", icon: "upload", component: Publish },
];

hub.subscribe((type, payload) => store.apply(type, payload));

const LIVE_LABELS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline, retrying",
};

/** The event stream's status, kept current. The stream may change it between the render
 * that read it and the effect that subscribes (an effect runs after the paint, and a quick
 * server opens the stream sooner): the effect reads it again, or "live" would be missed and
 * the page would say "Connecting…" until the next change. */
function useHubStatus() {
  const [status, setStatus] = useState(hub.status);
  useEffect(() => {
    const unsubscribe = hub.onStatus(setStatus);
    setStatus(hub.status);
    return unsubscribe;
  }, []);
  return status;
}

function LiveStatus() {
  const status = useHubStatus();
  return html`<div class=${`live live-${status}`} role="status" aria-live="polite" data-live=${status}>
    <span class="live-dot" aria-hidden="true"></span>${LIVE_LABELS[status]}
  </div>`;
}

/** The skip link moves the focus, not the route (routes live in the hash too). */
function skipToContent(event) {
  event.preventDefault();
  document.getElementById("main")?.focus();
}

/** Said once, while the stream is away: nothing is lost, the page catches up by itself. */
function OfflineNote() {
  const status = useHubStatus();
  if (status !== "offline") return null;
  return html`<p class="note note-warn offline-note">
    <${Icon} name="alert" />
    <span>Live updates are paused: Imagetron's event stream cannot be reached. The studio
      reconnects by itself and catches up on everything that happened meanwhile.</span>
  </p>`;
}

function Shell({ session, onSignOut }) {
  const route = useRoute();
  const screen = route.screen === "tasks"
    ? { id: "tasks", label: "Task", component: TaskScreen }
    : SCREENS.find((s) => s.id === route.screen) || SCREENS[0];
  const current = screen.id === "tasks" ? "create" : screen.id;
  useEffect(() => {
    document.title = `${screen.label} · Imagetron Studio`;
  }, [screen.id]);
  const Screen = screen.component;
  return html`<div class="shell">
    <a class="skip" href="#main" onClick=${skipToContent}>Skip to content</a>
    <header class="topbar">
      <a class="brand" href=${href("create")}><span class="brand-mark" aria-hidden="true"></span>Imagetron</a>
      <${LiveStatus} />
      <div class="account">
        <span class="account-name" title=${session.user.id}>${session.user.name}</span>
        <${Button} kind="ghost" icon="out" onClick=${onSignOut} aria-label="Sign out">
          <span class="hide-narrow">Sign out</span>
        </${Button}>
      </div>
    </header>
    <nav class="sidenav" aria-label="Studio">
      ${SCREENS.map((s) => html`<a href=${href(s.id)} class=${s.id === current ? "on" : ""}
        aria-current=${s.id === current ? "page" : undefined}>
        <${Icon} name=${s.icon} size=${20} /><span>${s.label}</span></a>`)}
    </nav>
    <main class="content" id="main" tabindex="-1" data-screen=${screen.id}>
      <${OfflineNote} />
      <${Screen} key=${screen.id + (route.id || "")} route=${route} session=${session} />
    </main>
  </div>`;
}

function App() {
  const [state, setState] = useState({ phase: "loading" });

  const start = (session) => {
    setCsrfToken(session.csrf_token);
    setState({ phase: "in", session });
    hub.start();
  };

  useEffect(() => {
    get("/api/v1/session").then(start, (error) => {
      setState(error.status === 401 ? { phase: "out" } : { phase: "error", error });
    });
    return onSessionEnded(() => {
      hub.stop();
      setCsrfToken(null);
      setState({ phase: "out", ended: "Your session has ended; sign in again to continue." });
    });
  }, []);

  const signOut = async () => {
    hub.stop();
    try {
      await del("/api/v1/session");
    } finally {
      setCsrfToken(null);
      setState({ phase: "out", ended: "You are signed out." });
    }
  };

  if (state.phase === "loading") return html`<div class="boot"><${Loading} label="Opening the studio…" /></div>`;
  if (state.phase === "error") {
    return html`<main class="signin" id="main"><div class="signin-card">
      <h1>The studio cannot start</h1><${ErrorNote} error=${state.error} onRetry=${() => location.reload()} />
    </div></main>`;
  }
  if (state.phase === "out") return html`<${SignIn} onSignedIn=${start} ended=${state.ended} />`;
  return html`<${Shell} session=${state.session} onSignOut=${signOut} />`;
}

render(html`<${ToastProvider}><${App} /></${ToastProvider}>`, document.getElementById("app"));

// Sign-in: the API key is exchanged for a session cookie; the page never keeps the key.
import { html, useState, useRef, useEffect } from "../lib.js";
import { post } from "../api.js";
import { Button, ErrorNote, useAction } from "../ui.js";

export function SignIn({ onSignedIn, ended }) {
  const [key, setKey] = useState("");
  const input = useRef(null);
  useEffect(() => input.current?.focus(), []);
  const [signIn, busy, error] = useAction(async () => {
    const session = await post("/api/v1/session", { api_key: key.trim() });
    setKey("");
    onSignedIn(session);
  });
  const submit = (event) => {
    event.preventDefault();
    if (key.trim()) signIn();
  };
  return html`<main class="signin" id="main">
    <form class="signin-card" onSubmit=${submit} aria-labelledby="signin-title">
      <div class="brand brand-large"><span class="brand-mark" aria-hidden="true"></span>Imagetron</div>
      <h1 id="signin-title">Sign in to the studio</h1>
      <p class="muted">From a brief to stored images, live. Paste your API key: <code>make up</code>
        prints one, and an admin can create more.</p>
      ${ended && html`<p class="note note-info" role="status">${ended}</p>`}
      <label class="field">
        <span class="field-label">API key</span>
        <input ref=${input} type="password" name="api_key" autocomplete="off" spellcheck="false"
          placeholder="itk_…" value=${key} onInput=${(e) => setKey(e.currentTarget.value)}
          aria-describedby="signin-help" required />
        <span class="field-help" id="signin-help">Kept only by Imagetron, never by this page.</span>
      </label>
      <${ErrorNote} error=${error} compact />
      <${Button} kind="primary" type="submit" busy=${busy} disabled=${!key.trim()}>
        ${busy ? "Signing in…" : "Sign in"}
      </${Button}>
    </form>
  </main>`;
}

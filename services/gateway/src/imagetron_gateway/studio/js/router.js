// Hash routes (`#/prompts?status=new`): the gateway serves one page, and a reload or a
// shared link opens the same screen.
import { useEffect, useState } from "./lib.js";

export function parseRoute(hash = location.hash) {
  const [path, query = ""] = hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  return { screen: parts[0] || "assistant", id: parts[1] || null, params: new URLSearchParams(query) };
}

export function href(screen, id, params) {
  let out = `#/${screen}`;
  if (id) out += `/${id}`;
  if (params) {
    const text = new URLSearchParams(
      Object.entries(params).filter(([, value]) => value !== undefined && value !== null && value !== ""),
    ).toString();
    if (text) out += `?${text}`;
  }
  return out;
}

export function navigate(screen, id, params, { replace = false } = {}) {
  const target = href(screen, id, params);
  if (replace) history.replaceState(null, "", target);
  else location.hash = target;
  if (replace) window.dispatchEvent(new HashChangeEvent("hashchange"));
}

export function useRoute() {
  const [route, setRoute] = useState(parseRoute());
  useEffect(() => {
    const update = () => setRoute(parseRoute());
    window.addEventListener("hashchange", update);
    return () => window.removeEventListener("hashchange", update);
  }, []);
  return route;
}

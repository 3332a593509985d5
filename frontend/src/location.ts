// A minimal client-side router: the path is the state, pushState moves it.
//   /             new chat
//   /c/<id>       a stored conversation
//   /console      the admin console (/console/<tab>[/<detail>])
import { useEffect, useState } from "react";

const EVENT = "expertgate:navigate";

export function navigate(path: string, opts: { replace?: boolean } = {}): void {
  if (path === window.location.pathname) return;
  if (opts.replace) window.history.replaceState(null, "", path);
  else window.history.pushState(null, "", path);
  window.dispatchEvent(new Event(EVENT));
}

export function usePath(): string {
  const [path, setPath] = useState(() => window.location.pathname);
  useEffect(() => {
    const update = () => setPath(window.location.pathname);
    window.addEventListener("popstate", update);
    window.addEventListener(EVENT, update);
    return () => {
      window.removeEventListener("popstate", update);
      window.removeEventListener(EVENT, update);
    };
  }, []);
  return path;
}

export type View =
  | { page: "chat"; conversationId: string | null }
  | { page: "console"; tab: string; detail: string | null };

export function parsePath(path: string): View {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "c" && parts[1]) return { page: "chat", conversationId: parts[1] };
  if (parts[0] === "console") {
    return { page: "console", tab: parts[1] ?? "audit", detail: parts[2] ?? null };
  }
  return { page: "chat", conversationId: null };
}

// Who is signed in on this page: an API key (kept in localStorage so a reload stays
// signed in) or, after "Sign in with SSO", the server's HttpOnly session cookie. The
// cookie cannot be read from script, so a page load asks the server: when SSO is on
// and /api/v1/me answers without a key, the cookie session is live.
import { useCallback, useEffect, useRef, useState } from "react";

import { Api } from "./api/client";
import type { AuthConfig } from "./api/types";

export const KEY_STORAGE = "expertgate.apiKey";

export type Session = { kind: "key"; key: string } | { kind: "cookie" };

export interface SessionState {
  session: Session | null;
  /** What the server offers for signing in; null until known (or if it could not be asked). */
  auth: AuthConfig | null;
  signInWithKey: (key: string) => void;
  /** Forget the key, or end the cookie session on the server. */
  signOut: () => Promise<void>;
  /** The server stopped accepting the session (key revoked, cookie expired): forget it. */
  expired: () => void;
}

function readKey(): string | null {
  try {
    return localStorage.getItem(KEY_STORAGE);
  } catch {
    return null; // storage disabled (private mode): sign in per page load
  }
}

function storeKey(key: string | null): void {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // storage disabled: the key lives in memory only
  }
}

export function useSession(): SessionState {
  const [session, setSession] = useState<Session | null>(() => {
    const key = readKey();
    return key ? { kind: "key", key } : null;
  });
  const [auth, setAuth] = useState<AuthConfig | null>(null);
  const signedInAtLoad = useRef(session !== null);

  useEffect(() => {
    let live = true;
    const anonymous = new Api({ key: null });
    anonymous
      .authConfig()
      .then(async (config) => {
        if (!live) return;
        setAuth(config);
        if (!config.oidc_enabled || signedInAtLoad.current) return;
        await anonymous.me(); // rejects (401) when there is no live cookie session
        if (live) setSession((current) => current ?? { kind: "cookie" });
      })
      .catch(() => undefined); // no config or no cookie session: the sign-in form stays
    return () => {
      live = false;
    };
  }, []);

  const signInWithKey = useCallback((key: string) => {
    storeKey(key);
    setSession({ kind: "key", key });
  }, []);

  const expired = useCallback(() => {
    storeKey(null);
    setSession(null);
  }, []);

  const signOut = useCallback(async () => {
    if (session?.kind === "cookie") {
      // Revoke on the server first, so a reload cannot find the session alive. Should
      // that fail (server unreachable), the page still signs out; the cookie expires.
      await new Api({ key: null }).logout().catch(() => undefined);
    }
    expired();
  }, [session, expired]);

  return { session, auth, signInWithKey, signOut, expired };
}

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
  /** The server stopped accepting the session (key revoked, cookie expired): forget it,
   * and tell the sign-in page why (`why`: words for the person). */
  expired: (why?: string) => void;
  /** Why the last session ended without the person signing out; null otherwise. */
  endedBecause: string | null;
}

/** The backend's 401 codes (backend/errors.py, backend/identity/sessions.py) in words for the
 * person whose session just ended. Anything else is not "your sign-in was refused". */
const REFUSED: Record<string, string> = {
  invalid_api_key:
    "Your API key is no longer accepted: it was revoked, or your account was disabled. Ask an administrator for a new key, then sign in again.",
  session_invalid: "Your single sign-on session has ended. Sign in again to continue.",
  missing_api_key: "The server no longer has a session for you. Sign in again to continue.",
};

/** Why the server refused the signed-in session, from a response: the words to show, or
 * null when the response is not a refusal of the credentials (every status but 401). */
export async function refusalOf(response: Response): Promise<string | null> {
  if (response.status !== 401) return null;
  let code: unknown = null;
  try {
    const body = (await response.clone().json()) as { error?: { code?: unknown } };
    code = body.error?.code ?? null;
  } catch {
    // not JSON: a 401 all the same
  }
  return (typeof code === "string" && REFUSED[code]) || "The server no longer accepts your sign-in. Sign in again to continue.";
}

/** `fetch` for a signed-in Api: a 401 from the server (key revoked, session ended) calls
 * `onRefused` with the reason in words; the response still goes back to the caller, and
 * other failures (network, 403, 429, 5xx) never end the session. */
export function watchRefusals(onRefused: (why: string) => void, base?: typeof fetch): typeof fetch {
  return async (input, init) => {
    const response = await (base ?? globalThis.fetch)(input, init);
    if (response.status === 401) {
      const why = await refusalOf(response);
      if (why) onRefused(why);
    }
    return response;
  };
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
  const [endedBecause, setEndedBecause] = useState<string | null>(null);
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
    setEndedBecause(null);
    setSession({ kind: "key", key });
  }, []);

  const expired = useCallback((why?: string) => {
    storeKey(null);
    setSession(null);
    setEndedBecause(why ?? null);
  }, []);

  const signOut = useCallback(async () => {
    if (session?.kind === "cookie") {
      // Revoke on the server first, so a reload cannot find the session alive. Should
      // that fail (server unreachable), the page still signs out; the cookie expires.
      await new Api({ key: null }).logout().catch(() => undefined);
    }
    expired();
  }, [session, expired]);

  return { session, auth, signInWithKey, signOut, expired, endedBecause };
}

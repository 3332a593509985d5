import { useId, useState, type FormEvent } from "react";

import { Api } from "./api/client";
import { ApiError } from "./api/errors";
import "./SignIn.css";

/** What a failed sign-in says, by the backend's error (errors.py, identity/throttle.py). */
export function signInError(err: unknown): string {
  if (err instanceof ApiError && err.status === 401) {
    return "That key was not accepted: it is mistyped, or it was revoked. Check it, or ask your administrator for a new one.";
  }
  if (err instanceof ApiError && err.code === "too_many_failed_logins") {
    return `Too many failed sign-ins from this network: ${err.message.replace(/^too many failed sign-in attempts from this address; /, "")}.`;
  }
  return `Could not sign in: ${err instanceof Error ? err.message : String(err)}`;
}

/** Sign in with an API key (checked against the server before it is kept) or, when the
 * server has single sign-on configured (`ssoUrl`), through the identity provider.
 * `notice`: why the last session ended (a revoked key, an expired SSO session). */
export function SignIn({
  onSignedIn,
  ssoUrl = null,
  notice = null,
}: {
  onSignedIn: (key: string) => void;
  ssoUrl?: string | null;
  notice?: string | null;
}) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [checking, setChecking] = useState(false);
  const id = useId();

  async function submit(e: FormEvent) {
    e.preventDefault();
    const candidate = key.trim();
    if (!candidate) return;
    setChecking(true);
    setError(null);
    try {
      await new Api({ key: candidate }).models();
      onSignedIn(candidate);
    } catch (err) {
      setError(signInError(err));
    } finally {
      setChecking(false);
    }
  }

  return (
    <main className="signin" id="main">
      <form onSubmit={submit} className="card">
        <h1>expertgate</h1>
        <p className="muted">Ask the code, legal and support experts. Sign in with your API key.</p>
        {notice && !error && (
          <p className="notice signed-out" role="alert" data-testid="signed-out-notice">
            <strong>You were signed out.</strong> {notice}
          </p>
        )}
        {ssoUrl && (
          <>
            {/* A full-page navigation: the provider's login page, then back with a session cookie. */}
            <a className="button sso" href={ssoUrl}>
              Sign in with SSO
            </a>
            <p className="muted small divider">or with an API key</p>
          </>
        )}
        <label htmlFor={id}>API key</label>
        <input
          id={id}
          type="password"
          autoComplete="current-password"
          spellCheck={false}
          placeholder="eg-…"
          value={key}
          onChange={(e) => setKey(e.target.value)}
          autoFocus
          aria-describedby={`${id}-help`}
          aria-invalid={error ? true : undefined}
        />
        <p id={`${id}-help`} className="muted small">
          Your administrator gives you a key; it starts with <code>eg-</code>. Lost it, or it stopped working? Ask them
          for a new one.
        </p>
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={checking || !key.trim()}>
          {checking ? "Checking…" : "Sign in"}
        </button>
        <details className="admin-hint small">
          <summary>Administrators</summary>
          <p className="muted">
            On a fresh install the first admin key is in <code>data/admin.key</code> on the server. Make keys for staff
            in the console&apos;s Keys tab, or with <code>expertgate keys create --user someone@example.com</code>.
          </p>
        </details>
      </form>
    </main>
  );
}

import { useId, useState, type FormEvent } from "react";

import { Api } from "./api/client";
import { ApiError } from "./api/errors";

/** Sign in with an API key (checked against the server before it is kept) or, when the
 * server has single sign-on configured (`ssoUrl`), through the identity provider. */
export function SignIn({
  onSignedIn,
  ssoUrl = null,
}: {
  onSignedIn: (key: string) => void;
  ssoUrl?: string | null;
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
      setError(
        err instanceof ApiError && err.status === 401
          ? "That key was not accepted (unknown or revoked)."
          : `Could not sign in: ${err instanceof Error ? err.message : String(err)}`,
      );
    } finally {
      setChecking(false);
    }
  }

  return (
    <main className="signin" id="main">
      <form onSubmit={submit} className="card">
        <h1>expertgate</h1>
        <p className="muted">Ask the code, legal and support experts. Sign in with your API key.</p>
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
          On a fresh install the admin key is in <code>data/admin.key</code>; an admin makes more
          with <code>expertgate keys create --user you@example.com</code>.
        </p>
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={checking || !key.trim()}>
          {checking ? "Checking…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}

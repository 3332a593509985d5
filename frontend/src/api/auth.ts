// How the SPA's requests authenticate: with an API key (Bearer), or, after SSO, with
// the HttpOnly session cookie the browser attaches by itself. The server refuses a
// cookie-authenticated write without the CSRF header, so every request carries it
// (harmless with a key; a cross-site page cannot add it without CORS, which we never grant).
export const CSRF_HEADER = "x-requested-with";
export const CSRF_VALUE = "expertgate";

/** Headers for a request made with `key`, or with the session cookie when `key` is null. */
export function authHeaders(key: string | null): Record<string, string> {
  const headers: Record<string, string> = { [CSRF_HEADER]: CSRF_VALUE };
  if (key) headers.authorization = `Bearer ${key}`;
  return headers;
}

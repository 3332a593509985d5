import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";

import { App } from "./App";
import { KEY_STORAGE } from "./session";

afterEach(() => vi.unstubAllGlobals());

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status });

interface Seen {
  method: string;
  path: string;
  authorization: string | null;
  csrf: string | null;
}

/** A server with SSO on or off and, optionally, a live cookie session for the browser. */
function server({ sso, cookieSession }: { sso: boolean; cookieSession: boolean }) {
  const seen: Seen[] = [];
  let signedIn = cookieSession;
  vi.stubGlobal("fetch", async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = input instanceof Request ? input : new Request(new URL(String(input), "http://h"), init);
    const path = new URL(req.url).pathname;
    seen.push({
      method: req.method,
      path,
      authorization: req.headers.get("authorization"),
      csrf: req.headers.get("x-requested-with"),
    });
    if (path === "/api/v1/auth/config") {
      return json({
        oidc_enabled: sso,
        login_url: sso ? "/auth/oidc/login" : null,
        logout_url: "/auth/logout",
        csrf_header: "x-requested-with",
        csrf_value: "expertgate",
      });
    }
    if (path === "/auth/logout" && req.method === "POST") {
      if (req.headers.get("x-requested-with") !== "expertgate") return json({ error: { code: "csrf_failed" } }, 403);
      signedIn = false;
      return new Response(null, { status: 204 });
    }
    if (!signedIn || req.headers.get("authorization")) {
      return json({ error: { message: "sign in", code: "invalid_api_key" } }, 401);
    }
    if (path === "/api/v1/me") {
      return json({ user_id: 1, email: "sam@example.com", team: null, groups: ["staff"], roles: ["user"], channel: "web", key: null });
    }
    if (path === "/v1/models") return json({ object: "list", data: [] });
    if (path === "/api/v1/conversations") return json({ data: [], next_cursor: null });
    return json({ detail: "Not Found" }, 404);
  });
  return seen;
}

describe("single sign-on", () => {
  it("offers 'Sign in with SSO' beside the API key form when the server has it", async () => {
    server({ sso: true, cookieSession: false });
    render(<App />);
    const link = await screen.findByRole("link", { name: "Sign in with SSO" });
    expect(link.getAttribute("href")).toBe("/auth/oidc/login");
    expect(screen.getByLabelText("API key")).toBeTruthy();
  });

  it("offers only the API key when SSO is off", async () => {
    const seen = server({ sso: false, cookieSession: false });
    render(<App />);
    await vi.waitFor(() => expect(seen.some((r) => r.path === "/api/v1/auth/config")).toBe(true));
    expect(screen.queryByRole("link", { name: "Sign in with SSO" })).toBeNull();
    expect(screen.getByLabelText("API key")).toBeTruthy();
  });

  it("picks up the cookie session after the SSO redirect and ends it on sign-out", async () => {
    const seen = server({ sso: true, cookieSession: true });
    render(<App />);
    expect(await screen.findByRole("heading", { name: "Ask the experts" })).toBeTruthy();
    expect(await screen.findByText("sam@example.com")).toBeTruthy();
    expect(localStorage.getItem(KEY_STORAGE)).toBeNull(); // nothing secret is kept by script
    // Cookie-authenticated: no key is sent, and every request carries the CSRF header.
    const calls = seen.filter((r) => r.path !== "/api/v1/auth/config");
    expect(calls.length).toBeGreaterThan(0);
    expect(calls.every((r) => r.authorization === null && r.csrf === "expertgate")).toBe(true);

    await userEvent.click(screen.getByRole("button", { name: "Sign out" }));
    expect(await screen.findByLabelText("API key")).toBeTruthy();
    expect(seen.some((r) => r.method === "POST" && r.path === "/auth/logout" && r.csrf === "expertgate")).toBe(true);
  });
});

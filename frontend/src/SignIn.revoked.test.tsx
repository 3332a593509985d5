import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";

import { ApiError } from "./api/errors";
import { App } from "./App";
import { KEY_STORAGE, refusalOf, watchRefusals } from "./session";
import { SignIn, signInError } from "./SignIn";

afterEach(() => vi.unstubAllGlobals());

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status });
const refused = (code: string) => json({ error: { message: "no", type: "authentication_error", code } }, 401);

/** A server where every authenticated call answers `answer()` (models, me, conversations...). */
function serverAnswering(answer: () => Response) {
  vi.stubGlobal("fetch", async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = input instanceof Request ? input : new Request(new URL(String(input), "http://h"), init);
    const path = new URL(req.url).pathname;
    if (path === "/api/v1/auth/config") return json({ detail: "Not Found" }, 404);
    return answer();
  });
}

describe("a session the server stops accepting", () => {
  it("drops to sign-in saying the key was revoked", async () => {
    localStorage.setItem(KEY_STORAGE, "eg-revoked");
    serverAnswering(() => refused("invalid_api_key"));
    render(<App />);
    const notice = await screen.findByTestId("signed-out-notice");
    expect(notice.textContent).toMatch(/You were signed out\..*no longer accepted.*revoked/);
    expect(screen.getByLabelText("API key")).toBeTruthy();
    expect(localStorage.getItem(KEY_STORAGE)).toBeNull();
  });

  it("says an SSO session ended in its own words", async () => {
    expect(await refusalOf(refused("session_invalid"))).toMatch(/single sign-on session has ended/);
    expect(await refusalOf(new Response("not json", { status: 401 }))).toMatch(/no longer accepts your sign-in/);
  });

  it("stays signed in through errors that are not a refusal (500, 429, 403, network)", async () => {
    const ended: string[] = [];
    for (const status of [500, 429, 403]) {
      const base = (async () => json({ error: { message: "x", code: "internal_error" } }, status)) as typeof fetch;
      const response = await watchRefusals((why) => ended.push(why), base)("http://t/v1/models");
      expect(response.status).toBe(status);
    }
    const down = (async () => Promise.reject(new TypeError("failed to fetch"))) as typeof fetch;
    await expect(watchRefusals((why) => ended.push(why), down)("http://t/v1/models")).rejects.toThrow("failed to fetch");
    expect(ended).toEqual([]);
  });

  it("keeps the key when the server errs at page load", async () => {
    localStorage.setItem(KEY_STORAGE, "eg-good");
    serverAnswering(() => json({ error: { message: "database down", code: "internal_error" } }, 500));
    render(<App />);
    expect(await screen.findByRole("button", { name: "Sign out" })).toBeTruthy();
    expect(screen.queryByTestId("signed-out-notice")).toBeNull();
    expect(localStorage.getItem(KEY_STORAGE)).toBe("eg-good");
  });
});

describe("the sign-in page", () => {
  it("speaks to staff; the operator's hint waits behind 'Administrators'", async () => {
    render(<SignIn onSignedIn={() => {}} />);
    const help = screen.getByText(/Your administrator gives you a key/);
    expect(help.textContent).not.toMatch(/admin\.key|expertgate keys/);
    const details = screen.getByText("Administrators").closest("details")!;
    expect(details.open).toBe(false);
    expect(within(details).getByText("data/admin.key")).toBeTruthy();
    await userEvent.click(screen.getByText("Administrators"));
    expect(details.open).toBe(true);
  });

  it("names a throttled sign-in and a refused key apart", () => {
    expect(signInError(new ApiError(401, "bad", { code: "invalid_api_key" }))).toMatch(/not accepted/);
    expect(
      signInError(new ApiError(429, "too many failed sign-in attempts from this address; retry in 30 s", { code: "too_many_failed_logins" })),
    ).toBe("Too many failed sign-ins from this network: retry in 30 s.");
    expect(signInError(new ApiError(0, "the server could not be reached"))).toMatch(/^Could not sign in: the server could not be reached/);
  });
});

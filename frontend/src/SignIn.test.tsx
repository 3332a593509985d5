import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";

import { App } from "./App";
import { KEY_STORAGE } from "./session";

afterEach(() => vi.unstubAllGlobals());

function serverWith(validKey: string) {
  vi.stubGlobal("fetch", async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = input instanceof Request ? input : new Request(new URL(String(input), "http://h"), init);
    const ok = req.headers.get("authorization") === `Bearer ${validKey}`;
    const path = new URL(req.url).pathname;
    if (!ok) return new Response(JSON.stringify({ error: { message: "bad key", code: "invalid_api_key" } }), { status: 401 });
    if (path === "/v1/models") return new Response(JSON.stringify({ object: "list", data: [{ id: "auto", object: "model", created: 0, owned_by: "x", description: "" }] }));
    if (path === "/api/v1/conversations") return new Response(JSON.stringify({ data: [], next_cursor: null }));
    return new Response(JSON.stringify({ detail: "Not Found" }), { status: 404 });
  });
}

describe("sign in", () => {
  it("refuses a bad key and keeps a good one", async () => {
    serverWith("eg-good");
    render(<App />);
    await userEvent.type(screen.getByLabelText("API key"), "eg-bad");
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect((await screen.findByRole("alert")).textContent).toMatch(/not accepted/);
    expect(localStorage.getItem(KEY_STORAGE)).toBeNull();

    await userEvent.clear(screen.getByLabelText("API key"));
    await userEvent.type(screen.getByLabelText("API key"), "eg-good");
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("heading", { name: "Ask the experts" })).toBeTruthy();
    expect(localStorage.getItem(KEY_STORAGE)).toBe("eg-good");

    await userEvent.click(screen.getByRole("button", { name: "Sign out" }));
    expect(localStorage.getItem(KEY_STORAGE)).toBeNull();
    expect(screen.getByLabelText("API key")).toBeTruthy();
  });
});

import { describe, expect, it } from "vitest";

import { Api, queryString } from "./client";
import { toApiError } from "./errors";

function recordingFetch(status: number, json: unknown) {
  const calls: Request[] = [];
  const fetchFn = (async (input: RequestInfo | URL, init?: RequestInit) => {
    calls.push(input instanceof Request ? input : new Request(String(input), init));
    return new Response(status === 204 ? null : JSON.stringify(json), {
      status,
      headers: { "content-type": "application/json" },
    });
  }) as typeof fetch;
  return { calls, fetchFn };
}

describe("toApiError", () => {
  it("reads the OpenAI-shaped error body", () => {
    const e = toApiError(404, { error: { message: "gone", code: "conversation_not_found", param: "conversation_id" } });
    expect([e.status, e.message, e.code, e.param, e.missingEndpoint]).toEqual([
      404, "gone", "conversation_not_found", "conversation_id", false,
    ]);
  });

  it("tells a missing route from a missing thing", () => {
    expect(toApiError(404, { detail: "Not Found" }).missingEndpoint).toBe(true);
    expect(toApiError(404, { error: { message: "x" } }).missingEndpoint).toBe(false);
  });
});

describe("Api", () => {
  it("lists conversations with the key, limit and cursor", async () => {
    const { calls, fetchFn } = recordingFetch(200, { data: [], next_cursor: null });
    const api = new Api({ key: "eg-abc", baseUrl: "http://h", fetch: fetchFn });
    await api.conversations("CUR", 10);
    const url = new URL(calls[0]!.url);
    expect(url.pathname).toBe("/api/v1/conversations");
    expect(url.searchParams.get("cursor")).toBe("CUR");
    expect(url.searchParams.get("limit")).toBe("10");
    expect(calls[0]!.headers.get("authorization")).toBe("Bearer eg-abc");
  });

  it("raises ApiError with the server's code", async () => {
    const { fetchFn } = recordingFetch(401, { error: { message: "bad key", code: "invalid_api_key" } });
    const api = new Api({ key: "k", baseUrl: "http://h", fetch: fetchFn });
    await expect(api.models()).rejects.toMatchObject({ status: 401, code: "invalid_api_key" });
  });

  it("posts feedback as JSON", async () => {
    const { calls, fetchFn } = recordingFetch(201, { id: 7 });
    const api = new Api({ key: "k", baseUrl: "http://h", fetch: fetchFn });
    const out = await api.feedback({ request_id: "r", rating: "up", comment: null, expected_expert: null });
    expect(out).toEqual({ id: 7 });
    expect(calls[0]!.method).toBe("POST");
    expect(await calls[0]!.json()).toEqual({ request_id: "r", rating: "up", comment: null, expected_expert: null });
  });

  it("deletes a conversation (204)", async () => {
    const { calls, fetchFn } = recordingFetch(204, null);
    await new Api({ key: "k", baseUrl: "http://h", fetch: fetchFn }).deleteConversation("c/1");
    expect(calls[0]!.method).toBe("DELETE");
    expect(new URL(calls[0]!.url).pathname).toBe("/api/v1/conversations/c%2F1");
  });
});

describe("helpers", () => {
  it("builds query strings without empty values", () => {
    expect(queryString({ a: "x y", b: "", c: undefined, d: 3 })).toBe("?a=x+y&d=3");
    expect(queryString({})).toBe("");
  });

});

import { describe, expect, it } from "vitest";

import { ApiError } from "../api/errors";
import type { RouteInfo } from "../api/types";
import { chatReducer, emptyChat, history, type AnswerTurn, type ChatState } from "./turns";

const route: RouteInfo = {
  expert: "legal",
  confidence: 0.8,
  reason: "routed",
  router_version: "v",
  top_k: ["legal"],
  probabilities: { legal: 0.8 },
  citations: [],
  fallbacks: [],
  request_id: "req-9",
  conversation_id: null,
};

function answer(state: ChatState): AnswerTurn {
  const t = state.turns.at(-1);
  if (t?.kind !== "answer") throw new Error("no answer");
  return t;
}

describe("chatReducer", () => {
  it("streams an answer into place and learns the conversation id at the end", () => {
    let s = chatReducer(emptyChat, { type: "asked", text: "q?", key: "a1" });
    expect(s.turns.map((t) => t.kind)).toEqual(["user", "answer"]);
    expect(answer(s).status).toBe("streaming");
    s = chatReducer(s, { type: "event", key: "a1", event: { type: "route", route } });
    s = chatReducer(s, { type: "event", key: "a1", event: { type: "delta", text: "Twelve " } });
    s = chatReducer(s, { type: "event", key: "a1", event: { type: "delta", text: "months." } });
    expect(answer(s)).toMatchObject({ text: "Twelve months.", requestId: "req-9", status: "streaming" });
    expect(answer(s).route?.expert).toBe("legal");
    s = chatReducer(s, {
      type: "event",
      key: "a1",
      event: { type: "done", route: { ...route, conversation_id: "c1" }, usage: null, finishReason: "stop" },
    });
    expect(answer(s).status).toBe("done");
    expect(s.conversationId).toBe("c1");
  });

  it("keeps the partial text on error and on stop", () => {
    let s = chatReducer(emptyChat, { type: "asked", text: "q", key: "a" });
    s = chatReducer(s, { type: "event", key: "a", event: { type: "delta", text: "part" } });
    const errored = chatReducer(s, { type: "event", key: "a", event: { type: "error", error: new ApiError(503, "down") } });
    expect(answer(errored)).toMatchObject({ text: "part", status: "error", error: "down" });
    expect(answer(chatReducer(s, { type: "stopped", key: "a" })).status).toBe("stopped");
    // A finished answer is not marked stopped afterwards.
    expect(answer(chatReducer(errored, { type: "stopped", key: "a" })).status).toBe("error");
  });

  it("loads stored messages with their routes", () => {
    const s = chatReducer(emptyChat, {
      type: "loaded",
      detail: {
        id: "c2",
        title: "t",
        channel: "api",
        created_at: "2026-01-01T00:00:00Z",
        updated_at: "2026-01-01T00:00:00Z",
        messages: [
          { id: 1, role: "user", content: "q", request_id: "r", created_at: "", prompt_tokens: 0, completion_tokens: 0 },
          {
            id: 2,
            role: "assistant",
            content: "a",
            request_id: "r",
            created_at: "",
            expert: "code",
            route: { expert: "code", reason: "fallback", confidence: 0.5, probabilities: {}, citations: [], fallbacks: [{ expert: "legal", error: "x" }] },
            prompt_tokens: 0,
            completion_tokens: 0,
          },
        ],
      },
    });
    expect(s.conversationId).toBe("c2");
    expect(answer(s)).toMatchObject({ text: "a", status: "done", requestId: "r" });
    expect(answer(s).route).toMatchObject({ expert: "code", reason: "fallback" });
  });
});

describe("history", () => {
  const done = (text: string, key: string): AnswerTurn => ({
    kind: "answer", key, text, status: "done", route: null, requestId: null, error: null, usage: null, finishReason: null,
  });

  it("sends earlier complete exchanges, then the question", () => {
    const turns = [
      { kind: "user" as const, key: "u1", text: "first" },
      done("one", "a1"),
      { kind: "user" as const, key: "u2", text: "failed" },
      { ...done("", "a2"), status: "error" as const },
    ];
    expect(history(turns, "next")).toEqual([
      { role: "user", content: "first" },
      { role: "assistant", content: "one" },
      { role: "user", content: "next" },
    ]);
  });

  it("sends a stopped exchange as the user left it: the question and the words so far", () => {
    const turns = [
      { kind: "user" as const, key: "u1", text: "stopped early" },
      { ...done("The cap", "a1"), status: "stopped" as const },
      { kind: "user" as const, key: "u2", text: "stopped before any words" },
      { ...done("", "a2"), status: "stopped" as const },
    ];
    expect(history(turns, "next")).toEqual([
      { role: "user", content: "stopped early" },
      { role: "assistant", content: "The cap" },
      { role: "user", content: "stopped before any words" },
      { role: "user", content: "next" },
    ]);
  });

  it("keeps the newest exchanges within the limits", () => {
    const turns = Array.from({ length: 10 }, (_, i) => [
      { kind: "user" as const, key: `u${i}`, text: `q${i}` },
      done(`a${i}`, `a${i}`),
    ]).flat();
    const out = history(turns, "now", { messages: 5, chars: 10_000 });
    expect(out.map((m) => m.content)).toEqual(["q8", "a8", "q9", "a9", "now"]);
  });
});

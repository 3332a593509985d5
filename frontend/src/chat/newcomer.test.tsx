// The chat as a newcomer meets it (issue 26): what the answer says while it is on its way.
import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { Api } from "../api/client";
import { interpret } from "../api/stream";
import { Answer } from "./Answer";
import { chatReducer, emptyChat, type AnswerTurn, type ChatState } from "./turns";

const api = new Api({ key: "k", baseUrl: "http://h", fetch: (async () => new Response("{}")) as typeof fetch });

function citation(number: number) {
  return { number, title: `doc ${number}`, source: `doc${number}.md`, snippet: "…", score: 0.5, location: "" };
}

/** The first SSE chunk as backend/chat/api.py `_sse` sends it when the expert starts. */
function firstChunk(expert: string, citations: number): string {
  return JSON.stringify({
    id: "chatcmpl-1",
    object: "chat.completion.chunk",
    created: 1,
    model: expert,
    choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }],
    expertgate: {
      expert,
      confidence: 0.97,
      reason: "routed",
      router_version: "v1",
      top_k: [expert],
      probabilities: { [expert]: 0.97 },
      citations: Array.from({ length: citations }, (_, i) => citation(i + 1)),
      fallbacks: [],
      request_id: "req-1",
      conversation_id: null,
    },
  });
}

function answerAfter(...payloads: string[]): AnswerTurn {
  let s: ChatState = chatReducer(emptyChat, { type: "asked", text: "q?", key: "a1" });
  for (const payload of payloads) {
    for (const event of interpret(payload)) s = chatReducer(s, { type: "event", key: "a1", event });
  }
  const t = s.turns.at(-1);
  if (t?.kind !== "answer") throw new Error("no answer");
  return t;
}

describe("the answer while it streams", () => {
  it("waits for the first chunk with a neutral line, not a routing claim", () => {
    render(<Answer api={api} turn={answerAfter()} experts={[]} />);
    expect(screen.queryByTestId("expert-badge")).toBeNull();
    expect(screen.queryByText(/Routing/)).toBeNull();
    expect(screen.getByText("Getting an expert ready…")).toBeTruthy();
  });

  it("shows the badge and what the expert reads as soon as the first chunk arrives", () => {
    render(<Answer api={api} turn={answerAfter(firstChunk("legal", 4))} experts={[]} />);
    expect(screen.getByTestId("expert-badge").getAttribute("data-expert")).toBe("legal");
    expect(screen.getByTestId("stage").textContent).toBe("legal expert is reading 4 documents…");
  });

  it("says one document, or writing when there are none", () => {
    const { unmount } = render(<Answer api={api} turn={answerAfter(firstChunk("legal", 1))} experts={[]} />);
    expect(screen.getByTestId("stage").textContent).toBe("legal expert is reading 1 document…");
    unmount();
    render(<Answer api={api} turn={answerAfter(firstChunk("code", 0))} experts={[]} />);
    expect(screen.getByTestId("stage").textContent).toBe("code expert is writing…");
  });

  it("drops the stage line once the text arrives", () => {
    const text = JSON.stringify({ choices: [{ index: 0, delta: { content: "Capped at" }, finish_reason: null }] });
    render(<Answer api={api} turn={answerAfter(firstChunk("legal", 4), text)} experts={[]} />);
    expect(screen.queryByTestId("stage")).toBeNull();
    expect(screen.getByText("Capped at")).toBeTruthy();
  });
});

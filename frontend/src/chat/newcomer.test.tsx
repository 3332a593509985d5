// The chat as a newcomer meets it (issue 26): what the answer says while it is on its way.
import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { Api } from "../api/client";
import { ApiError } from "../api/errors";
import { interpret, streamChat } from "../api/stream";
import { Answer, isDemoModel } from "./Answer";
import { answerErrorText, humaniseSeconds } from "./overQuota";
import { chatReducer, emptyChat, type AnswerTurn, type ChatState } from "./turns";

const api = new Api({ key: "k", baseUrl: "http://h", fetch: (async () => new Response("{}")) as typeof fetch });

function citation(number: number) {
  return { number, title: `doc ${number}`, source: `doc${number}.md`, snippet: "…", score: 0.5, location: "" };
}

/** The first SSE chunk as backend/api/chat.py `_sse` sends it when the expert starts. */
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

/** The last SSE chunk: finish reason, usage and the full `expertgate` record. */
function lastChunk(finish: string, upstreamModel: string | null, expert = "legal", citations = 1): string {
  const first = JSON.parse(firstChunk(expert, citations)) as { expertgate: object };
  return JSON.stringify({
    choices: [{ index: 0, delta: {}, finish_reason: finish }],
    usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    expertgate: { ...first.expertgate, conversation_id: "c1", upstream_model: upstreamModel },
  });
}

const TEXT = JSON.stringify({ choices: [{ index: 0, delta: { content: "The cap is twelve months [1]." }, finish_reason: null }] });
const DEMO_NOTICE =
  "Answered by a small demo model running on this machine; facts come from the quoted documents above.";

describe("notes under a finished answer", () => {
  it("says when the bundled demo model answered", () => {
    render(<Answer api={api} turn={answerAfter(firstChunk("legal", 1), TEXT, lastChunk("stop", "smollm2-135m-instruct"))} experts={[]} />);
    expect(screen.getByTestId("demo-model").textContent).toBe(DEMO_NOTICE);
    expect(screen.queryByTestId("cut-at-length")).toBeNull();
  });

  it("points to quoted documents only when the answer has some", () => {
    const plain = JSON.stringify({ choices: [{ index: 0, delta: { content: "Hello there." }, finish_reason: null }] });
    const last = lastChunk("stop", "smollm2-135m-instruct", "general", 0);
    render(<Answer api={api} turn={answerAfter(firstChunk("general", 0), plain, last)} experts={[]} />);
    const notice = screen.getByTestId("demo-model").textContent;
    expect(notice).toBe(
      "Answered by a small demo model running on this machine, with no documents to quote: check its facts.",
    );
    expect(notice).not.toContain("quoted documents above");
  });

  it("says nothing of the sort for another model, or before the answer is done", () => {
    const { unmount } = render(
      <Answer api={api} turn={answerAfter(firstChunk("legal", 1), TEXT, lastChunk("stop", "gpt-4o-mini"))} experts={[]} />,
    );
    expect(screen.queryByTestId("demo-model")).toBeNull();
    unmount();
    render(<Answer api={api} turn={answerAfter(firstChunk("legal", 1), TEXT)} experts={[]} />);
    expect(screen.queryByTestId("demo-model")).toBeNull();
  });

  it("recognises the demo model by name, whatever the case or prefix", () => {
    expect(isDemoModel("openai/SmolLM2-135M-Instruct")).toBe(true);
    expect(isDemoModel("smollm2-135m-instruct")).toBe(true);
    expect(isDemoModel("llama-3.1-8b")).toBe(false);
    expect(isDemoModel(null)).toBe(false);
  });

  it("marks an answer cut at the token cap", () => {
    render(<Answer api={api} turn={answerAfter(firstChunk("legal", 1), TEXT, lastChunk("length", null))} experts={[]} />);
    expect(screen.getByTestId("cut-at-length").textContent).toBe("The answer was cut at the length limit.");
    expect(screen.queryByTestId("demo-model")).toBeNull();
  });
});

describe("over quota", () => {
  it("words the server's refusal with the wait humanised", async () => {
    const body = {
      error: {
        message: "quota exceeded: user:ana@example.com is limited to 100000 tokens per day; retry after 61200 s",
        type: "rate_limit_error",
        code: "quota_exceeded",
        param: null,
      },
    };
    const fetchFn = (async () => new Response(JSON.stringify(body), { status: 429 })) as typeof fetch;
    let s: ChatState = chatReducer(emptyChat, { type: "asked", text: "q?", key: "a1" });
    for await (const event of streamChat(fetchFn, "http://h/v1/chat/completions", "k", { model: "auto", messages: [] })) {
      s = chatReducer(s, { type: "event", key: "a1", event });
    }
    const turn = s.turns.at(-1) as AnswerTurn;
    render(<Answer api={api} turn={turn} experts={[]} />);
    expect(screen.getByRole("alert").textContent).toBe(
      "You have reached your usage limit; you can ask again in about 17 hours.",
    );
  });

  it("humanises seconds, minutes, hours and days", () => {
    expect([1, 45, 59.2, 61, 150, 3599, 5400, 61200, 86400, 172800, 400000].map(humaniseSeconds)).toEqual([
      "1 second",
      "45 seconds",
      "1 minute",
      "1 minute",
      "3 minutes",
      "1 hour",
      "2 hours",
      "17 hours",
      "24 hours",
      "2 days",
      "5 days",
    ]);
  });

  it("leaves other errors as the server worded them", () => {
    const capacity = new ApiError(429, "the 'legal' expert is at capacity; retry after 5 s", { code: "expert_at_capacity" });
    expect(answerErrorText(capacity)).toBe(capacity.message);
    expect(answerErrorText(new ApiError(502, "upstream failed"))).toBe("upstream failed");
    expect(answerErrorText(new ApiError(429, "quota exceeded", { code: "quota_exceeded" }))).toBe(
      "You have reached your usage limit; try again later.",
    );
  });
});

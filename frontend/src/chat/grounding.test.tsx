import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { Api } from "../api/client";
import { interpret } from "../api/stream";
import { groundingOf, type Grounding, type RouteInfo, type StoredRoute } from "../api/types";
import { Answer } from "./Answer";
import { groundingSummary } from "./GroundingNote";
import { chatReducer, emptyChat, type AnswerTurn, type ChatState } from "./turns";

const ANSWER = "The cap is twelve months of fees [1]. Changing it needs sign-off from the CFO [1].";
const WIRE_GROUNDING = {
  score: 0.5,
  checked: 2,
  unsupported: [
    {
      start: 38,
      end: 82,
      text: "Changing it needs sign-off from the CFO [1].",
      reason: "unsupported",
      detail: "No cited passage says who signs off.",
    },
  ],
  action: "none",
};

const route: RouteInfo = {
  expert: "legal",
  confidence: 0.8,
  reason: "routed",
  router_version: "v",
  top_k: ["legal"],
  probabilities: { legal: 0.8 },
  citations: [{ number: 1, title: "MSA", source: "msa.md", snippet: "capped", score: 0.9, location: "" }],
  fallbacks: [],
  request_id: "req-1",
  conversation_id: null,
};

function g(over: Partial<Grounding>): Grounding {
  return { score: 1, checked: 5, unsupported: [], action: "none", ...over };
}

function answer(state: ChatState): AnswerTurn {
  const t = state.turns.at(-1);
  if (t?.kind !== "answer") throw new Error("no answer");
  return t;
}

describe("groundingSummary", () => {
  it("says nothing when the answer was not checked", () => {
    expect(groundingSummary(null)).toBeNull();
    expect(groundingSummary(g({ score: null, checked: 0 }))).toBeNull();
  });

  it("counts supported and unsupported statements, with the score", () => {
    expect(groundingSummary(g({}))).toEqual({ text: "All 5 statements are supported by the cited documents.", tone: "ok" });
    expect(groundingSummary(g({ checked: 1 }))?.text).toBe("The statement is supported by the cited documents.");
    const two = g({ score: 4 / 6, checked: 6, unsupported: WIRE_GROUNDING.unsupported as Grounding["unsupported"] });
    expect(groundingSummary(two)).toEqual({
      text: "2 of 6 statements are not supported by the cited documents (grounding score 67%). Check the marked text against the sources.",
      tone: "warn",
    });
    // Several findings in one statement still count once: the score says how many.
    expect(groundingSummary(g({ score: 0.75, checked: 4 }))?.text).toMatch(/^1 of 4 statements are not supported/);
  });

  it("says when the answer was replaced by quotes or the documents do not answer it", () => {
    expect(groundingSummary(g({ action: "quote" }))?.text).toMatch(/replaced by quotes from them/);
    expect(groundingSummary(g({ action: "refuse", score: 0 }))?.text).toMatch(/documents do not clearly answer/);
  });
});

describe("groundingOf", () => {
  it("reads the wire shape and tolerates what an old or odd record holds", () => {
    expect(groundingOf(WIRE_GROUNDING)?.unsupported[0]?.reason).toBe("unsupported");
    expect(groundingOf(undefined)).toBeNull();
    expect(groundingOf("x")).toBeNull();
    expect(
      groundingOf({ score: "high", checked: 3, action: "explode", unsupported: [{ start: "1" }, { start: 0, end: 2, text: "ab", reason: "new" }] }),
    ).toEqual({
      score: null,
      checked: 3,
      action: "none",
      unsupported: [{ start: 0, end: 2, text: "ab", reason: "unsupported", detail: "" }],
    });
  });
});

describe("grounding reaches the answer", () => {
  it("from the last chunk of a stream", () => {
    const events = interpret(
      JSON.stringify({
        choices: [{ delta: {}, finish_reason: "stop" }],
        expertgate: { ...route, conversation_id: "c1", grounding: WIRE_GROUNDING },
      }),
    );
    let s = chatReducer(emptyChat, { type: "asked", text: "cap?", key: "a" });
    s = chatReducer(s, { type: "event", key: "a", event: { type: "route", route } });
    expect(answer(s).route?.grounding).toBeNull();
    s = chatReducer(s, { type: "event", key: "a", event: { type: "delta", text: ANSWER } });
    for (const event of events) s = chatReducer(s, { type: "event", key: "a", event });
    expect(answer(s).status).toBe("done");
    expect(answer(s).route?.grounding).toMatchObject({ score: 0.5, checked: 2, action: "none" });
    expect(answer(s).route?.grounding?.unsupported[0]?.start).toBe(38);
  });

  it("from a stored message when the conversation reopens", () => {
    const stored = { expert: "legal", reason: "routed", citations: route.citations, grounding: WIRE_GROUNDING } as StoredRoute;
    const s = chatReducer(emptyChat, {
      type: "loaded",
      detail: {
        id: "c1",
        title: "t",
        channel: "web",
        created_at: "",
        updated_at: "",
        messages: [
          { id: 1, role: "user", content: "cap?", request_id: "r", created_at: "", prompt_tokens: 0, completion_tokens: 0 },
          { id: 2, role: "assistant", content: ANSWER, request_id: "r", created_at: "", route: stored, prompt_tokens: 0, completion_tokens: 0 },
        ],
      },
    });
    expect(answer(s).route?.grounding?.unsupported).toHaveLength(1);
    // A record stored before grounding existed has none.
    const old = chatReducer(emptyChat, {
      type: "loaded",
      detail: {
        id: "c0",
        title: "t",
        channel: "web",
        created_at: "",
        updated_at: "",
        messages: [
          { id: 3, role: "assistant", content: "a", request_id: "r", created_at: "", route: { expert: "code", reason: "routed" }, prompt_tokens: 0, completion_tokens: 0 },
        ],
      },
    });
    expect(answer(old).route?.grounding).toBeNull();
  });

  it("is shown as marks and a line once the answer is done, not while it streams", () => {
    const api = new Api({ key: "k", baseUrl: "http://h", fetch: (async () => new Response("{}")) as typeof fetch });
    const turn: AnswerTurn = {
      kind: "answer",
      key: "a",
      text: ANSWER,
      status: "streaming",
      route: { expert: "legal", confidence: 0.8, reason: "routed", citations: route.citations!, fallbacks: [], probabilities: {}, grounding: groundingOf(WIRE_GROUNDING), upstreamModel: null },
      requestId: "req-1",
      error: null,
      usage: null,
      finishReason: null,
    };
    const { rerender, container } = render(<Answer api={api} turn={turn} experts={["legal"]} />);
    expect(container.querySelector("mark")).toBeNull();
    expect(screen.queryByTestId("grounding")).toBeNull();
    rerender(<Answer api={api} turn={{ ...turn, status: "done" }} experts={["legal"]} />);
    expect(Array.from(container.querySelectorAll("mark")).map((m) => m.textContent).join("")).toBe(
      "Changing it needs sign-off from the CFO [1].",
    );
    expect(screen.getByTestId("grounding").textContent).toBe(
      "1 of 2 statements are not supported by the cited documents (grounding score 50%). Check the marked text against the sources.",
    );
    expect(screen.getByRole("button", { name: "Not supported by the cited documents" })).toBeTruthy();
  });
});

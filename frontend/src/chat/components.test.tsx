import { fireEvent, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

import { Api } from "../api/client";
import type { RouteView } from "../api/types";
import { Answer } from "./Answer";
import { ExpertBadge, reasonText } from "./ExpertBadge";
import { Feedback } from "./Feedback";
import type { AnswerTurn } from "./turns";

const base: RouteView = {
  expert: "code",
  confidence: 0.873,
  reason: "routed",
  citations: [],
  fallbacks: [],
  probabilities: {},
  grounding: null,
  upstreamModel: null,
};

function apiAnswering(status: number, json: unknown) {
  const bodies: unknown[] = [];
  const fetchFn = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = input instanceof Request ? input : new Request(String(input), init);
    bodies.push(await req.json());
    return new Response(JSON.stringify(json), { status });
  }) as typeof fetch;
  return { api: new Api({ key: "k", baseUrl: "http://h", fetch: fetchFn }), bodies };
}

describe("ExpertBadge", () => {
  it("says the percentage is the router's confidence in the expert, not in the answer", () => {
    render(<ExpertBadge route={{ ...base, expert: "legal", confidence: 1 }} />);
    const badge = screen.getByTestId("expert-badge");
    expect(badge.textContent).toBe("legal · routed with 100% confidence");
    expect(badge.getAttribute("title")).toBe(
      "how sure the router was that this is a legal question — not a check of the answer",
    );
    expect(screen.queryByTestId("route-reason")).toBeNull();
  });

  it("never rounds up to certainty", () => {
    render(<ExpertBadge route={{ ...base, expert: "legal", confidence: 0.998 }} />);
    expect(screen.getByTestId("expert-badge").textContent).toBe("legal · routed with 99% confidence");
  });

  it("shows no confidence when the router's pick did not answer", () => {
    render(<ExpertBadge route={{ ...base, expert: "general", reason: "overflow" }} />);
    expect(screen.getByTestId("expert-badge").textContent).toBe("general");
    expect(screen.getByTestId("route-reason").textContent).toMatch(/capacity/);
  });

  it("explains low confidence, fallback, overflow and context", () => {
    expect(reasonText({ ...base, expert: "general", reason: "low_confidence" })).toMatch(/no expert was confident/);
    expect(
      reasonText({ ...base, expert: "general", reason: "fallback", fallbacks: [{ expert: "legal", error: "timeout" }] }),
    ).toBe("legal was unavailable, so general answered");
    expect(reasonText({ ...base, reason: "overflow" })).toMatch(/capacity/);
    expect(reasonText({ ...base, reason: "context" })).toMatch(/follow-up/);
    expect(reasonText({ ...base, reason: "out_of_domain", expert: "general" })).toMatch(/outside/);
  });

  it("marks a hand-picked expert as chosen", () => {
    render(<ExpertBadge route={{ ...base, reason: "requested" }} />);
    expect(screen.getByTestId("expert-badge").textContent).toBe("code · chosen by hand");
  });
});

describe("Feedback", () => {
  it("sends rating, comment and the expected expert", async () => {
    const { api, bodies } = apiAnswering(201, { id: 3 });
    render(<Feedback api={api} requestId="req-1" expert="legal" experts={["code", "legal", "support", "general"]} />);
    await userEvent.click(screen.getByRole("button", { name: "Bad answer" }));
    expect(screen.getByRole("button", { name: "Bad answer" }).getAttribute("aria-pressed")).toBe("true");
    await userEvent.type(screen.getByLabelText("Comment (optional)"), "wrong team");
    await userEvent.selectOptions(screen.getByLabelText("This should have gone to"), "support");
    await userEvent.click(screen.getByRole("button", { name: "Send feedback" }));
    expect(await screen.findByText("Thanks, your feedback was sent.")).toBeTruthy();
    expect(bodies).toEqual([{ request_id: "req-1", rating: "down", comment: "wrong team", expected_expert: "support" }]);
  });

  it("says so when the server has no feedback endpoint", async () => {
    const { api } = apiAnswering(404, { detail: "Not Found" });
    render(<Feedback api={api} requestId="r" expert="code" experts={["code", "general"]} />);
    await userEvent.click(screen.getByRole("button", { name: "Good answer" }));
    await userEvent.click(screen.getByRole("button", { name: "Send feedback" }));
    expect(await screen.findByText("This server does not accept feedback yet.")).toBeTruthy();
  });

  it("shows the API's error otherwise", async () => {
    const { api } = apiAnswering(400, { error: { message: "request_id: unknown request" } });
    render(<Feedback api={api} requestId="r" expert="code" experts={["code"]} />);
    await userEvent.click(screen.getByRole("button", { name: "Good answer" }));
    await userEvent.click(screen.getByRole("button", { name: "Send feedback" }));
    expect((await screen.findByRole("alert")).textContent).toBe("request_id: unknown request");
  });
});

describe("Answer citations", () => {
  it("opens a citation's passage and source, and closes on Escape", async () => {
    const turn: AnswerTurn = {
      kind: "answer",
      key: "a",
      text: "The cap is twelve months [1].",
      status: "done",
      route: {
        ...base,
        expert: "legal",
        citations: [{ number: 1, title: "MSA §9", source: "https://docs.example/msa", snippet: "Liability <b>capped</b>", score: 0.8 }],
      },
      requestId: "r",
      error: null,
      usage: null,
      finishReason: null,
    };
    const { api } = apiAnswering(201, {});
    render(<Answer api={api} turn={turn} experts={["legal"]} />);
    await userEvent.click(screen.getByRole("button", { name: "Show source 1" }));
    const dialog = screen.getByRole("dialog", { name: "[1] MSA §9" });
    expect(dialog.textContent).toContain("Liability <b>capped</b>");
    expect(dialog.querySelector("b")).toBeNull();
    expect(screen.getByRole("link", { name: "https://docs.example/msa" }).getAttribute("rel")).toContain("noopener");
    expect(document.activeElement?.textContent).toBe("Close");
    fireEvent.keyDown(document, { key: "Escape" });
    expect(screen.queryByRole("dialog")).toBeNull();
    // The list under the answer opens it too.
    await userEvent.click(screen.getByRole("button", { name: "MSA §9" }));
    expect(screen.getByRole("dialog")).toBeTruthy();
  });
});

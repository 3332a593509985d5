import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import type { AuditEventDetail } from "../api/types";
import { toQuery } from "./AuditLog";
import { AuditTrace } from "./AuditTrace";
import { metricSummary } from "./RouterAdmin";

const event: AuditEventDetail = {
  seq: 12,
  ts: "2026-11-23T10:00:00Z",
  request_id: "req-12",
  action: "chat.completion",
  outcome: "ok",
  status: 200,
  user_id: 1,
  user_email: "ana@example.com",
  team: "platform",
  channel: "web",
  expert: "general",
  reason: "fallback",
  payload: {
    route: { probabilities: { code: 0.7, general: 0.3 }, reason: "routed" },
    latency_ms: { route: 12.5, generate: 840.25 },
    fallbacks: [{ expert: "code", error: "timeout" }],
    guard: { pii: { email: 1 } },
    llm: { model: "openai/x", upstream_model: "qwen-moe" },
  },
  prompt: "why <b>bold</b>?",
  answer: "because",
  content_digest: "d",
  content_purged_at: null,
  alg: "sha256",
  prev_hash: "p",
  hash: "h",
  integrity: { hash_ok: true, content_ok: true, links_to_previous: true, problem: null },
};

describe("AuditTrace", () => {
  it("shows routing probabilities, timings per stage, fallbacks and integrity", () => {
    render(<AuditTrace event={event} onClose={() => {}} />);
    expect(screen.getByRole("meter", { name: "code probability" }).getAttribute("aria-valuenow")).toBe("70");
    expect(screen.getByRole("row", { name: "generate 840.3 ms" })).toBeTruthy();
    expect(screen.getByText("code: timeout")).toBeTruthy();
    expect(screen.getByTestId("integrity").textContent).toBe("hash chain intact");
    expect(screen.getByText("qwen-moe")).toBeTruthy();
    // Stored prompts are text, never markup.
    expect(screen.getByText("why <b>bold</b>?")).toBeTruthy();
  });

  it("flags a tampered event", () => {
    render(
      <AuditTrace
        event={{ ...event, integrity: { hash_ok: false, content_ok: true, links_to_previous: true, problem: "hash mismatch at 12" } }}
        onClose={() => {}}
      />,
    );
    expect(screen.getByTestId("integrity").textContent).toBe("tampered: hash mismatch at 12");
  });
});

describe("toQuery", () => {
  it("sends only filled fields, times as UTC instants", () => {
    const q = toQuery({
      since: "2026-11-23T10:00",
      until: "",
      user: " ana@example.com ",
      team: "",
      expert: "legal",
      outcome: "refused",
      reason: "",
      request_id: "",
      q: "liability",
    });
    expect(Object.keys(q).sort()).toEqual(["expert", "outcome", "q", "since", "user"]);
    expect(q.user).toBe("ana@example.com");
    expect(q.since).toBe(new Date("2026-11-23T10:00").toISOString());
  });
});

describe("metricSummary", () => {
  it("lists numeric metrics briefly and skips the rest", () => {
    expect(metricSummary({ accuracy: 0.92712, n: 300, labels: ["a"], ece: 0.0371 })).toBe("accuracy 0.927 · n 300 · ece 0.037");
  });
});

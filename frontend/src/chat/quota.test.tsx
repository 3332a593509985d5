import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { rateLimits } from "../api/stream";
import { QuotaMeter, resetText, subjectText } from "./QuotaMeter";

describe("rateLimits", () => {
  it("reads the x-ratelimit headers the server sends with an answer", () => {
    const headers = new Headers({
      "x-ratelimit-limit-requests": "60",
      "x-ratelimit-remaining-requests": "59",
      "x-ratelimit-reset-requests": "41s",
      "x-ratelimit-limit-tokens": "100000",
      "x-ratelimit-remaining-tokens": "98750",
      "x-ratelimit-reset-tokens": "3600s",
    });
    expect(rateLimits(headers)).toEqual([
      { kind: "requests", limit: 60, remaining: 59, reset: "41s" },
      { kind: "tokens", limit: 100000, remaining: 98750, reset: "3600s" },
    ]);
    expect(rateLimits(new Headers())).toEqual([]);
  });
});

describe("QuotaMeter", () => {
  it("shows one number per limit, what is left, labelled; low ones flagged", () => {
    render(
      <QuotaMeter
        usage={[
          { subject: "user:ana@example.com", limit: "requests_per_minute", max: 10, remaining: 9, reset_s: 42, on_limit: "reject" },
          { subject: "team:eng", limit: "tokens_per_day", max: 10000, remaining: 500, reset_s: 7500, on_limit: "degrade" },
        ]}
      />,
    );
    const day = screen.getByRole("meter", { name: "Tokens today left (team eng's limit)" });
    expect(day.getAttribute("aria-valuenow")).toBe("500");
    expect(day.getAttribute("aria-valuetext")).toBe("500 of 10000 left, resets in 2 h 5 min");
    expect(day.className).toContain("low");
    expect(screen.getByRole("meter", { name: "Requests this minute left (your limit)" }).className).not.toContain("low");
    // One number on screen per limit: what is left, with what it counts.
    expect(screen.getAllByTestId("quota-left").map((e) => e.textContent)).toEqual([
      "9 requests left this minute",
      "500 tokens left today",
    ]);
    expect(screen.getByText(/then the generalist answers/)).toBeTruthy();
    // The headers of the last answer are no longer shown beside the meter (a second number).
    expect(screen.queryByTestId("ratelimit-headers")).toBeNull();
  });

  it("says when no limit applies and hides when usage is unknown", () => {
    const { rerender, container } = render(<QuotaMeter usage={[]} />);
    expect(screen.getByText("No limits apply to you.")).toBeTruthy();
    rerender(<QuotaMeter usage={null} />);
    expect(container.innerHTML).toBe("");
  });

  it("words whose limit it is", () => {
    expect(["user:a@b.c", "team:eng", "global:*"].map(subjectText)).toEqual([
      "your limit",
      "team eng's limit",
      "everyone's limit",
    ]);
  });

  it("words reset times", () => {
    expect([resetText(5), resetText(61), resetText(3600), resetText(5400)]).toEqual(["in 5 s", "in 2 min", "in 1 h", "in 1 h 30 min"]);
  });
});

import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

import { Api } from "../api/client";
import type { DocumentOut, ModelCard } from "../api/types";
import { Knowledge } from "./Knowledge";

const MODELS = ["auto", "legal", "general"].map((id) => ({ id, object: "model" })) as ModelCard[];

function doc(id: number, over: Partial<DocumentOut> = {}): DocumentOut {
  return {
    id,
    domain: "legal",
    source: `upload/doc-${id}.md`,
    title: `Document ${id}`,
    media_type: "text/markdown",
    groups: [],
    chunk_count: 4,
    size_bytes: 1200,
    content_hash: "ab".repeat(32),
    created_at: "2026-12-06T10:00:00Z",
    updated_at: "2026-12-06T10:00:00Z",
    safety: { flagged_chunks: 0, category: "extraction", score: 0.04, model: "safety-v1", threshold: 0.5 },
    quarantined: false,
    ...over,
  };
}

function apiListing(docs: DocumentOut[]): Api {
  const fetchFn = (async () =>
    new Response(JSON.stringify({ data: docs, next_cursor: null, total: docs.length }), {
      status: 200,
      headers: { "content-type": "application/json" },
    })) as typeof fetch;
  return new Api({ key: "eg-test", baseUrl: "http://t", fetch: fetchFn });
}

describe("the Knowledge view", () => {
  it("badges a document the safety check flagged, with its category, score and chunks", async () => {
    const flagged = { flagged_chunks: 1, category: "injection", score: 0.973, model: "safety-v1", threshold: 0.5 };
    const api = apiListing([
      doc(1, { title: "Clean terms" }),
      doc(2, { title: "Supplier terms", safety: flagged }),
      doc(3, { title: "Held terms", safety: { ...flagged, flagged_chunks: 2 }, quarantined: true }),
      doc(4, { title: "Old terms", safety: null }),
    ]);
    render(<Knowledge api={api} models={MODELS} />);
    const badges = await screen.findAllByTestId("safety-badge");
    expect(badges.map((b) => b.textContent)).toEqual([
      "flagged: injection 0.97 · 1/4 chunks",
      "quarantined: injection 0.97 · 2/4 chunks",
    ]);
    const row = screen.getByText("Supplier terms").closest("tr")!;
    expect(within(row).getByTestId("safety-badge")).toBeTruthy();
    for (const title of ["Clean terms", "Old terms"]) {
      expect(within(screen.getByText(title).closest("tr")!).queryByTestId("safety-badge")).toBeNull();
    }
  });
});

describe("releasing a quarantined document", () => {
  it("offers Release only on a quarantined document and calls the release endpoint", async () => {
    const calls: string[] = [];
    const flagged = { flagged_chunks: 1, category: "injection", score: 0.97, model: "safety-v1", threshold: 0.5 };
    let held = true;
    const fetchFn = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = input instanceof Request ? input : new Request(String(input), init);
      calls.push(`${request.method} ${new URL(request.url).pathname}`);
      const docs = [doc(1, { title: "Clean terms" }), doc(2, { title: "Held terms", safety: flagged, quarantined: held })];
      if (request.method === "POST") {
        held = false;
        return new Response(JSON.stringify({ document: { ...docs[1], quarantined: false }, index_version: "v2" }), {
          status: 200,
          headers: { "content-type": "application/json" },
        });
      }
      return new Response(JSON.stringify({ data: docs, next_cursor: null, total: 2 }), {
        status: 200,
        headers: { "content-type": "application/json" },
      });
    }) as typeof fetch;
    const api = new Api({ key: "eg-test", baseUrl: "http://t", fetch: fetchFn });
    window.confirm = () => true;
    render(<Knowledge api={api} models={MODELS} />);
    const button = await screen.findByRole("button", { name: "Release Held terms" });
    expect(screen.queryByRole("button", { name: "Release Clean terms" })).toBeNull();
    await userEvent.click(button);
    expect(calls).toContain("POST /api/v1/documents/2/release");
    expect(await screen.findByText(/^flagged: injection/)).toBeTruthy();
    expect(screen.queryByRole("button", { name: "Release Held terms" })).toBeNull();
  });
});

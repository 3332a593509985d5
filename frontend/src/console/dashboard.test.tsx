import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

import { Api } from "../api/client";
import type { DashboardStats } from "../api/types";
import { cacheTile } from "./CacheTile";
import { BarChart, LineChart, niceMax } from "./charts";
import { Dashboard, reviewTile, summarize, waited } from "./Dashboard";
import { Users } from "./Users";

// Shaped like GET /api/v1/admin/stats: 20 requests over three hourly buckets.
const stats: DashboardStats = {
  window: { since: "2026-11-23T09:00:00Z", until: "2026-11-23T12:00:00Z", bucket_s: 3600 },
  traffic: {
    buckets: ["2026-11-23T09:00:00Z", "2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z"],
    series: [
      { expert: "code", counts: [4, 6, 2] },
      { expert: "legal", counts: [0, 3, 1] },
      { expert: "support", counts: [0, 0, 0] },
      { expert: "general", counts: [1, 2, 1] },
    ],
  },
  experts: [
    { expert: "code", requests: 12, share: 0.6 },
    { expert: "legal", requests: 4, share: 0.2 },
    { expert: "general", requests: 4, share: 0.2 },
  ],
  outcomes: { requests: 20, abstained: 3, fallback: 1, degraded: 2, quota_rejected: 5, errors: 0 },
  confidence: Array.from({ length: 10 }, (_, i) => ({ low: i / 10, high: (i + 1) / 10, count: i === 9 ? 7 : i % 3 })),
  latency: [
    { expert: "all", stage: "route", p50_ms: 4.2, p95_ms: 9.5, samples: 20 },
    { expert: "all", stage: "total", p50_ms: 820, p95_ms: 2400, samples: 20 },
    { expert: "code", stage: "total", p50_ms: 700, p95_ms: 1900, samples: 12 },
  ],
  latency_samples: 20,
  teams: [
    { team: "eng", requests: 14, prompt_tokens: 1200, completion_tokens: 3400, cost_usd: 0.0057, quota_rejected: 5, degraded: 2 },
    { team: null, requests: 6, prompt_tokens: 100, completion_tokens: 200, cost_usd: null, quota_rejected: 0, degraded: 0 },
  ],
  balance: { entropy_bits: 1.371, max_bits: 2, balance: 0.6855 },
  dead_experts: ["support"],
  breakers: [
    { expert: "code", state: "closed", consecutive_failures: 0, retry_in_s: 0 },
    { expert: "legal", state: "open", consecutive_failures: 5, retry_in_s: 12.4 },
  ],
  cache: {
    enabled: 2,
    experts: [
      { expert: "code", enabled: true, counts: counts({}) },
      { expert: "legal", enabled: true, counts: counts({ hits: 3, exact_hits: 2, semantic_hits: 1, misses: 1, bypassed: 1, tokens_saved: 1250 }) },
      { expert: "support", enabled: false, counts: counts({}) },
      { expert: "general", enabled: false, counts: counts({}) },
    ],
    total: counts({ hits: 3, exact_hits: 2, semantic_hits: 1, misses: 1, bypassed: 1, tokens_saved: 1250 }),
  },
  breakers_process_local: true,
};

type CacheCounts = DashboardStats["cache"]["total"];

/** A cache counts object as the server computes it: lookups and the rate from hits and misses. */
function counts(c: Partial<CacheCounts>): CacheCounts {
  const base = { hits: 0, exact_hits: 0, semantic_hits: 0, misses: 0, bypassed: 0, skipped: 0, tokens_saved: 0, ...c };
  const lookups = base.hits + base.misses;
  return { ...base, lookups, hit_rate: lookups ? base.hits / lookups : null };
}

function fakeApi(routes: Record<string, unknown>) {
  const calls: Request[] = [];
  const fetchFn = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(String(input), init);
    calls.push(request);
    const path = new URL(request.url).pathname;
    const body = routes[`${request.method} ${path}`];
    if (body === undefined) return new Response(JSON.stringify({ detail: "Not Found" }), { status: 404 });
    return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
  }) as typeof fetch;
  return { api: new Api({ key: "eg-test", baseUrl: "http://t", fetch: fetchFn }), calls };
}

describe("summarize", () => {
  it("turns counts into the headline rates", () => {
    const tiles = Object.fromEntries(summarize(stats).map((t) => [t.label, t]));
    expect(tiles.Requests!.value).toBe("20");
    expect(tiles.Abstained!.value).toBe("15.0%");
    expect(tiles.Fallbacks!.value).toBe("5.0%");
    expect(tiles.Quota!.value).toBe("5");
    expect(tiles.Quota!.detail).toContain("2 degraded");
    expect(tiles["Load balance"]!.value).toBe("0.69");
  });

  it("shows no rates for an empty window", () => {
    const empty = { ...stats, outcomes: { requests: 0, abstained: 0, fallback: 0, degraded: 0, quota_rejected: 0, errors: 0 } };
    const tiles = summarize(empty);
    expect(tiles.find((t) => t.label === "Abstained")!.value).toBe("–");
    expect(tiles.find((t) => t.label === "Load balance")!.value).toBe("–");
  });
});

describe("review queue tile", () => {
  it("says how many answers wait for a person, and for how long", () => {
    const tile = reviewTile({ pending: 3, by_expert: { legal: 2, code: 1 }, age_p50_s: 90, age_p95_s: 7200, age_max_s: 9000 });
    expect(tile.value).toBe("3");
    expect(tile.detail).toBe("waiting p50 2 min, p95 2.0 h, oldest 2.5 h (legal 2, code 1)");
    const none = reviewTile({ pending: 0, by_expert: {}, age_p50_s: 0, age_p95_s: 0, age_max_s: 0 });
    expect(none.detail).toBe("no answer waits for a person");
    expect([waited(4), waited(61), waited(5400)]).toEqual(["4 s", "1 min", "1.5 h"]);
  });
});

describe("response cache tile", () => {
  it("gives the hit rate and tokens saved overall and per expert, and names the experts it is off for", () => {
    const tile = cacheTile(stats.cache);
    expect(tile.value).toBe("75.0%");
    expect(tile.detail).toBe("hit rate: 3 of 4 lookups hit (2 exact, 1 semantic), 1,250 tokens saved");
    expect(tile.experts).toEqual([
      { expert: "code", text: "on, no lookups in this window" },
      { expert: "legal", text: "75.0% hit rate: 3 of 4 lookups hit (2 exact, 1 semantic), 1,250 tokens saved" },
    ]);
    expect(tile.off).toEqual(["support", "general"]);
  });

  it("says when the cache is off for every expert, or nothing was looked up", () => {
    const off = { enabled: 0, experts: stats.cache.experts.map((e) => ({ ...e, enabled: false, counts: counts({}) })), total: counts({}) };
    expect(cacheTile(off)).toEqual({ value: "Off", detail: "the cache is off for every expert", experts: [], off: [] });
    const idle = { ...stats.cache, experts: stats.cache.experts.map((e) => ({ ...e, counts: counts({ bypassed: 2 }) })), total: counts({ bypassed: 8 }) };
    const tile = cacheTile(idle);
    expect([tile.value, tile.detail]).toEqual(["–", "no lookups in this window"]);
    expect(tile.experts.map((e) => e.text)).toEqual(["on, no lookups in this window", "on, no lookups in this window"]);
  });

  it("still shows an expert whose cache was turned off after its lookups, saying so", () => {
    const turnedOff = {
      enabled: 0,
      experts: [{ expert: "legal", enabled: false, counts: counts({ hits: 1, exact_hits: 1, misses: 1, tokens_saved: 40 }) }],
      total: counts({ hits: 1, exact_hits: 1, misses: 1, tokens_saved: 40 }),
    };
    const tile = cacheTile(turnedOff);
    expect(tile.value).toBe("50.0%");
    expect(tile.experts).toEqual([{ expert: "legal", text: "50.0% hit rate: 1 of 2 lookups hit (1 exact, 0 semantic), 40 tokens saved (cache now off)" }]);
  });
});

describe("charts", () => {
  it("rounds axis maxima to 1, 2 or 5 times a power of ten", () => {
    expect([niceMax(0), niceMax(7), niceMax(12), niceMax(180), niceMax(2400)]).toEqual([1, 10, 20, 200, 5000]);
  });

  it("draws one line per series, named for screen readers, with a data table", () => {
    const { container } = render(
      <LineChart title="Traffic" unit="requests" labels={["a", "b"]} series={[{ name: "code", values: [1, 3] }, { name: "legal", values: [2, 0] }]} />,
    );
    expect(container.querySelectorAll("polyline")).toHaveLength(2);
    expect(screen.getByRole("img", { name: "Traffic (requests); totals: code 4, legal 2" })).toBeTruthy();
    const table = screen.getByRole("table", { hidden: true });
    expect(within(table).getAllByRole("row", { hidden: true })).toHaveLength(3);
  });

  it("scales bars to the largest value and writes each value", () => {
    const { container } = render(
      <BarChart title="Tokens" unit="tokens" columns={["Team", "Tokens"]} bars={[{ label: "eng", value: 50 }, { label: "ops", value: 25 }]} />,
    );
    const [eng, ops] = [...container.querySelectorAll("g[data-bar] rect")].map((r) => Number(r.getAttribute("width")));
    expect(eng! / ops!).toBeCloseTo(2);
    expect(screen.getByRole("img", { name: "Tokens (tokens): eng 50, ops 25" })).toBeTruthy();
  });

  it("says so when there is nothing to draw", () => {
    render(<BarChart title="Tokens" unit="tokens" columns={["Team", "Tokens"]} bars={[]} />);
    expect(screen.getByText("No data in this window.")).toBeTruthy();
  });
});

describe("Dashboard", () => {
  it("asks for the chosen window and renders every panel from the answer", async () => {
    const queue = { pending: 2, by_expert: { legal: 2 }, age_p50_s: 30, age_p95_s: 600, age_max_s: 700 };
    const { api, calls } = fakeApi({ "GET /api/v1/admin/stats": stats, "GET /api/v1/reviews/stats": queue });
    const { container } = render(<Dashboard api={api} />);
    expect(await screen.findByTestId("tile-Requests")).toHaveProperty("textContent", "20");
    expect(await screen.findByTestId("tile-Review queue")).toHaveProperty("textContent", "2");
    const query = new URL(calls[0]!.url).searchParams;
    const hours = (Date.parse(query.get("until")!) - Date.parse(query.get("since")!)) / 3_600_000;
    expect(hours).toBe(24);

    expect(container.querySelectorAll("polyline[data-series]")).toHaveLength(4);
    expect(screen.getByRole("img", { name: /Traffic per expert.*code 12, legal 4, support 0, general 4/ })).toBeTruthy();
    expect(screen.getByRole("img", { name: /Routing confidence.*0\.9–1\.0 7/ })).toBeTruthy();
    expect(screen.getByRole("img", { name: /Latency per stage.*total 2400 ms/ })).toBeTruthy();
    expect(screen.getByRole("img", { name: /Tokens per team.*eng 4600, \(no team\) 300/ })).toBeTruthy();
    const teams = screen.getByRole("table", { name: "Usage per team" });
    expect(within(teams).getByRole("row", { name: /eng 14 1200 3400 \$0\.0057 5 2/ })).toBeTruthy();
    expect(within(teams).getByText("no price set")).toBeTruthy();
    expect(screen.getByTestId("dead-experts").textContent).toContain("support");
    expect(screen.getByTestId("tile-Response cache").textContent).toBe("75.0%");
    const perExpert = screen.getByRole("list", { name: "Response cache per expert" });
    expect(within(perExpert).getAllByRole("listitem").map((li) => li.textContent)).toEqual([
      "code on, no lookups in this window",
      "legal 75.0% hit rate: 3 of 4 lookups hit (2 exact, 1 semantic), 1,250 tokens saved",
    ]);
    expect(screen.getByText("off for support, general")).toBeTruthy();
    const breakers = screen.getByRole("table", { name: "Circuit breakers" });
    expect(within(breakers).getByText("open (probe in 13 s)")).toBeTruthy();

    await userEvent.selectOptions(screen.getByLabelText("Window"), "7d");
    await screen.findByTestId("tile-Requests");
    const statsCalls = calls.filter((c) => c.url.includes("/api/v1/admin/stats"));
    const q7 = new URL(statsCalls[statsCalls.length - 1]!.url).searchParams;
    expect((Date.parse(q7.get("until")!) - Date.parse(q7.get("since")!)) / 3_600_000).toBe(168);
  });

  it("shows the server's refusal", async () => {
    const { api } = fakeApi({});
    render(<Dashboard api={api} />);
    expect((await screen.findByRole("alert")).textContent).toMatch(/^Could not load the figures/);
  });
});

describe("Users", () => {
  it("lists users, teams and quotas and sends an edit as a PATCH", async () => {
    const user = { id: 7, email: "ana@example.com", team: "eng", roles: ["user"], groups: ["staff"], disabled: false, active_keys: 1, created_at: "2026-11-20T00:00:00Z" };
    const { api, calls } = fakeApi({
      "GET /api/v1/admin/users": [user],
      "GET /api/v1/admin/teams": [{ id: 1, name: "eng", members: 1, created_at: "2026-11-20T00:00:00Z" }],
      "GET /api/v1/admin/quotas": [{ scope: "team", name: "eng", subject: "team:eng", rpm: 60, tokens_per_day: 100000, tokens_per_month: null, on_limit: "reject" }],
      "PATCH /api/v1/admin/users/7": { ...user, roles: ["auditor", "user"], team: "ops" },
    });
    render(<Users api={api} />);
    const row = await screen.findByRole("row", { name: /ana@example\.com eng user staff 1 active/ });
    expect(screen.getByRole("row", { name: /team:eng 60 100,000 no limit reject/ })).toBeTruthy();
    await userEvent.click(within(row).getByRole("button", { name: "Edit ana@example.com" }));
    await userEvent.click(screen.getByRole("checkbox", { name: "auditor" }));
    const team = screen.getByLabelText("Team (empty: none)");
    await userEvent.clear(team);
    await userEvent.type(team, "ops");
    await userEvent.click(screen.getByRole("button", { name: "Save" }));
    const patch = calls.find((c) => c.method === "PATCH")!;
    expect(new URL(patch.url).pathname).toBe("/api/v1/admin/users/7");
    expect(await patch.json()).toEqual({ roles: ["user", "auditor"], groups: ["staff"], team: "ops" });
  });
});

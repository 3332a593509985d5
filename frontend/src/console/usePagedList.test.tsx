import { act, renderHook, waitFor } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { ApiError } from "../api/errors";
import type { Page } from "../api/types";
import { usePagedList } from "./usePagedList";

/** A page fetch the test answers by hand, in any order. */
function deferredPages() {
  const pending: { cursor?: string; resolve: (p: Page<number>) => void; reject: (e: unknown) => void }[] = [];
  const fetchPage = (cursor?: string) =>
    new Promise<Page<number>>((resolve, reject) => pending.push({ cursor, resolve, reject }));
  return { pending, fetchPage };
}

describe("usePagedList", () => {
  it("loads the first page, appends the next with its cursor, and stops at the last", async () => {
    const { pending, fetchPage } = deferredPages();
    const { result } = renderHook(() => usePagedList(fetchPage));
    expect(result.current.status).toBe("loading");
    await act(async () => pending[0]!.resolve({ data: [3, 2], next_cursor: "after-2" }));
    expect(result.current.items).toEqual([3, 2]);
    expect(result.current.hasMore).toBe(true);

    let more: Promise<void> = Promise.resolve();
    act(() => {
      more = result.current.loadMore();
    });
    expect(result.current.loadingMore).toBe(true);
    await act(() => result.current.loadMore()); // a second click while the first is out: nothing
    expect(pending.map((p) => p.cursor)).toEqual([undefined, "after-2"]);
    await act(async () => {
      pending[1]!.resolve({ data: [1], next_cursor: null });
      await more;
    });
    expect(result.current.items).toEqual([3, 2, 1]);
    expect(result.current.hasMore).toBe(false);
    expect(result.current.loadingMore).toBe(false);
  });

  it("drops an answer that arrives after the list started over", async () => {
    const first = deferredPages();
    const second = deferredPages();
    const { result, rerender } = renderHook(({ fetch }) => usePagedList(fetch), {
      initialProps: { fetch: first.fetchPage },
    });
    rerender({ fetch: second.fetchPage }); // new filters before the old answer came
    await act(async () => second.pending[0]!.resolve({ data: [9], next_cursor: null }));
    await act(async () => first.pending[0]!.resolve({ data: [1, 2], next_cursor: "stale" }));
    expect(result.current.items).toEqual([9]);
    expect(result.current.hasMore).toBe(false);
  });

  it("keeps the rows when a next page fails, and says forbidden or missing for the first", async () => {
    const { pending, fetchPage } = deferredPages();
    const { result } = renderHook(() => usePagedList(fetchPage));
    await act(async () => pending[0]!.resolve({ data: [2], next_cursor: "c" }));
    await act(async () => {
      const more = result.current.loadMore();
      pending[1]!.reject(new ApiError(400, "the cursor is not one this list returned", { code: "invalid_cursor" }));
      await more;
    });
    expect(result.current.items).toEqual([2]);
    expect(result.current.status).toBe("ready");
    expect((result.current.error as ApiError).code).toBe("invalid_cursor");

    await act(async () => {
      const again = result.current.reload();
      pending[2]!.reject(new ApiError(403, "no"));
      await again;
    });
    expect(result.current.status).toBe("forbidden");

    const missing = deferredPages();
    const gone = renderHook(() => usePagedList(missing.fetchPage));
    await act(async () => missing.pending[0]!.reject(new ApiError(404, "Not Found", { missingEndpoint: true })));
    await waitFor(() => expect(gone.result.current.status).toBe("missing"));
  });
});

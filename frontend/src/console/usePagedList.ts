// One list a page at a time, for every console tab that lists from the API: each list
// endpoint takes `limit` + an opaque `cursor` and answers `{data, next_cursor}`
// (backend/api/schemas/paging.py), so one hook holds the rows, the next cursor, and the
// states a tab shows (loading, ready, missing endpoint, forbidden, error).
import { useCallback, useEffect, useRef, useState } from "react";

import { ApiError } from "../api/errors";
import type { Page } from "../api/types";

export type ListStatus = "loading" | "ready" | "missing" | "forbidden" | "error";

export interface PagedList<T, P extends Page<T> = Page<T>> {
  /** Every row loaded so far, pages in order. */
  items: T[];
  /** The latest page shown, for what an endpoint sends beside its rows (documents' `total`). */
  last: P | null;
  status: ListStatus;
  /** The last failure (null after a success), also when `status` says missing or forbidden:
   * the tab words it. A failed "more" keeps the rows shown and the status ready. */
  error: unknown;
  /** Whether the server said another page follows. */
  hasMore: boolean;
  /** A next page is being fetched (a second click then does nothing). */
  loadingMore: boolean;
  /** Append the next page. */
  loadMore: () => Promise<void>;
  /** Start again from the first page (after an edit elsewhere, or "Refresh"). */
  reload: () => Promise<void>;
  /** Change the loaded rows in place (one was relabelled, or decided). */
  update: (change: (items: T[]) => T[]) => void;
}

/**
 * `fetchPage(cursor)` fetches one page (no cursor: the first); the list starts over
 * whenever it changes, so wrap it in useCallback with the filters it reads. An answer
 * that arrives after the list started over (new filters) is dropped, never shown.
 */
export function usePagedList<T, P extends Page<T> = Page<T>>(
  fetchPage: (cursor?: string) => Promise<P>,
): PagedList<T, P> {
  const [items, setItems] = useState<T[]>([]);
  const [last, setLast] = useState<P | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [status, setStatus] = useState<ListStatus>("loading");
  const [error, setError] = useState<unknown>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  // Bumped by every start from the first page: a fetch of an older generation is stale.
  const generation = useRef(0);
  const busy = useRef(false);

  const fetchInto = useCallback(
    async (cursor?: string) => {
      const mine = cursor ? generation.current : ++generation.current;
      try {
        const page = await fetchPage(cursor);
        if (mine !== generation.current) return;
        setItems((shown) => (cursor ? [...shown, ...page.data] : page.data));
        setLast(page);
        setNext(page.next_cursor ?? null);
        setStatus("ready");
        setError(null);
      } catch (err) {
        if (mine !== generation.current) return;
        setError(err);
        if (err instanceof ApiError && err.missingEndpoint) setStatus("missing");
        else if (err instanceof ApiError && err.status === 403) setStatus("forbidden");
        else if (!cursor) setStatus("error");
      }
    },
    [fetchPage],
  );

  useEffect(() => {
    void fetchInto();
  }, [fetchInto]);

  const loadMore = useCallback(async () => {
    if (!next || busy.current) return;
    busy.current = true;
    setLoadingMore(true);
    try {
      await fetchInto(next);
    } finally {
      busy.current = false;
      setLoadingMore(false);
    }
  }, [fetchInto, next]);

  const reload = useCallback(() => fetchInto(), [fetchInto]);

  return { items, last, status, error, hasMore: next !== null, loadingMore, loadMore, reload, update: setItems };
}

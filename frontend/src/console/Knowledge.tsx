import { useCallback, useEffect, useId, useRef, useState, type FormEvent } from "react";

import type { Api } from "../api/client";
import type { DocumentOut, DocumentPage, IngestJob, ModelCard } from "../api/types";
import { ErrorLine, GridTable } from "./Table";
import { usePagedList } from "./usePagedList";

const FINISHED = new Set(["succeeded", "partial", "failed"]);

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Documents per domain: list, upload (with the ingest job's progress), delete. */
export function Knowledge({ api, models }: { api: Api; models: ModelCard[] }) {
  const domains = models.map((m) => m.id).filter((id) => id !== "auto" && id !== "general");
  const [domain, setDomain] = useState("");
  const [actionError, setError] = useState<string | null>(null);
  const [job, setJob] = useState<IngestJob | null>(null);
  const [uploadDomain, setUploadDomain] = useState("");
  const [groups, setGroups] = useState("");
  const fileRef = useRef<HTMLInputElement>(null);
  const id = useId();

  const fetchPage = useCallback((cursor?: string) => api.documents(domain || undefined, cursor), [api, domain]);
  const list = usePagedList<DocumentOut, DocumentPage>(fetchPage);
  const { items: docs, reload: load } = list;
  const total = list.last?.total ?? 0;
  const error =
    list.status === "missing"
      ? "This server does not offer the documents API yet."
      : list.error
        ? `Could not list documents: ${message(list.error)}`
        : actionError;

  // Poll the ingest job until it finishes, then refresh the list.
  useEffect(() => {
    if (!job || FINISHED.has(job.status)) return;
    const timer = window.setTimeout(() => {
      api.ingestJob(job.id).then(
        (next) => {
          setJob(next);
          if (FINISHED.has(next.status)) void load();
        },
        (err) => setError(`Could not follow the upload: ${message(err)}`),
      );
    }, 400);
    return () => window.clearTimeout(timer);
  }, [api, job, load]);

  async function upload(e: FormEvent) {
    e.preventDefault();
    const files = Array.from(fileRef.current?.files ?? []);
    const target = uploadDomain || domains[0];
    if (!files.length || !target) return;
    setError(null);
    try {
      const groupList = groups.split(",").map((g) => g.trim()).filter(Boolean);
      setJob(await api.upload(target, files, groupList));
      if (fileRef.current) fileRef.current.value = "";
    } catch (err) {
      setError(`Upload failed: ${message(err)}`);
    }
  }

  async function release(doc: DocumentOut) {
    if (!window.confirm(`Release "${doc.title || doc.source}" from quarantine? Its flagged passages will reach the model fenced as quoted data.`)) return;
    try {
      await api.releaseDocument(doc.id);
      await load();
    } catch (err) {
      setError(`Could not release: ${message(err)}`);
    }
  }

  async function remove(doc: DocumentOut) {
    if (!window.confirm(`Delete "${doc.title || doc.source}" from ${doc.domain}?`)) return;
    try {
      await api.deleteDocument(doc.id);
      await load();
    } catch (err) {
      setError(`Could not delete: ${message(err)}`);
    }
  }

  return (
    <section aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Knowledge</h2>
      <form className="card stack" onSubmit={upload} aria-label="Upload documents">
        <h3>Upload documents</h3>
        <div className="row">
          <label htmlFor={`${id}-ud`}>Domain</label>
          <select id={`${id}-ud`} value={uploadDomain || domains[0] || ""} onChange={(e) => setUploadDomain(e.target.value)}>
            {domains.map((d) => (
              <option key={d} value={d}>
                {d}
              </option>
            ))}
          </select>
          <label htmlFor={`${id}-f`}>Files</label>
          <input id={`${id}-f`} ref={fileRef} type="file" multiple accept=".md,.txt,.html,.htm,.pdf,.rst" />
        </div>
        <div className="row">
          <label htmlFor={`${id}-g`}>Groups allowed (comma separated; empty: everyone)</label>
          <input id={`${id}-g`} value={groups} onChange={(e) => setGroups(e.target.value)} />
          <button type="submit">Upload</button>
        </div>
        {job && (
          <div role="status" data-testid="ingest-job">
            <p>
              Job <code>{job.id.slice(0, 8)}</code>: <strong>{job.status}</strong> — {job.done_files} of{" "}
              {job.total_files} files
            </p>
            <progress max={Math.max(job.total_files, 1)} value={job.done_files} aria-label="Upload progress" />
            {job.results.length > 0 && (
              <ul className="small">
                {job.results.map((r) => (
                  <li key={r.source}>
                    {r.source}: {r.status}
                    {r.chunks ? ` (${r.chunks} chunks)` : ""}
                    {r.message ? ` — ${r.message}` : ""}
                  </li>
                ))}
              </ul>
            )}
            {job.error && <p className="error">{job.error}</p>}
          </div>
        )}
      </form>
      <ErrorLine error={error} />
      <div className="row">
        <label htmlFor={`${id}-d`}>Show domain</label>
        <select id={`${id}-d`} value={domain} onChange={(e) => setDomain(e.target.value)}>
          <option value="">all</option>
          {domains.map((d) => (
            <option key={d} value={d}>
              {d}
            </option>
          ))}
        </select>
        <span className="muted small">{total} documents</span>
      </div>
      <div className="table-wrap">
        <GridTable label="Documents" columns={["Title", "Domain", "Source", "Chunks", "Groups", "Updated", <span className="sr-only">Actions</span>]}>
          {docs.map((d) => (
            <tr key={d.id}>
              <td>
                {d.title}
                {d.safety && d.safety.flagged_chunks > 0 && (
                  <>
                    {" "}
                    <span
                      className="badge error"
                      data-testid="safety-badge"
                      title={`The safety check flagged ${d.safety.flagged_chunks} of ${d.chunk_count} chunks as possible instructions to the assistant (${d.safety.category}, score ${d.safety.score.toFixed(2)}). ${d.quarantined ? "Held out of search until an administrator releases it." : "Its flagged passages reach the model only as quoted data, or not at all, per the domain's policy."}`}
                    >
                      {d.quarantined ? "quarantined" : "flagged"}: {d.safety.category} {d.safety.score.toFixed(2)} · {d.safety.flagged_chunks}/{d.chunk_count} chunks
                    </span>
                  </>
                )}
              </td>
              <td>
                <span className={`badge expert-${d.domain}`}>{d.domain}</span>
              </td>
              <td>
                <code>{d.source}</code>
              </td>
              <td>{d.chunk_count}</td>
              <td>{d.groups.length ? d.groups.join(", ") : "everyone"}</td>
              <td>{new Date(d.updated_at).toLocaleString()}</td>
              <td>
                {d.quarantined && (
                  <button type="button" className="ghost small" onClick={() => void release(d)} aria-label={`Release ${d.title || d.source}`}>
                    Release
                  </button>
                )}
                <button type="button" className="ghost small" onClick={() => void remove(d)} aria-label={`Delete ${d.title || d.source}`}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </GridTable>
        {list.hasMore && (
          <button type="button" className="ghost" disabled={list.loadingMore} onClick={() => void list.loadMore()}>
            More documents
          </button>
        )}
      </div>
    </section>
  );
}

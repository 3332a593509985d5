import { useEffect, useRef, useState } from "react";

import type { Api } from "../api/client";
import { ApiError } from "../api/errors";
import type { Citation, DocumentText } from "../api/types";
import { Markdown } from "../markdown/Markdown";
import { Modal, SourceLink } from "./Citations";

/** The section a citation quotes: same title path and location, else the one holding its snippet. */
export function citedSection(doc: DocumentText, citation: Citation): number {
  const title = citation.title;
  const byPlace = doc.sections.findIndex(
    (s) => s.title_path.join(" > ") === title && (s.location ?? null) === (citation.location ?? null),
  );
  if (byPlace >= 0) return byPlace;
  const probe = citation.snippet.replace(/…/g, "").trim().slice(0, 60);
  return probe ? doc.sections.findIndex((s) => s.text.includes(probe)) : -1;
}

/**
 * A cited document in full (GET /api/v1/documents/{id}/text), its sections in order, the
 * cited one marked and scrolled to. A document the caller may no longer see (or that was
 * deleted since) reads as such.
 */
export function DocumentDialog({
  api,
  citation,
  documentId,
  onClose,
}: {
  api: Api;
  citation: Citation;
  documentId: number;
  onClose: () => void;
}) {
  const [doc, setDoc] = useState<DocumentText | null>(null);
  const [error, setError] = useState<string | null>(null);
  const citedRef = useRef<HTMLElement>(null);
  useEffect(() => {
    let cancelled = false;
    api.documentText(documentId).then(
      (d) => !cancelled && setDoc(d),
      (err) =>
        !cancelled &&
        setError(
          err instanceof ApiError && err.status === 404
            ? "This document is not available to you any more: it was deleted, or who may read it changed."
            : `Could not load the document: ${err instanceof Error ? err.message : String(err)}`,
        ),
    );
    return () => {
      cancelled = true;
    };
  }, [api, documentId]);
  const cited = doc ? citedSection(doc, citation) : -1;
  useEffect(() => {
    citedRef.current?.scrollIntoView?.({ block: "center" });
  }, [doc]);
  const titleId = `document-title-${documentId}`;
  return (
    <Modal titleId={titleId} onClose={onClose} wide testId="document">
      <h2 id={titleId}>{doc?.document.title ?? citation.title.split(" > ")[0] ?? "Document"}</h2>
      {doc && (
        <p className="muted small">
          <SourceLink source={doc.document.source} /> · {doc.document.domain} · {doc.sections.length}{" "}
          {doc.sections.length === 1 ? "section" : "sections"}
          {cited >= 0 && <> · the passage cited as [{citation.number}] is marked</>}
        </p>
      )}
      {!doc && !error && (
        <p className="muted" role="status">
          Loading the document…
        </p>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {doc && (
        <div className="document-text">
          {doc.sections.map((s, i) => {
            const heading = s.title_path.length > 1 ? s.title_path.slice(1).join(" › ") : null;
            const previous = i > 0 ? doc.sections[i - 1]!.title_path.join(" > ") : null;
            return (
              <section
                key={s.ordinal}
                ref={i === cited ? citedRef : undefined}
                className={`document-section${i === cited ? " cited" : ""}`}
                aria-label={i === cited ? `Cited passage [${citation.number}]` : undefined}
                data-testid={i === cited ? "cited-section" : undefined}
              >
                {heading && previous !== s.title_path.join(" > ") && <h3>{heading}</h3>}
                {s.location && <p className="muted small location">{s.location}</p>}
                <Markdown text={s.text} />
              </section>
            );
          })}
        </div>
      )}
    </Modal>
  );
}

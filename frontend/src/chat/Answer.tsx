import { useCallback, useId, useMemo, useState } from "react";

import type { Api } from "../api/client";
import type { RouteView } from "../api/types";
import { Markdown } from "../markdown/Markdown";
import { markSpans } from "../markdown/marks";
import { CitationDialog, CitationList, type CitedFor } from "./Citations";
import { DocumentDialog } from "./DocumentDialog";
import { ExpertBadge } from "./ExpertBadge";
import { Feedback } from "./Feedback";
import { GroundingNote } from "./GroundingNote";
import { citedSentences } from "./sentences";
import type { AnswerTurn } from "./turns";

/**
 * What the expert is doing before its first words arrive, from the stream's first chunk
 * (sent when the expert starts, with the passages it was given).
 */
export function stageText(route: RouteView): string {
  const n = route.citations.length;
  if (n === 0) return `${route.expert} expert is writing…`;
  return `${route.expert} expert is reading ${n} ${n === 1 ? "document" : "documents"}…`;
}

/** The small model bundled for a first run (SmolLM2-135M, run on this machine), by the model name its server reports. */
export function isDemoModel(upstreamModel: string | null): boolean {
  return upstreamModel !== null && /smollm2/i.test(upstreamModel);
}

/**
 * The note under an answer of the demo model: it points to the quoted documents only when
 * the answer has some (the general expert often answers with none).
 */
export function demoModelNotice(hasSources: boolean): string {
  return hasSources
    ? "Answered by a small demo model running on this machine; facts come from the quoted documents above."
    : "Answered by a small demo model running on this machine, with no documents to quote: check its facts.";
}

/** Who answered, by name: the expert and the model its endpoint ran (when told). */
export function modelLine(route: RouteView): string {
  return route.upstreamModel
    ? `${route.expert} expert · model ${route.upstreamModel}`
    : `${route.expert} expert`;
}

interface Props {
  api: Api;
  turn: AnswerTurn;
  experts: string[];
  /** Ask the same question again (the last answer only); the new answer replaces this one. */
  onRegenerate?: () => void;
  /** Ask the same question of another expert, to compare (the last answer only). */
  onCompare?: (expert: string) => void;
  /** Shown beside another expert's answer: no feedback form, no actions. */
  compared?: boolean;
}

export function Answer({ api, turn, experts, onRegenerate, onCompare, compared = false }: Props) {
  const [open, setOpen] = useState<number | null>(null);
  const [reading, setReading] = useState(false);
  const close = useCallback(() => setOpen(null), []);
  const closeDocument = useCallback(() => {
    setReading(false);
    setOpen(null);
  }, []);
  const citations = turn.route?.citations ?? [];
  const opened = citations.find((c) => c.number === open) ?? null;
  const settled = turn.status !== "streaming";
  // Sent with the last chunk of a stream, over the text as it was then complete.
  const grounding = turn.status === "done" ? (turn.route?.grounding ?? null) : null;
  const citedFor = useMemo(() => {
    const findings = markSpans(turn.text, grounding?.unsupported ?? []);
    const out = new Map<number, CitedFor[]>();
    for (const [n, sentences] of citedSentences(turn.text, citations.length)) {
      out.set(
        n,
        sentences.map((c) => ({
          text: c.text,
          findings: findings.filter((f) => f.start < c.end && f.end > c.start).map((f) => f.span.detail || f.span.text),
        })),
      );
    }
    return out;
  }, [turn.text, citations.length, grounding]);
  return (
    <article
      className="turn answer"
      aria-busy={turn.status === "streaming"}
      data-testid="answer"
      data-status={turn.status}
    >
      {turn.route ? (
        <ExpertBadge route={turn.route} />
      ) : (
        // Until the first chunk: the question is being routed and its passages retrieved.
        turn.status === "streaming" && <p className="muted typing">Getting an expert ready…</p>
      )}
      {turn.text ? (
        <Markdown
          text={turn.text}
          citationCount={citations.length}
          onCite={setOpen}
          marks={grounding?.unsupported}
        />
      ) : (
        turn.status === "streaming" &&
        turn.route && (
          <p className="muted typing" data-testid="stage">
            {stageText(turn.route)}
          </p>
        )
      )}
      {turn.status === "stopped" && <p className="muted">Stopped.</p>}
      {turn.status === "done" && turn.finishReason === "length" && (
        <p className="answer-notice" data-testid="cut-at-length">
          The answer was cut at the length limit.
        </p>
      )}
      <GroundingNote grounding={grounding} />
      {turn.error && (
        <p className="error" role="alert">
          {turn.error}
        </p>
      )}
      <CitationList citations={citations} onOpen={setOpen} />
      {turn.status === "done" && isDemoModel(turn.route?.upstreamModel ?? null) && (
        <p className="answer-notice small" data-testid="demo-model">
          {demoModelNotice(citations.length > 0)}
        </p>
      )}
      {turn.status === "done" && turn.route && (
        <p className="answer-model small" data-testid="answer-model">
          {modelLine(turn.route)}
          {/* No count for an answer that cost none (replayed from the response cache). */}
          {turn.usage && turn.usage.total_tokens > 0 && <span className="muted"> · {turn.usage.total_tokens} tokens</span>}
        </p>
      )}
      {turn.status === "done" && !compared && (
        <div className="answer-foot">
          {turn.requestId && turn.route && (
            <Feedback api={api} requestId={turn.requestId} expert={turn.route.expert} experts={experts} />
          )}
        </div>
      )}
      {settled && !compared && (onRegenerate || onCompare) && (
        <AnswerActions
          expert={turn.route?.expert ?? null}
          experts={experts}
          canCompare={turn.status === "done" && !!onCompare}
          onRegenerate={onRegenerate}
          onCompare={onCompare}
        />
      )}
      {opened && !reading && (
        <CitationDialog
          citation={opened}
          sentences={citedFor.get(opened.number) ?? []}
          onClose={close}
          onOpenDocument={typeof opened.document_id === "number" ? () => setReading(true) : undefined}
        />
      )}
      {opened && reading && typeof opened.document_id === "number" && (
        <DocumentDialog api={api} citation={opened} documentId={opened.document_id} onClose={closeDocument} />
      )}
    </article>
  );
}

/** Regenerate, and "ask another expert" with the expert to ask. */
function AnswerActions({
  expert,
  experts,
  canCompare,
  onRegenerate,
  onCompare,
}: {
  expert: string | null;
  experts: string[];
  canCompare: boolean;
  onRegenerate?: () => void;
  onCompare?: (expert: string) => void;
}) {
  const others = experts.filter((e) => e !== expert);
  const [other, setOther] = useState(others[0] ?? "");
  const id = useId();
  return (
    <div className="answer-actions" role="group" aria-label="Answer actions">
      {onRegenerate && (
        <button type="button" className="ghost small" onClick={onRegenerate}>
          <span aria-hidden="true">↻</span>Regenerate
        </button>
      )}
      {canCompare && onCompare && others.length > 0 && (
        <span className="ask-other">
          <label htmlFor={`${id}-other`}>Ask another expert</label>
          <select id={`${id}-other`} value={other} onChange={(e) => setOther(e.target.value)}>
            {others.map((e) => (
              <option key={e} value={e}>
                {e}
              </option>
            ))}
          </select>
          <button type="button" className="ghost small" onClick={() => other && onCompare(other)}>
            Compare
          </button>
        </span>
      )}
    </div>
  );
}

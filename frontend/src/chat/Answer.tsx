import { useState } from "react";

import type { Api } from "../api/client";
import type { RouteView } from "../api/types";
import { Markdown } from "../markdown/Markdown";
import { CitationDialog, CitationList } from "./Citations";
import { ExpertBadge } from "./ExpertBadge";
import { Feedback } from "./Feedback";
import { GroundingNote } from "./GroundingNote";
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

interface Props {
  api: Api;
  turn: AnswerTurn;
  experts: string[];
}

export function Answer({ api, turn, experts }: Props) {
  const [open, setOpen] = useState<number | null>(null);
  const citations = turn.route?.citations ?? [];
  const opened = citations.find((c) => c.number === open) ?? null;
  // Sent with the last chunk of a stream, over the text as it was then complete.
  const grounding = turn.status === "done" ? (turn.route?.grounding ?? null) : null;
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
          Answered by a small demo model running on this machine; facts come from the quoted documents above.
        </p>
      )}
      {turn.status === "done" && (
        <div className="answer-foot">
          {turn.requestId && turn.route && (
            <Feedback api={api} requestId={turn.requestId} expert={turn.route.expert} experts={experts} />
          )}
          {turn.usage && <span className="muted small">{turn.usage.total_tokens} tokens</span>}
        </div>
      )}
      {opened && <CitationDialog citation={opened} onClose={() => setOpen(null)} />}
    </article>
  );
}

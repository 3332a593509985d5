import { useState } from "react";

import type { Api } from "../api/client";
import { Markdown } from "../markdown/Markdown";
import { CitationDialog, CitationList } from "./Citations";
import { ExpertBadge } from "./ExpertBadge";
import { Feedback } from "./Feedback";
import { GroundingNote } from "./GroundingNote";
import type { AnswerTurn } from "./turns";

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
        turn.status === "streaming" && <p className="muted">Routing…</p>
      )}
      {turn.text ? (
        <Markdown
          text={turn.text}
          citationCount={citations.length}
          onCite={setOpen}
          marks={grounding?.unsupported}
        />
      ) : (
        turn.status === "streaming" && turn.route && <p className="muted typing">Writing…</p>
      )}
      {turn.status === "stopped" && <p className="muted">Stopped.</p>}
      <GroundingNote grounding={grounding} />
      {turn.error && (
        <p className="error" role="alert">
          {turn.error}
        </p>
      )}
      <CitationList citations={citations} onOpen={setOpen} />
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

import type { Api } from "../api/client";
import { Answer } from "./Answer";
import type { AnswerTurn } from "./turns";

interface Props {
  api: Api;
  turn: AnswerTurn & { other: AnswerTurn };
  experts: string[];
  /** Keep one of the two; the other leaves the conversation. */
  onKeep: (keep: "original" | "other") => void;
  keeping: boolean;
  error: string | null;
}

function expertOf(turn: AnswerTurn, fallback: string): string {
  return turn.route?.expert ?? fallback;
}

/**
 * Two experts' answers to one question side by side (stacked on a phone). Keeping one
 * leaves it in the conversation and tells the router which expert the question was for.
 */
export function Compare({ api, turn, experts, onKeep, keeping, error }: Props) {
  const other = turn.other;
  const ready = turn.status === "done" && other.status === "done";
  const a = expertOf(turn, "first");
  const b = expertOf(other, "other");
  return (
    <section className="compare" aria-label="Two experts' answers" data-testid="compare">
      <p className="compare-intro small">
        {ready
          ? "Which answer is better? The one you keep stays in the conversation, and your choice is sent as routing feedback."
          : other.status === "streaming"
            ? `Asking the ${b === "other" ? "other" : b} expert…`
            : "The other expert did not answer; keep the first answer to go on."}
      </p>
      <div className="compare-grid">
        {(
          [
            ["original", turn, a],
            ["other", other, b],
          ] as const
        ).map(([which, answer, expert]) => (
          <div key={which} className="compare-col" data-testid={`compare-${which}`}>
            <Answer api={api} turn={answer} experts={experts} compared />
            <button
              type="button"
              className="keep"
              disabled={keeping || answer.status !== "done" || (which === "original" ? false : !ready)}
              onClick={() => onKeep(which)}
            >
              Keep the {expert} answer
            </button>
          </div>
        ))}
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}

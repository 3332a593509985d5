import type { Grounding } from "../api/types";

export interface GroundingSummary {
  text: string;
  /** "ok": every checked statement is supported. */
  tone: "ok" | "warn";
}

/**
 * One line on how well the cited documents support the answer, or null when it was not
 * checked (no grounding, or no statement to check).
 */
export function groundingSummary(g: Grounding | null): GroundingSummary | null {
  if (!g || g.checked <= 0) return null;
  if (g.action === "refuse") {
    return {
      text: "The documents do not clearly answer this question: the closest passages are shown instead of an answer.",
      tone: "warn",
    };
  }
  if (g.action === "quote") {
    return {
      text: "The model's answer was not supported by the cited documents, so it was replaced by quotes from them.",
      tone: "warn",
    };
  }
  // score is the share of checked statements supported; one statement may hold several
  // findings (one per wrong value), so the count comes from the score when there is one.
  const unsupported =
    g.score === null
      ? Math.min(g.checked, g.unsupported.length)
      : Math.min(g.checked, Math.max(0, g.checked - Math.round(g.score * g.checked)));
  if (unsupported === 0) {
    const text =
      g.checked === 1
        ? "The statement is supported by the cited documents."
        : `All ${g.checked} statements are supported by the cited documents.`;
    return { text, tone: "ok" };
  }
  const score = g.score === null ? "" : ` (grounding score ${Math.round(g.score * 100)}%)`;
  const check = g.unsupported.length ? " Check the marked text against the sources." : "";
  const text =
    g.checked === 1
      ? `The statement is not supported by the cited documents${score}.${check}`
      : `${unsupported} of ${g.checked} statements are not supported by the cited documents${score}.${check}`;
  return { text, tone: "warn" };
}

/** The grounding line under an answer (nothing when it was not checked). */
export function GroundingNote({ grounding }: { grounding: Grounding | null }) {
  const summary = groundingSummary(grounding);
  if (!summary) return null;
  return (
    <p className={`grounding-note grounding-${summary.tone}`} data-testid="grounding">
      {summary.text}
    </p>
  );
}

import type { RouteView } from "../api/types";

/** Why an answer came from where it did, in words; null for the obvious cases. */
export function reasonText(route: RouteView): string | null {
  const failed = route.fallbacks.map((f) => f.expert).join(", ");
  switch (route.reason) {
    case "routed":
    case "requested":
      return null;
    case "fallback":
      return `${failed || "the chosen expert"} was unavailable, so ${route.expert} answered`;
    case "low_confidence":
      return `no expert was confident enough, so ${route.expert} answered`;
    case "out_of_domain":
      return `the question is outside every expert's domain, so ${route.expert} answered`;
    case "overflow":
      return `the best expert was at capacity, so ${route.expert} answered`;
    case "context":
      return `a follow-up, kept with ${route.expert} from earlier in the conversation`;
    case "not_allowed":
      return `you may not use the best-matching expert, so ${route.expert} answered`;
    default:
      return route.reason.replaceAll("_", " ");
  }
}

/**
 * What the badge says beside the expert: how the expert was chosen. The percentage is
 * the router's confidence in picking this expert, never a judgement of the answer (the
 * grounding line under the answer speaks to that). Null when the router did not pick it
 * on confidence (a fallback, an overflow...): the reason line tells that story instead.
 */
export function choiceLabel(route: RouteView): { text: string; title: string } | null {
  if (route.reason === "requested") {
    return { text: "chosen by hand", title: "you picked this expert; the router was not asked" };
  }
  if ((route.reason === "routed" || route.reason === "context") && route.confidence !== null) {
    // Rounded, but never up to a certainty the router did not have.
    const pct = Math.min(Math.round(route.confidence * 100), route.confidence < 1 ? 99 : 100);
    return {
      text: `routed with ${pct}% confidence`,
      title: `how sure the router was that this is a ${route.expert} question — not a check of the answer`,
    };
  }
  return null;
}

export function ExpertBadge({ route }: { route: RouteView }) {
  const label = choiceLabel(route);
  const why = reasonText(route);
  return (
    <div className="route-line">
      <span className="expert-choice" data-testid="expert-badge" data-expert={route.expert} title={label?.title}>
        <span className={`badge expert-${route.expert}`}>{route.expert}</span>
        {label && (
          <span className="badge-conf">
            {" · "}
            <span className="badge-label">{label.text}</span>
          </span>
        )}
      </span>
      {why && (
        <span className="route-why" data-testid="route-reason">
          {why}
        </span>
      )}
    </div>
  );
}

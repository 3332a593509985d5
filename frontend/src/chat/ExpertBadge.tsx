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

export function ExpertBadge({ route }: { route: RouteView }) {
  const pct = route.confidence === null ? null : Math.round(route.confidence * 100);
  const why = reasonText(route);
  const title =
    route.reason === "requested" ? "chosen by hand" : pct === null ? route.reason : `router confidence ${pct}%`;
  return (
    <div className="route-line">
      <span
        className={`badge expert-${route.expert}`}
        title={title}
        data-testid="expert-badge"
        data-expert={route.expert}
      >
        <span className="badge-name">{route.expert}</span>
        {route.reason !== "requested" && pct !== null && <span className="badge-conf">{pct}%</span>}
        {route.reason === "requested" && <span className="badge-conf">chosen</span>}
      </span>
      {why && (
        <span className="route-why" data-testid="route-reason">
          {why}
        </span>
      )}
    </div>
  );
}

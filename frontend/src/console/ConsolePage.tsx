import type { Api } from "../api/client";
import type { ModelCard } from "../api/types";
import { navigate } from "../location";
import { AuditLog } from "./AuditLog";
import { Dashboard } from "./Dashboard";
import { Experts } from "./Experts";
import { Feedback } from "./Feedback";
import { Keys } from "./Keys";
import { Knowledge } from "./Knowledge";
import { RouterAdmin } from "./RouterAdmin";
import { Reviews } from "./Reviews";
import { RouteTester } from "./RouteTester";
import { Safety } from "./Safety";
import { Users } from "./Users";
import "./console.css";

const STAFF = ["admin", "auditor"];

/** The console's sections and the roles that see each (the API still decides what they may do). */
const TABS = [
  { id: "audit", label: "Audit log", roles: STAFF },
  { id: "dashboard", label: "Dashboard", roles: STAFF },
  { id: "reviews", label: "Reviews", roles: ["admin", "reviewer"] },
  { id: "safety", label: "Safety", roles: STAFF },
  { id: "feedback", label: "Feedback", roles: STAFF },
  { id: "router", label: "Router", roles: STAFF },
  { id: "route-test", label: "Route tester", roles: STAFF },
  { id: "knowledge", label: "Knowledge", roles: STAFF },
  { id: "keys", label: "Keys", roles: STAFF },
  { id: "users", label: "Users and quotas", roles: STAFF },
  { id: "experts", label: "Experts", roles: STAFF },
] as const;

/** The tabs these roles see; null (roles unknown: no /api/v1/me) sees every tab. */
export function visibleTabs(roles: readonly string[] | null): (typeof TABS)[number][] {
  if (roles === null) return [...TABS];
  return TABS.filter((t) => t.roles.some((r) => roles.includes(r)));
}

interface Props {
  api: Api;
  models: ModelCard[];
  tab: string;
  detail: string | null;
  /** The signed-in user's roles; null when the server cannot say (every tab is offered). */
  roles?: readonly string[] | null;
}

export function ConsolePage({ api, models, tab, detail, roles = null }: Props) {
  const tabs = visibleTabs(roles);
  const active = tabs.find((t) => t.id === tab) ?? tabs[0] ?? TABS[0];
  return (
    <main className="console" id="main">
      <h1>Console</h1>
      <nav className="tabs" aria-label="Console sections">
        {tabs.map((t) => (
          <a
            key={t.id}
            href={`/console/${t.id}`}
            aria-current={t.id === active.id ? "page" : undefined}
            onClick={(e) => {
              e.preventDefault();
              navigate(`/console/${t.id}`);
            }}
          >
            {t.label}
          </a>
        ))}
      </nav>
      {active.id === "audit" && <AuditLog api={api} models={models} detail={detail} />}
      {active.id === "dashboard" && <Dashboard api={api} />}
      {active.id === "reviews" && <Reviews api={api} detail={detail} />}
      {active.id === "safety" && <Safety api={api} models={models} roles={roles} />}
      {active.id === "feedback" && <Feedback api={api} models={models} />}
      {active.id === "router" && <RouterAdmin api={api} models={models} />}
      {active.id === "route-test" && <RouteTester api={api} models={models} />}
      {active.id === "knowledge" && <Knowledge api={api} models={models} />}
      {active.id === "keys" && <Keys api={api} />}
      {active.id === "users" && <Users api={api} />}
      {active.id === "experts" && <Experts models={models} />}
    </main>
  );
}

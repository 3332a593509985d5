import type { Api } from "../api/client";
import type { ModelCard } from "../api/types";
import { navigate } from "../location";
import { AuditLog } from "./AuditLog";
import { Dashboard } from "./Dashboard";
import { Experts } from "./Experts";
import { Keys } from "./Keys";
import { Knowledge } from "./Knowledge";
import { RouterAdmin } from "./RouterAdmin";
import { RouteTester } from "./RouteTester";
import { Users } from "./Users";

const TABS = [
  { id: "audit", label: "Audit log" },
  { id: "dashboard", label: "Dashboard" },
  { id: "router", label: "Router" },
  { id: "route-test", label: "Route tester" },
  { id: "knowledge", label: "Knowledge" },
  { id: "keys", label: "Keys" },
  { id: "users", label: "Users and quotas" },
  { id: "experts", label: "Experts" },
] as const;

interface Props {
  api: Api;
  models: ModelCard[];
  tab: string;
  detail: string | null;
}

export function ConsolePage({ api, models, tab, detail }: Props) {
  const active = TABS.find((t) => t.id === tab) ?? TABS[0];
  return (
    <main className="console" id="main">
      <h1>Console</h1>
      <nav className="tabs" aria-label="Console sections">
        {TABS.map((t) => (
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
      {active.id === "router" && <RouterAdmin api={api} models={models} />}
      {active.id === "route-test" && <RouteTester api={api} models={models} />}
      {active.id === "knowledge" && <Knowledge api={api} models={models} />}
      {active.id === "keys" && <Keys api={api} />}
      {active.id === "users" && <Users api={api} />}
      {active.id === "experts" && <Experts models={models} />}
    </main>
  );
}

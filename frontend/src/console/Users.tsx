import { useCallback, useEffect, useId, useState, type FormEvent } from "react";

import type { Api } from "../api/client";
import type { QuotaPolicy, QuotaPolicyIn, TeamOut, UserOut, UserUpdate } from "../api/types";
import { ErrorLine, GridTable } from "./Table";

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

type Role = NonNullable<UserUpdate["roles"]>[number];
const ROLES: Role[] = ["user", "auditor", "reviewer", "admin"];

/** "a, b,,c " -> ["a", "b", "c"] */
export function splitList(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A limit as the quota table shows it: a number, or "–" when there is none. */
export function limitText(value: number | null | undefined): string {
  return value === null || value === undefined ? "–" : value.toLocaleString("en-US");
}

type LimitField = "rpm" | "tokens_per_day" | "tokens_per_month";
const LIMIT_FIELDS: readonly LimitField[] = ["rpm", "tokens_per_day", "tokens_per_month"];

/** A policy that sets no limit at all limits nothing: the table leaves it out. */
export function setsAnyLimit(p: QuotaPolicy): boolean {
  return LIMIT_FIELDS.some((f) => p[f] !== null && p[f] !== undefined);
}

/** The other policies that also bind a policy's subject (user -> its team, global; team ->
 * global; global -> none): every limit that is set applies, the most specific is not the only one. */
export function alsoBinding(p: QuotaPolicy, quotas: readonly QuotaPolicy[], users: readonly UserOut[]): QuotaPolicy[] {
  const wanted: string[] = [];
  if (p.scope === "user") {
    const team = users.find((u) => u.email.toLowerCase() === p.name.toLowerCase())?.team;
    if (team) wanted.push(`team:${team}`);
  }
  if (p.scope !== "global") wanted.push("global");
  return wanted.map((subject) => quotas.find((q) => q.subject === subject)).filter((q): q is QuotaPolicy => q !== undefined);
}

/** A cell of the quota table: the policy's own limit, or what still applies without one. */
export function limitCell(p: QuotaPolicy, field: LimitField, quotas: readonly QuotaPolicy[], users: readonly UserOut[]): string {
  const own = p[field];
  if (own !== null && own !== undefined) return limitText(own);
  const inherited = alsoBinding(p, quotas, users).filter((q) => q[field] !== null && q[field] !== undefined);
  if (inherited.length === 0) return "no limit";
  return `none of its own; ${inherited.map((q) => `${q.subject} ${limitText(q[field])}`).join(", ")} applies`;
}

/** What a subject is held to once its own limits are cleared, in words. */
export function afterClearing(p: QuotaPolicy, quotas: readonly QuotaPolicy[], users: readonly UserOut[]): string {
  const still = alsoBinding(p, quotas, users).filter(setsAnyLimit);
  return still.length === 0
    ? `Cleared the limits of ${p.subject}: it has no quota now.`
    : `Cleared the limits of ${p.subject}: the limits of ${still.map((q) => q.subject).join(" and ")} still apply to it.`;
}

/** Users, teams and quota policies: list (admins and auditors), edit (admins; the API
 * refuses auditors, and the refusal is shown). Every change is an audited admin action. */
export function Users({ api }: { api: Api }) {
  const [users, setUsers] = useState<UserOut[]>([]);
  const [teams, setTeams] = useState<TeamOut[]>([]);
  const [quotas, setQuotas] = useState<QuotaPolicy[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [editing, setEditing] = useState<{ id: number; roles: Role[]; groups: string; team: string } | null>(null);
  const [teamName, setTeamName] = useState("");
  const [quotaNote, setQuotaNote] = useState<string | null>(null);
  const [quota, setQuota] = useState({ scope: "team" as QuotaPolicyIn["scope"], name: "", rpm: "", day: "", month: "", on_limit: "reject" as NonNullable<QuotaPolicyIn["on_limit"]> });
  const id = useId();

  const load = useCallback(async () => {
    try {
      const [u, t, q] = await Promise.all([api.users(), api.teams(), api.quotas()]);
      setUsers(u);
      setTeams(t);
      setQuotas(q);
      setError(null);
    } catch (err) {
      setError(`Could not load users, teams and quotas: ${message(err)}`);
    }
  }, [api]);

  useEffect(() => {
    void load();
  }, [load]);

  async function act(what: string, action: () => Promise<unknown>) {
    try {
      await action();
      await load();
      return true;
    } catch (err) {
      setError(`Could not ${what}: ${message(err)}`);
      return false;
    }
  }

  async function saveUser(e: FormEvent) {
    e.preventDefault();
    if (!editing) return;
    const body: UserUpdate = { roles: editing.roles, groups: splitList(editing.groups), team: editing.team.trim() };
    if (await act("save the user", () => api.updateUser(editing.id, body))) setEditing(null);
  }

  async function createTeam(e: FormEvent) {
    e.preventDefault();
    if (await act("create the team", () => api.createTeam(teamName.trim()))) setTeamName("");
  }

  async function setPolicy(e: FormEvent) {
    e.preventDefault();
    const num = (s: string) => (s.trim() === "" ? null : Number(s));
    const body: QuotaPolicyIn = {
      scope: quota.scope,
      name: quota.scope === "global" ? "*" : quota.name.trim(),
      rpm: num(quota.rpm),
      tokens_per_day: num(quota.day),
      tokens_per_month: num(quota.month),
      on_limit: quota.on_limit,
    };
    if (await act("set the quota", () => api.setQuota(body))) setQuota({ ...quota, name: "", rpm: "", day: "", month: "" });
  }

  async function clearPolicy(p: QuotaPolicy) {
    setQuotaNote(null);
    const cleared = await act("clear the quota", () =>
      api.setQuota({ scope: p.scope as QuotaPolicyIn["scope"], name: p.name, rpm: 0, tokens_per_day: 0, tokens_per_month: 0 }),
    );
    if (cleared) setQuotaNote(afterClearing(p, quotas, users));
  }

  const shownQuotas = quotas.filter(setsAnyLimit);

  return (
    <section aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Users, teams and quotas</h2>
      <ErrorLine error={error} />
      <div className="table-wrap">
        <GridTable label="Users" columns={["User", "Team", "Roles", "Groups", "Keys", "Status", "Actions"]}>
          {users.map((u) => (
            <tr key={u.id}>
              <th scope="row">{u.email}</th>
              <td>{u.team ?? "–"}</td>
              <td>{u.roles.join(", ")}</td>
              <td>{u.groups.join(", ") || "–"}</td>
              <td>{u.active_keys}</td>
              <td>{u.disabled ? <span className="state state-open">disabled</span> : "active"}</td>
              <td className="row">
                <button
                  type="button"
                  className="ghost small"
                  aria-label={`Edit ${u.email}`}
                  onClick={() => setEditing({ id: u.id, roles: u.roles as Role[], groups: u.groups.join(", "), team: u.team ?? "" })}
                >
                  Edit
                </button>
                <button
                  type="button"
                  className="ghost small"
                  aria-label={`${u.disabled ? "Enable" : "Disable"} ${u.email}`}
                  onClick={() => void act(u.disabled ? "enable the user" : "disable the user", () => api.updateUser(u.id, { disabled: !u.disabled }))}
                >
                  {u.disabled ? "Enable" : "Disable"}
                </button>
              </td>
            </tr>
          ))}
        </GridTable>
      </div>
      {editing && (
        <form className="filters card" onSubmit={saveUser} aria-label="Edit user">
          <fieldset className="field">
            <legend>Roles of {users.find((u) => u.id === editing.id)?.email}</legend>
            {ROLES.map((r) => (
              <label key={r} className="check">
                <input
                  type="checkbox"
                  checked={editing.roles.includes(r)}
                  onChange={(e) =>
                    setEditing({ ...editing, roles: e.target.checked ? [...editing.roles, r] : editing.roles.filter((x) => x !== r) })
                  }
                />
                {r}
              </label>
            ))}
          </fieldset>
          <div className="field">
            <label htmlFor={`${id}-team`}>Team (empty: none)</label>
            <input id={`${id}-team`} list={`${id}-teams`} value={editing.team} onChange={(e) => setEditing({ ...editing, team: e.target.value })} />
            <datalist id={`${id}-teams`}>
              {teams.map((t) => (
                <option key={t.id} value={t.name} />
              ))}
            </datalist>
          </div>
          <div className="field">
            <label htmlFor={`${id}-groups`}>Groups (comma separated)</label>
            <input id={`${id}-groups`} value={editing.groups} onChange={(e) => setEditing({ ...editing, groups: e.target.value })} />
          </div>
          <div className="row filter-actions">
            <button type="submit">Save</button>
            <button type="button" className="ghost" onClick={() => setEditing(null)}>
              Cancel
            </button>
          </div>
        </form>
      )}

      <h3>Teams</h3>
      <form className="row" onSubmit={createTeam} aria-label="Create a team">
        <label htmlFor={`${id}-newteam`}>New team</label>
        <input id={`${id}-newteam`} required value={teamName} onChange={(e) => setTeamName(e.target.value)} />
        <button type="submit">Create team</button>
      </form>
      <ul className="team-list">
        {teams.map((t) => (
          <li key={t.id}>
            <span>
              {t.name} <span className="muted small">({t.members} members)</span>
            </span>
            <button
              type="button"
              className="ghost small"
              aria-label={`Delete team ${t.name}`}
              onClick={() => {
                if (window.confirm(`Delete team ${t.name}? Its ${t.members} members keep their accounts, without a team.`)) {
                  void act("delete the team", () => api.deleteTeam(t.id));
                }
              }}
            >
              Delete
            </button>
          </li>
        ))}
      </ul>

      <h3>Quotas</h3>
      {shownQuotas.length === 0 ? (
        <p className="muted">No quotas set: nobody is limited.</p>
      ) : (
        <div className="table-wrap" tabIndex={0} role="region" aria-label="Quota policies (scrolls at narrow widths)">
          <GridTable label="Quota policies" columns={["Applies to", "Requests / min", "Tokens / day", "Tokens / month", "Over the limit", "Actions"]}>
            {shownQuotas.map((p) => (
              <tr key={p.subject}>
                <th scope="row">{p.subject}</th>
                {LIMIT_FIELDS.map((f) => {
                  const own = p[f] !== null && p[f] !== undefined;
                  return (
                    <td key={f} className={own ? undefined : "muted small"}>
                      {limitCell(p, f, quotas, users)}
                    </td>
                  );
                })}
                <td>{p.on_limit}</td>
                <td>
                  <button type="button" className="ghost small" aria-label={`Clear the quota of ${p.subject}`} onClick={() => void clearPolicy(p)}>
                    Clear
                  </button>
                </td>
              </tr>
            ))}
          </GridTable>
        </div>
      )}
      {quotaNote && (
        <p role="status" className="muted">
          {quotaNote}
        </p>
      )}
      <form className="filters card" onSubmit={setPolicy} aria-label="Set a quota">
        <div className="field">
          <label htmlFor={`${id}-scope`}>Scope</label>
          <select id={`${id}-scope`} value={quota.scope} onChange={(e) => setQuota({ ...quota, scope: e.target.value as QuotaPolicyIn["scope"] })}>
            <option value="user">user</option>
            <option value="team">team</option>
            <option value="global">global</option>
          </select>
        </div>
        {quota.scope !== "global" && (
          <div className="field">
            <label htmlFor={`${id}-qname`}>{quota.scope === "user" ? "User email" : "Team name"}</label>
            <input id={`${id}-qname`} required value={quota.name} onChange={(e) => setQuota({ ...quota, name: e.target.value })} />
          </div>
        )}
        {(
          [
            ["rpm", "Requests per minute"],
            ["day", "Tokens per day"],
            ["month", "Tokens per month"],
          ] as const
        ).map(([field, label]) => (
          <div className="field" key={field}>
            <label htmlFor={`${id}-${field}`}>{label}</label>
            <input id={`${id}-${field}`} type="number" min={0} value={quota[field]} onChange={(e) => setQuota({ ...quota, [field]: e.target.value })} />
          </div>
        ))}
        <div className="field">
          <label htmlFor={`${id}-onlimit`}>Over the limit</label>
          <select
            id={`${id}-onlimit`}
            value={quota.on_limit}
            onChange={(e) => setQuota({ ...quota, on_limit: e.target.value as NonNullable<QuotaPolicyIn["on_limit"]> })}
          >
            <option value="reject">reject (429)</option>
            <option value="degrade">degrade to the generalist</option>
          </select>
        </div>
        <div className="row filter-actions">
          <button type="submit">Set quota</button>
        </div>
      </form>
      <p className="muted small">Keys are in the Keys tab. Empty limit fields leave the current value; 0 clears a limit.</p>
    </section>
  );
}

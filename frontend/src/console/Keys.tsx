import { useCallback, useEffect, useId, useState, type FormEvent } from "react";

import type { Api } from "../api/client";
import type { IssuedKey, KeyCreate, KeyOut } from "../api/types";
import { ErrorLine, GridTable } from "./Table";

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const ROLES: KeyCreate["role"][] = ["user", "auditor", "reviewer", "admin"];

/** API keys: list (admins and auditors), create and revoke (admins). */
export function Keys({ api }: { api: Api }) {
  const [keys, setKeys] = useState<KeyOut[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [issued, setIssued] = useState<IssuedKey | null>(null);
  const [form, setForm] = useState({ email: "", role: "user" as KeyCreate["role"], team: "", groups: "", name: "" });
  const id = useId();

  const load = useCallback(async () => {
    try {
      setKeys(await api.keys());
      setError(null);
    } catch (err) {
      setError(`Could not list keys: ${message(err)}`);
    }
  }, [api]);

  useEffect(() => {
    void load();
  }, [load]);

  async function create(e: FormEvent) {
    e.preventDefault();
    try {
      setIssued(
        await api.createKey({
          email: form.email.trim(),
          role: form.role,
          team: form.team.trim() || null,
          groups: form.groups.split(",").map((g) => g.trim()).filter(Boolean),
          name: form.name.trim(),
        }),
      );
      setForm({ ...form, email: "", name: "" });
      await load();
    } catch (err) {
      setError(`Could not create the key: ${message(err)}`);
    }
  }

  async function revoke(key: KeyOut) {
    if (!window.confirm(`Revoke ${key.prefix}… of ${key.email}? Requests with it fail at once.`)) return;
    try {
      await api.revokeKey(key.id);
      await load();
    } catch (err) {
      setError(`Could not revoke: ${message(err)}`);
    }
  }

  const input = (name: "email" | "team" | "groups" | "name", label: string, type = "text") => (
    <div className="field">
      <label htmlFor={`${id}-${name}`}>{label}</label>
      <input
        id={`${id}-${name}`}
        type={type}
        required={name === "email"}
        value={form[name]}
        onChange={(e) => setForm({ ...form, [name]: e.target.value })}
      />
    </div>
  );

  return (
    <section aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Users and keys</h2>
      <form className="filters card" onSubmit={create} aria-label="Create a key">
        {input("email", "User email", "email")}
        <div className="field">
          <label htmlFor={`${id}-role`}>Role</label>
          <select id={`${id}-role`} value={form.role} onChange={(e) => setForm({ ...form, role: e.target.value as KeyCreate["role"] })}>
            {ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </div>
        {input("team", "Team")}
        {input("groups", "Groups (comma separated)")}
        {input("name", "Key label")}
        <div className="row filter-actions">
          <button type="submit">Create key</button>
        </div>
      </form>
      {issued && (
        <div className="card" role="status">
          <p>
            New key for <strong>{issued.key.email}</strong>. Copy it now; it is not shown again:
          </p>
          <pre className="json">{issued.secret}</pre>
          <button type="button" className="ghost small" onClick={() => setIssued(null)}>
            Done
          </button>
        </div>
      )}
      <ErrorLine error={error} />
      <div className="table-wrap">
        <GridTable label="API keys" columns={["Key", "User", "Roles", "Label", "Last used", "Status"]}>
          {keys.map((k) => (
            <tr key={k.id}>
              <td>
                <code>{k.prefix}…</code>
              </td>
              <td>{k.email}</td>
              <td>{k.roles.join(", ")}</td>
              <td>{k.name}</td>
              <td>{k.last_used_at ? new Date(k.last_used_at).toLocaleString() : "never"}</td>
              <td>
                {k.revoked_at ? (
                  <span className="muted">revoked</span>
                ) : (
                  <button type="button" className="ghost small" onClick={() => void revoke(k)} aria-label={`Revoke key ${k.prefix} of ${k.email}`}>
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
        </GridTable>
      </div>
    </section>
  );
}

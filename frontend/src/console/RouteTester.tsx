import { useId, useState, type FormEvent } from "react";

import type { Api } from "../api/client";
import { routeView, type ModelCard, type RouteInfo } from "../api/types";
import { ExpertBadge } from "../chat/ExpertBadge";
import { Bars } from "./Bars";
import { ErrorLine } from "./Table";

/** Ask the gate where a text would go (POST /v1/route), without calling any expert. */
export function RouteTester({ api, models }: { api: Api; models: ModelCard[] }) {
  const [text, setText] = useState("");
  const [model, setModel] = useState("auto");
  const [result, setResult] = useState<RouteInfo | null>(null);
  const [error, setError] = useState<string | null>(null);
  const id = useId();

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!text.trim()) return;
    setError(null);
    try {
      setResult(await api.route(text.trim(), model));
    } catch (err) {
      setResult(null);
      setError(err instanceof Error ? err.message : String(err));
    }
  }

  return (
    <section aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Route tester</h2>
      <form className="stack" onSubmit={submit}>
        <label htmlFor={`${id}-t`}>Text to route</label>
        <textarea id={`${id}-t`} rows={3} value={text} onChange={(e) => setText(e.target.value)} />
        <div className="row">
          <label htmlFor={`${id}-m`}>Expert</label>
          <select id={`${id}-m`} value={model} onChange={(e) => setModel(e.target.value)}>
            {models.map((m) => (
              <option key={m.id} value={m.id}>
                {m.id}
              </option>
            ))}
          </select>
          <button type="submit" disabled={!text.trim()}>
            Route
          </button>
        </div>
      </form>
      <ErrorLine error={error} />
      {result && (
        <div className="card" data-testid="route-result">
          <ExpertBadge route={routeView(result)} />
          <p className="muted small">
            router {result.router_version} · top-k {result.top_k.join(", ")}
          </p>
          <Bars values={result.probabilities} />
        </div>
      )}
    </section>
  );
}

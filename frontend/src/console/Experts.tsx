import type { ModelCard } from "../api/types";

export function Experts({ models }: { models: ModelCard[] }) {
  return (
    <section aria-labelledby="experts-h">
      <h2 id="experts-h">Experts</h2>
      <p className="muted">What <code>GET /v1/models</code> offers; <code>auto</code> routes.</p>
      <table className="grid">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Description</th>
          </tr>
        </thead>
        <tbody>
          {models.map((m) => (
            <tr key={m.id}>
              <td>
                <span className={`badge expert-${m.id}`}>{m.id}</span>
              </td>
              <td>{m.description}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

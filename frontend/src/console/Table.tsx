// The console's shared table and error markup. Every data table is a `grid` with
// scope="col" headers and an accessible name: screen readers announce the name, and
// the e2e tests find tables by it (getByRole("table", { name })).
import type { ReactNode } from "react";

export function GridTable({ label, columns, children }: { label: string; columns: readonly ReactNode[]; children: ReactNode }) {
  return (
    <table className="grid" aria-label={label}>
      <thead>
        <tr>
          {columns.map((column, i) => (
            // The columns are a fixed list: their position is their identity.
            <th scope="col" key={i}>
              {column}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>{children}</tbody>
    </table>
  );
}

/** The page's last error as an alert; nothing while there is none. */
export function ErrorLine({ error }: { error: string | null }) {
  return error ? (
    <p className="error" role="alert">
      {error}
    </p>
  ) : null;
}

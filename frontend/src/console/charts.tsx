// Small SVG charts for the dashboard: no chart library, so nothing to load from anywhere
// and the whole look follows our CSS variables (dark mode included). Every chart is a
// <figure> whose SVG has a title and description for screen readers and a data table
// behind "Show the data", which is also what keyboard and text-only users read.
import { useId, type ReactNode } from "react";

/** The CSS colour of an expert's series (its own variable, or a neutral one). */
export function seriesColor(name: string): string {
  return ["code", "legal", "support", "general"].includes(name) ? `var(--${name})` : "var(--muted)";
}

/** Rounded-up "nice" axis maximum (1, 2, 5 × 10^n) so gridlines land on round values. */
export function niceMax(value: number): number {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 5, 10].find((m) => m * power >= value) ?? 10;
  return step * power;
}

interface FigureProps {
  title: string;
  summary: string;
  table: ReactNode;
  children: ReactNode;
}

function ChartFigure({ title, summary, table, children }: FigureProps) {
  const id = useId();
  return (
    <figure className="chart card" aria-labelledby={`${id}-t`}>
      <figcaption id={`${id}-t`} className="chart-title">
        {title}
      </figcaption>
      {children}
      <p className="sr-only">{summary}</p>
      <details className="chart-data">
        <summary>Show the data</summary>
        {/* Focusable: a wide table scrolls sideways at phone width, also by keyboard. */}
        <div className="table-wrap" tabIndex={0} role="region" aria-label={`${title}: data`}>
          {table}
        </div>
      </details>
    </figure>
  );
}

export interface Series {
  name: string;
  values: number[];
}

interface LineChartProps {
  title: string;
  labels: string[]; // one per x position
  series: Series[];
  unit: string;
}

const W = 640;
const H = 220;
const PAD = { left: 44, right: 12, top: 12, bottom: 28 };

/** Lines over time (one per series) with a legend; the table lists every point. */
export function LineChart({ title, labels, series, unit }: LineChartProps) {
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  const n = Math.max(labels.length, 1);
  const x = (i: number) => PAD.left + (n === 1 ? 0 : (i * (W - PAD.left - PAD.right)) / (n - 1));
  const y = (v: number) => PAD.top + (1 - v / max) * (H - PAD.top - PAD.bottom);
  const ticks = [0, max / 2, max];
  const totals = series.map((s) => `${s.name} ${s.values.reduce((a, b) => a + b, 0)}`).join(", ");
  const every = Math.max(1, Math.ceil(n / 6));
  return (
    <ChartFigure
      title={title}
      summary={`${title}: ${labels.length} points from ${labels[0] ?? "-"} to ${labels[labels.length - 1] ?? "-"}. Totals: ${totals || "none"}.`}
      table={
        <table className="grid small">
          <caption className="sr-only">{title}</caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              {series.map((s) => (
                <th scope="col" key={s.name}>
                  {s.name}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {labels.map((label, i) => (
              <tr key={label + i}>
                <th scope="row">{label}</th>
                {series.map((s) => (
                  <td key={s.name}>{s.values[i] ?? 0}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      }
    >
      <svg viewBox={`0 0 ${W} ${H}`} className="chart-svg" role="img" aria-label={`${title} (${unit}); totals: ${totals || "none"}`}>
        {ticks.map((t) => (
          <g key={t}>
            <line x1={PAD.left} x2={W - PAD.right} y1={y(t)} y2={y(t)} className="chart-grid" />
            <text x={PAD.left - 6} y={y(t) + 4} textAnchor="end" className="chart-tick">
              {Number.isInteger(t) ? t : t.toFixed(1)}
            </text>
          </g>
        ))}
        {labels.map((label, i) =>
          i % every === 0 ? (
            <text key={label + i} x={x(i)} y={H - 8} textAnchor="middle" className="chart-tick">
              {label}
            </text>
          ) : null,
        )}
        {series.map((s) => (
          <polyline
            key={s.name}
            data-series={s.name}
            fill="none"
            strokeWidth={2}
            style={{ stroke: seriesColor(s.name) }}
            points={s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ")}
          />
        ))}
      </svg>
      <ul className="legend" aria-hidden="true">
        {series.map((s) => (
          <li key={s.name}>
            <span className="swatch" style={{ background: seriesColor(s.name) }} />
            {s.name}
          </li>
        ))}
      </ul>
    </ChartFigure>
  );
}

export interface Bar {
  label: string;
  value: number;
  /** A second value drawn as a thinner bar over the first (e.g. p50 inside p95). */
  inner?: number;
  color?: string;
}

interface BarChartProps {
  title: string;
  bars: Bar[];
  unit: string;
  format?: (v: number) => string;
  /** Column headings of the data table: label, value[, inner]. */
  columns: string[];
}

const ROW = 26;
const LABEL_W = 150;
const VALUE_W = 80;

/** Horizontal bars, one row each, values written at the end; the table repeats them. */
export function BarChart({ title, bars, unit, format = String, columns }: BarChartProps) {
  const max = niceMax(Math.max(0, ...bars.map((b) => b.value)));
  const height = Math.max(bars.length, 1) * ROW + 8;
  const span = W - LABEL_W - VALUE_W;
  const described = bars.map((b) => `${b.label} ${format(b.value)}`).join(", ");
  return (
    <ChartFigure
      title={title}
      summary={`${title} (${unit}): ${described || "no data"}.`}
      table={
        <table className="grid small">
          <caption className="sr-only">{title}</caption>
          <thead>
            <tr>
              {columns.map((c) => (
                <th scope="col" key={c}>
                  {c}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {bars.map((b) => (
              <tr key={b.label}>
                <th scope="row">{b.label}</th>
                {columns.length > 2 && <td>{b.inner === undefined ? "" : format(b.inner)}</td>}
                <td>{format(b.value)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      }
    >
      {bars.length === 0 ? (
        <p className="muted small">No data in this window.</p>
      ) : (
        <svg viewBox={`0 0 ${W} ${height}`} className="chart-svg" role="img" aria-label={`${title} (${unit}): ${described}`}>
          {bars.map((b, i) => {
            const top = 4 + i * ROW;
            return (
              <g key={b.label} data-bar={b.label}>
                <text x={LABEL_W - 8} y={top + 16} textAnchor="end" className="chart-tick">
                  {b.label}
                </text>
                <rect
                  x={LABEL_W}
                  y={top + 3}
                  height={ROW - 8}
                  width={Math.max((b.value / max) * span, b.value > 0 ? 2 : 0)}
                  rx={3}
                  style={{ fill: b.color ?? "var(--accent)", opacity: b.inner === undefined ? 1 : 0.45 }}
                />
                {b.inner !== undefined && (
                  <rect
                    x={LABEL_W}
                    y={top + 8}
                    height={ROW - 18}
                    width={Math.max((b.inner / max) * span, b.inner > 0 ? 2 : 0)}
                    rx={2}
                    style={{ fill: b.color ?? "var(--accent)" }}
                  />
                )}
                <text x={W - VALUE_W + 6} y={top + 16} className="chart-tick">
                  {format(b.value)}
                </text>
              </g>
            );
          })}
        </svg>
      )}
    </ChartFigure>
  );
}

/** Horizontal bars for a probability distribution (largest first), labelled for screen readers. */
export function Bars({ values }: { values: Record<string, number> }) {
  const rows = Object.entries(values).sort((a, b) => b[1] - a[1]);
  return (
    <ul className="bars">
      {rows.map(([name, p]) => (
        <li key={name}>
          <span className="bar-label">{name}</span>
          <span
            className="bar"
            role="meter"
            aria-label={`${name} probability`}
            aria-valuemin={0}
            aria-valuemax={100}
            aria-valuenow={Math.round(p * 100)}
          >
            <span className={`bar-fill expert-${name}`} style={{ width: `${Math.max(p * 100, 0.5)}%` }} />
          </span>
          <span className="bar-value">{(p * 100).toFixed(1)}%</span>
        </li>
      ))}
    </ul>
  );
}

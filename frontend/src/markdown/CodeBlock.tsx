import { useRef, useState, type ReactNode } from "react";

/** A fenced code block (already highlighted) with its language and a copy button. */
export function CodeBlock({ children, language }: { children: ReactNode; language: string | null }) {
  const ref = useRef<HTMLPreElement>(null);
  const [copied, setCopied] = useState<"idle" | "done" | "failed">("idle");

  async function copy() {
    const text = ref.current?.textContent ?? "";
    try {
      await navigator.clipboard.writeText(text);
      setCopied("done");
    } catch {
      setCopied("failed");
    }
    window.setTimeout(() => setCopied("idle"), 1500);
  }

  return (
    <div className="code-block">
      <div className="code-head">
        <span className="code-lang">{language ?? "text"}</span>
        <button type="button" className="ghost small" onClick={copy} aria-label="Copy code">
          {copied === "done" ? "Copied" : copied === "failed" ? "Copy failed" : "Copy"}
        </button>
      </div>
      <pre ref={ref} tabIndex={0}>
        {children}
      </pre>
    </div>
  );
}

// Which sentences of an answer cite which source: "[n]" markers belong to the sentence
// they close. Grounding records (docs/grounding.md) do not carry per-claim support yet,
// so the tie is the one the answer's own text makes, read the same way the markers are
// drawn (markdown/plugins.ts: citedSentences wraps those sentences on screen).

const MARKER = /\[(\d{1,3})\]/g;
// A sentence ends at . ! ? (and any closing quote or bracket) before white space.
const BOUNDARY = /(?<=[.!?]["')\]]*)\s+/;
const MARKERS_ONLY = /^(?:\s*\[\d{1,3}\])+\s*/;

/** The plain words of a Markdown sentence: no markers, emphasis, code ticks or bullets. */
function plain(sentence: string): string {
  return sentence
    .replace(MARKER, "")
    .replace(/^\s*(?:[-*+]|\d+[.)]|#{1,6}|>)\s+/, "")
    .replace(/[*_`]+/g, "")
    .replace(/\s+([.,;:!?])/g, "$1")
    .replace(/\s+/g, " ")
    .trim();
}

/**
 * Each cited source's sentences, in answer order: source number -> the sentences that
 * carry its marker (markers alone at a sentence's start close the sentence before).
 * Code blocks are left out; markers above `count` (when given) are not citations.
 */
export function citedSentences(text: string, count = Infinity): Map<number, string[]> {
  const out = new Map<number, string[]>();
  const prose = text.replace(/```[\s\S]*?(?:```|$)/g, "\n\n");
  for (const block of prose.split(/\n\s*\n|\n(?=\s*(?:[-*+]|\d+[.)]|#{1,6}|>)\s)/)) {
    const parts = block.split(BOUNDARY).filter((p) => p.trim());
    const sentences: string[] = [];
    for (const part of parts) {
      const lead = MARKERS_ONLY.exec(part)?.[0];
      if (lead && sentences.length) {
        sentences[sentences.length - 1] += ` ${lead.trim()}`;
        const rest = part.slice(lead.length);
        if (rest.trim()) sentences.push(rest);
      } else {
        sentences.push(part);
      }
    }
    for (const sentence of sentences) {
      const words = plain(sentence);
      if (!words) continue;
      const seen = new Set<number>();
      for (const m of sentence.matchAll(MARKER)) {
        const n = Number(m[1]);
        if (n < 1 || n > count || seen.has(n)) continue;
        seen.add(n);
        out.set(n, [...(out.get(n) ?? []), words]);
      }
    }
  }
  return out;
}

// Which sentences of an answer cite which source: "[n]" markers belong to the sentence
// they close. Grounding records (docs/grounding.md) do not carry per-claim support, so
// the tie is the one the answer's own text makes, read the way the markers are drawn
// (markdown/plugins.ts: citedSentences wraps those sentences on screen). Each sentence
// keeps its place in the text, so the grounding check's findings (spans of the text)
// can be shown against the sentences they fall in.

const MARKER = /\[(\d{1,3})\]/g;
// A sentence ends at . ! ? (and any closing quote or bracket) before white space.
const BOUNDARY = /(?<=[.!?]["')\]]*)\s+/g;
const BLOCK = /\n\s*\n|\n(?=\s*(?:[-*+]|\d+[.)]|#{1,6}|>)\s)/g;
const MARKERS_ONLY = /^(?:\s*\[\d{1,3}\])+/;

/** One sentence: its plain words, and where it is in the answer (UTF-16 offsets, end exclusive). */
export interface CitedSentence {
  text: string;
  start: number;
  end: number;
}

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

/** [start, end) of the pieces of text[from, to) between matches of `separator`. */
function pieces(text: string, from: number, to: number, separator: RegExp): [number, number][] {
  const out: [number, number][] = [];
  let at = from;
  for (const m of text.slice(from, to).matchAll(separator)) {
    const cut = from + (m.index ?? 0);
    out.push([at, cut]);
    at = cut + m[0].length;
  }
  out.push([at, to]);
  return out.filter(([s, e]) => text.slice(s, e).trim());
}

/**
 * Each cited source's sentences, in answer order: source number -> the sentences that
 * carry its marker (markers alone at a sentence's start close the sentence before).
 * Code blocks are left out; markers above `count` (when given) are not citations.
 */
export function citedSentences(text: string, count = Infinity): Map<number, CitedSentence[]> {
  // Code blocks blanked out, lines kept: offsets still point into `text`.
  const prose = text.replace(/```[\s\S]*?(?:```|$)/g, (m) => m.replace(/[^\n]/g, " "));
  const out = new Map<number, CitedSentence[]>();
  for (const [blockStart, blockEnd] of pieces(prose, 0, prose.length, BLOCK)) {
    const spans: [number, number][] = [];
    for (const [s, e] of pieces(prose, blockStart, blockEnd, BOUNDARY)) {
      const lead = MARKERS_ONLY.exec(prose.slice(s, e))?.[0];
      if (lead && spans.length) {
        spans[spans.length - 1]![1] = s + lead.length;
        if (prose.slice(s + lead.length, e).trim()) spans.push([s + lead.length, e]);
      } else {
        spans.push([s, e]);
      }
    }
    for (const [start, end] of spans) {
      const raw = prose.slice(start, end);
      const words = plain(raw);
      if (!words) continue;
      const seen = new Set<number>();
      for (const m of raw.matchAll(MARKER)) {
        const n = Number(m[1]);
        if (n < 1 || n > count || seen.has(n)) continue;
        seen.add(n);
        out.set(n, [...(out.get(n) ?? []), { text: words, start, end }]);
      }
    }
  }
  return out;
}

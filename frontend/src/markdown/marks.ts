// Marks on spans of the raw Markdown source (grounding findings), placed on the parsed
// tree so that emphasis, lists, links and citations still render around them.
//
// A span is given in offsets into the source text. Each text node carries its source
// position, so a span becomes one <mark> per text node it touches ("pieces", all with
// the same index); the renderer gives the last piece the button that explains it.
// Only existing text is wrapped: a mark never adds markup of its own making.

import type { UnsupportedSpan } from "../api/types";

/** A span checked against the text, in UTF-16 offsets (JavaScript string indices). */
export interface MarkSpan {
  start: number;
  end: number;
  span: UnsupportedSpan;
}

const SURROGATE = /[\uD800-\uDFFF]/;

/** UTF-16 index of each code point index 0..n (the server counts code points). */
function codeUnitIndex(text: string): (cp: number) => number | null {
  if (!SURROGATE.test(text)) return (cp) => (cp <= text.length ? cp : null);
  const units: number[] = [];
  let i = 0;
  for (const ch of text) {
    units.push(i);
    i += ch.length;
  }
  units.push(i);
  return (cp) => units[cp] ?? null;
}

/** The occurrence of `needle` in `text` nearest to `near` (-1: none). */
function nearest(text: string, needle: string, near: number): number {
  let best = -1;
  for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + 1)) {
    if (best < 0 || Math.abs(at - near) < Math.abs(best - near)) best = at;
    if (at > near) break;
  }
  return best;
}

/**
 * The spans that can be shown on `text`, in order and not overlapping. Offsets are
 * converted from code points; a span whose slice is not its `text` is looked up by that
 * text nearest to where it was said to be, and dropped when not found. Empty or
 * out-of-range spans are dropped, and so is any span overlapping an earlier one.
 */
export function markSpans(text: string, spans: readonly UnsupportedSpan[]): MarkSpan[] {
  const toUnit = codeUnitIndex(text);
  const found: MarkSpan[] = [];
  for (const span of spans) {
    if (!Number.isInteger(span.start) || !Number.isInteger(span.end)) continue;
    if (span.start < 0 || span.end <= span.start) continue;
    let start = toUnit(span.start);
    let end = toUnit(span.end);
    if (start === null || end === null || (span.text && text.slice(start, end) !== span.text)) {
      if (!span.text.trim()) continue;
      const at = nearest(text, span.text, start ?? text.length);
      if (at < 0) continue;
      start = at;
      end = at + span.text.length;
    }
    found.push({ start, end, span });
  }
  found.sort((a, b) => a.start - b.start || b.end - a.end);
  const out: MarkSpan[] = [];
  for (const m of found) {
    const prev = out.at(-1);
    if (prev && m.start < prev.end) continue;
    out.push(m);
  }
  return out;
}

const ENTITY = /^&(?:#\d{1,7}|#x[0-9a-f]{1,6}|[a-z][a-z0-9]{1,31});/i;

/**
 * For each index 0..value.length of a text node's `value`, the source offset it came
 * from (`source` is the node's slice of the document, starting at `base`). The value is
 * the source less escapes, container markers ("> ", list indents) and with character
 * references decoded, so the source is walked alongside, skipping what the value lacks.
 */
export function sourceOffsets(value: string, source: string, base: number): number[] {
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < value.length; ) {
    if (j >= source.length) {
      out.push(base + source.length);
      i++;
    } else if (source[j] === value[i]) {
      out.push(base + j);
      i++;
      j++;
    } else if (source[j] === "&" && ENTITY.test(source.slice(j, j + 40))) {
      // A character reference decodes to one character (two code units beyond the BMP).
      const at = base + j;
      const size = SURROGATE.test(value[i]!) && i + 1 < value.length ? 2 : 1;
      for (let k = 0; k < size; k++) out.push(at);
      i += size;
      j += ENTITY.exec(source.slice(j, j + 40))![0].length;
    } else {
      j++;
    }
  }
  out.push(base + Math.min(j, source.length));
  return out;
}

interface Point {
  offset?: number;
}

export interface MdNode {
  type: string;
  value?: string;
  children?: MdNode[];
  position?: { start: Point; end: Point };
  data?: { hName?: string; hProperties?: Record<string, unknown> };
}

/** Nodes whose insides are not marked: fenced code, link definitions, footnote text. */
const OPAQUE = new Set(["code", "definition", "footnoteDefinition", "html"]);

function markNode(index: number, children: MdNode[]): MdNode {
  return {
    type: "sourceMark",
    data: { hName: "mark", hProperties: { dataMark: String(index) } },
    children,
  };
}

/**
 * remark plugin: wrap the parts of text nodes that `spans` (from markSpans, over the
 * same source) cover in <mark data-mark="i"> (i: the span's index in `spans`); the last
 * piece of each span gets data-last. Inline code is wrapped whole. Text without a source
 * position (made by an earlier transform) is left alone.
 */
export function sourceMarks(options: { spans: readonly MarkSpan[] }) {
  const { spans } = options;
  return (tree: MdNode, file: { value?: unknown }) => {
    const doc = typeof file.value === "string" ? file.value : String(file.value ?? "");
    if (!spans.length || !doc) return;
    const last = new Map<number, MdNode>();

    const pieces = (child: MdNode): MdNode[] => {
      const from = child.position?.start.offset;
      const to = child.position?.end.offset;
      if (from === undefined || to === undefined) return [child];
      const touching = spans.map((s, i) => [s, i] as const).filter(([s]) => s.start < to && s.end > from);
      if (!touching.length) return [child];
      if (child.type === "inlineCode") {
        const [, i] = touching[0]!;
        const mark = markNode(i, [child]);
        last.set(i, mark);
        return [mark];
      }
      const value = child.value ?? "";
      const at = sourceOffsets(value, doc.slice(from, to), from);
      const out: MdNode[] = [];
      let cut = 0;
      for (const [s, i] of touching) {
        // The value indices whose source lies inside the span.
        let a = at.findIndex((o, k) => k < value.length && o >= s.start);
        if (a < 0) continue;
        a = Math.max(a, cut);
        let b = at.findIndex((o, k) => k >= a && (k === value.length || o >= s.end));
        if (b < 0) b = value.length;
        if (b <= a) continue;
        if (a > cut) out.push({ type: "text", value: value.slice(cut, a) });
        const mark = markNode(i, [{ type: "text", value: value.slice(a, b) }]);
        out.push(mark);
        last.set(i, mark);
        cut = b;
      }
      if (cut === 0 && !out.length) return [child];
      if (cut < value.length) out.push({ type: "text", value: value.slice(cut) });
      return out;
    };

    const walk = (node: MdNode): void => {
      if (!node.children || OPAQUE.has(node.type)) return;
      node.children = node.children.flatMap((child) => {
        if (child.type === "text" || child.type === "inlineCode") return pieces(child);
        walk(child);
        return [child];
      });
    };
    walk(tree);
    for (const mark of last.values()) mark.data!.hProperties!.dataLast = "true";
  };
}

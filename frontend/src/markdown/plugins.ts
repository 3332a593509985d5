// Two small remark plugins (mdast in, mdast out).
//
// htmlAsText: raw HTML in model output or documents is shown as the literal text it is,
// never parsed into elements. (react-markdown would drop it; showing it is more honest.)
//
// (It keeps the node's source position, so marks on the answer's text reach it: marks.ts.)
//
// citationLinks: "[2]" in prose becomes a link to "#cite-2" that the renderer turns into
// a button opening citation 2, when the answer has that many citations.

interface Node {
  type: string;
  value?: string;
  url?: string;
  children?: Node[];
  position?: unknown;
  data?: { hName?: string; hProperties?: Record<string, unknown> };
}

const SKIP = new Set(["code", "inlineCode", "link", "linkReference", "definition"]);

function walk(node: Node, fn: (parent: Node) => void): void {
  if (!node.children || SKIP.has(node.type)) return;
  fn(node);
  for (const child of node.children) walk(child, fn);
}

export function htmlAsText() {
  return (tree: Node) => {
    walk(tree, (parent) => {
      parent.children = parent.children!.map((child) =>
        child.type === "html" ? { type: "text", value: child.value ?? "", position: child.position } : child,
      );
    });
  };
}

const MARKER = /\[(\d{1,3})\]/g;

export function citationLinks(options: { count: number }) {
  const { count } = options;
  return (tree: Node) => {
    if (count <= 0) return;
    walk(tree, (parent) => {
      const out: Node[] = [];
      for (const child of parent.children!) {
        if (child.type !== "text" || !child.value) {
          out.push(child);
          continue;
        }
        const text = child.value;
        let last = 0;
        for (const match of text.matchAll(MARKER)) {
          const n = Number(match[1]);
          if (n < 1 || n > count) continue;
          const at = match.index ?? 0;
          if (at > last) out.push({ type: "text", value: text.slice(last, at) });
          out.push({ type: "link", url: `#cite-${n}`, children: [{ type: "text", value: `[${n}]` }] });
          last = at + match[0].length;
        }
        if (last < text.length) out.push({ type: "text", value: text.slice(last) });
      }
      parent.children = out;
    });
  };
}

// answerLabels: the fixed lines the server writes into quoted answers (backend/chat/
// quoting.py) are labels, not prose: the draft heading, the quotes' intro (whose
// blockquote that follows holds one quote a line) and the correction of a streamed answer.

export const DRAFT_HEADING = "The model's answer (a draft, not checked by a person):";
export const QUOTE_INTRO = "From the documents:";
export const CORRECTION = "The answer above is not supported by the documents it cites. What they say:";

const LABELS: Record<string, string> = {
  [DRAFT_HEADING]: "draft",
  [QUOTE_INTRO]: "quotes",
  [CORRECTION]: "correction",
};

function labelOf(node: Node | undefined): string | null {
  if (node?.type !== "paragraph" || node.children?.length !== 1) return null;
  const only = node.children[0]!;
  return only.type === "text" ? (LABELS[(only.value ?? "").trim()] ?? null) : null;
}

export function answerLabels() {
  return (tree: Node) => {
    const children = tree.children ?? [];
    children.forEach((node, i) => {
      const label = labelOf(node);
      if (!label) return;
      node.data = { ...node.data, hProperties: { className: ["answer-label", `answer-label-${label}`] } };
      const next = children[i + 1];
      if (label === "quotes" && next?.type === "blockquote") {
        next.data = { ...next.data, hProperties: { className: ["document-quotes"] } };
      }
    });
  };
}

// citedSentences: the sentence a citation marker closes is wrapped, with its markers, in
// <span class="cited-sentence" data-cites="1 2">, so that pointing at (or focusing) a
// marker shows which words it supports. Runs after citationLinks (markers are links to
// "#cite-n" by then). A sentence starts after the previous one's end (. ! ? then space)
// or after the previous markers, within one paragraph, list item or cell; markup inside
// it (emphasis, marks) is kept whole. Markers that open a sentence close the one before.

const SENTENCE_END = /[.!?]["')\]]*\s+/g;

function citeNumber(node: Node): number | null {
  const m = node.type === "link" ? /^#cite-(\d+)$/.exec(node.url ?? "") : null;
  return m ? Number(m[1]) : null;
}

/** Index just past the last sentence end in `text` (-1: none). */
function lastSentenceEnd(text: string): number {
  let end = -1;
  for (const m of text.matchAll(SENTENCE_END)) end = (m.index ?? 0) + m[0].length;
  return end;
}

function wrapSentence(children: Node[], cites: number[]): Node {
  return {
    type: "citedSentence",
    children,
    data: { hName: "span", hProperties: { className: ["cited-sentence"], dataCites: cites.join(" ") } },
  };
}

export function citedSentences() {
  return (tree: Node) => {
    walk(tree, (parent) => {
      const children = parent.children!;
      if (parent.type === "citedSentence" || !children.some((c) => citeNumber(c) !== null)) return;
      const out: Node[] = [];
      let sentence: Node[] = [];
      let cites: number[] = [];
      const close = () => {
        if (cites.length && sentence.some((n) => citeNumber(n) === null && (n.type !== "text" || n.value?.trim()))) {
          out.push(wrapSentence(sentence, cites));
        } else {
          out.push(...sentence);
        }
        sentence = [];
        cites = [];
      };
      for (const child of children) {
        const n = citeNumber(child);
        if (n !== null) {
          sentence.push(child);
          if (!cites.includes(n)) cites.push(n);
          continue;
        }
        const whitespace = child.type === "text" && !child.value?.trim();
        if (cites.length && !whitespace) {
          // The markers are done. Text after them up to a sentence end still closes it (". ").
          if (child.type === "text" && child.value) {
            const lead = /^[.!?,;:]["')\]]*/.exec(child.value)?.[0] ?? "";
            if (lead) sentence.push({ type: "text", value: lead });
            close();
            const rest = child.value.slice(lead.length);
            if (rest) pushText(rest);
            continue;
          }
          close();
        }
        if (child.type === "text" && child.value) pushText(child.value);
        else sentence.push(child);
      }
      close();
      parent.children = out;

      function pushText(value: string) {
        const end = cites.length ? -1 : lastSentenceEnd(value);
        if (end > 0) {
          sentence.push({ type: "text", value: value.slice(0, end) });
          close();
          if (end < value.length) sentence.push({ type: "text", value: value.slice(end) });
        } else {
          sentence.push({ type: "text", value });
        }
      }
    });
  };
}

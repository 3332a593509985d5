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

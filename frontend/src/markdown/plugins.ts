// Two small remark plugins (mdast in, mdast out).
//
// htmlAsText: raw HTML in model output or documents is shown as the literal text it is,
// never parsed into elements. (react-markdown would drop it; showing it is more honest.)
//
// citationLinks: "[2]" in prose becomes a link to "#cite-2" that the renderer turns into
// a button opening citation 2, when the answer has that many citations.

interface Node {
  type: string;
  value?: string;
  url?: string;
  children?: Node[];
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
        child.type === "html" ? { type: "text", value: child.value ?? "" } : child,
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

import { isValidElement, type ReactElement, type ReactNode } from "react";
import ReactMarkdown, { type Components } from "react-markdown";
import rehypeHighlight from "rehype-highlight";
import remarkGfm from "remark-gfm";

import { CodeBlock } from "./CodeBlock";
import { citationLinks, htmlAsText } from "./plugins";

interface Props {
  text: string;
  /** Number of citations the answer has: "[n]" up to it becomes a button. */
  citationCount?: number;
  onCite?: (n: number) => void;
}

function languageOf(children: ReactNode): string | null {
  const code = Array.isArray(children) ? children[0] : children;
  if (!isValidElement(code)) return null;
  const className = (code as ReactElement<{ className?: string }>).props.className ?? "";
  const match = /language-([\w+-]+)/.exec(className);
  return match?.[1] ?? null;
}

/**
 * Markdown from a model or a document, rendered safely: no raw HTML (shown as text),
 * no script URLs (react-markdown's URL filter), no remote images (shown as links).
 */
export function Markdown({ text, citationCount = 0, onCite }: Props) {
  const components: Components = {
    pre: ({ children }) => <CodeBlock language={languageOf(children)}>{children}</CodeBlock>,
    a: ({ href, children }) => {
      const cite = href ? /^#cite-(\d+)$/.exec(href) : null;
      if (cite) {
        const n = Number(cite[1]);
        return (
          <button
            type="button"
            className="cite-ref"
            onClick={() => onCite?.(n)}
            aria-label={`Show source ${n}`}
          >
            {children}
          </button>
        );
      }
      return (
        <a href={href} target="_blank" rel="noopener noreferrer nofollow">
          {children}
        </a>
      );
    },
    img: ({ src, alt }) =>
      typeof src === "string" && src ? (
        <a href={src} target="_blank" rel="noopener noreferrer nofollow">
          {alt || "image"}
        </a>
      ) : (
        <span>{alt}</span>
      ),
  };
  return (
    <div className="markdown">
      <ReactMarkdown
        remarkPlugins={[remarkGfm, htmlAsText, [citationLinks, { count: citationCount }]]}
        rehypePlugins={[[rehypeHighlight, { detect: false }]]}
        components={components}
      >
        {text}
      </ReactMarkdown>
    </div>
  );
}

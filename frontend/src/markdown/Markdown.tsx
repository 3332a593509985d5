import {
  createContext,
  isValidElement,
  useContext,
  useId,
  useMemo,
  useState,
  type ReactElement,
  type ReactNode,
} from "react";
import ReactMarkdown, { type Components } from "react-markdown";
import rehypeHighlight from "rehype-highlight";
import remarkGfm from "remark-gfm";

import type { UnsupportedSpan } from "../api/types";
import { CodeBlock } from "./CodeBlock";
import { markSpans, sourceMarks, type MarkSpan } from "./marks";
import { answerLabels, citationLinks, citedSentences, htmlAsText } from "./plugins";
import { UnsupportedMark } from "./UnsupportedMark";

interface Props {
  text: string;
  /** Number of citations the answer has: "[n]" up to it becomes a button. */
  citationCount?: number;
  onCite?: (n: number) => void;
  /** Spans of `text` (offsets into it) its documents do not support: marked and explained. */
  marks?: readonly UnsupportedSpan[];
}

function languageOf(children: ReactNode): string | null {
  const code = Array.isArray(children) ? children[0] : children;
  if (!isValidElement(code)) return null;
  const className = (code as ReactElement<{ className?: string }>).props.className ?? "";
  const match = /language-([\w+-]+)/.exec(className);
  return match?.[1] ?? null;
}

interface MarksState {
  spans: readonly MarkSpan[];
  open: number | null;
  idPrefix: string;
  toggle: (i: number) => void;
  close: () => void;
}

const MarksContext = createContext<MarksState | null>(null);

/** A <mark> of the rendered tree: one piece of an unsupported span (made by sourceMarks). */
function MarkPiece({ children, ...props }: { children?: ReactNode; node?: unknown }) {
  const marks = useContext(MarksContext);
  const attrs = props as Record<string, unknown>;
  const i = Number(attrs["data-mark"]);
  const span = marks?.spans[i]?.span;
  // Only sourceMarks makes <mark> (raw HTML in the text never becomes an element).
  if (!marks || !span) return <>{children}</>;
  return (
    <UnsupportedMark
      span={span}
      id={`${marks.idPrefix}-mark-${i}`}
      last={attrs["data-last"] === "true"}
      open={marks.open === i}
      onToggle={() => marks.toggle(i)}
      onClose={marks.close}
    >
      {children}
    </UnsupportedMark>
  );
}

/**
 * Markdown from a model or a document, rendered safely: no raw HTML (shown as text),
 * no script URLs (react-markdown's URL filter), no remote images (shown as links).
 */
export function Markdown({ text, citationCount = 0, onCite, marks }: Props) {
  const spans = useMemo(() => markSpans(text, marks ?? []), [text, marks]);
  const [openMark, setOpenMark] = useState<number | null>(null);
  const idPrefix = useId();
  const marksState = useMemo<MarksState>(
    () => ({
      spans,
      open: openMark,
      idPrefix,
      toggle: (i) => setOpenMark((o) => (o === i ? null : i)),
      close: () => setOpenMark(null),
    }),
    [spans, openMark, idPrefix],
  );
  // Stable between renders, so opening a mark re-renders its pieces instead of
  // remounting the answer (which would lose the focus on the mark's button).
  const components: Components = useMemo(
    () => ({
      mark: MarkPiece,
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
    }),
    [onCite],
  );
  return (
    <MarksContext.Provider value={marksState}>
      <div className="markdown">
        <ReactMarkdown
          remarkPlugins={[
            remarkGfm,
            htmlAsText,
            answerLabels,
            [sourceMarks, { spans }],
            [citationLinks, { count: citationCount }],
            citedSentences,
          ]}
          rehypePlugins={[[rehypeHighlight, { detect: false }]]}
          components={components}
        >
          {text}
        </ReactMarkdown>
      </div>
    </MarksContext.Provider>
  );
}

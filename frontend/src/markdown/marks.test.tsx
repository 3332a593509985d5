import { fireEvent, render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import type { UnsupportedSpan } from "../api/types";
import { markSpans, sourceOffsets } from "./marks";
import { Markdown } from "./Markdown";

/** The span of the first `part` of `text`, in code points as the server counts them. */
function span(text: string, part: string, detail = "no passage says so", reason: UnsupportedSpan["reason"] = "unsupported"): UnsupportedSpan {
  const at = text.indexOf(part);
  if (at < 0) throw new Error(`${part} not in text`);
  const start = [...text.slice(0, at)].length;
  return { start, end: start + [...part].length, text: part, reason, detail };
}

function marked(container: HTMLElement): string[] {
  return Array.from(container.querySelectorAll("mark")).map((m) => m.textContent ?? "");
}

describe("markSpans", () => {
  it("converts the server's code point offsets to string indices", () => {
    const text = "Rocket 🚀 launch costs 5 dollars.";
    const [m] = markSpans(text, [span(text, "5 dollars")]);
    expect(text.slice(m!.start, m!.end)).toBe("5 dollars");
  });

  it("drops empty, negative, out-of-range and overlapping spans; keeps order", () => {
    const text = "One two three four.";
    const ok = span(text, "two three");
    const spans: UnsupportedSpan[] = [
      span(text, "four"),
      ok,
      { ...span(text, "three four"), detail: "overlaps" },
      { start: 5, end: 5, text: "", reason: "unsupported", detail: "" },
      { start: -3, end: 2, text: "On", reason: "unsupported", detail: "" },
      { start: 10, end: 400, text: "not there", reason: "unsupported", detail: "" },
    ];
    expect(markSpans(text, spans).map((m) => text.slice(m.start, m.end))).toEqual(["two three", "four"]);
  });

  it("finds a span by its text when its offsets do not match it, or drops it", () => {
    const text = "Alpha. The cap is 24 months. Beta.";
    const moved = { ...span(text, "24 months"), start: 2, end: 11 };
    expect(markSpans(text, [moved]).map((m) => text.slice(m.start, m.end))).toEqual(["24 months"]);
    expect(markSpans(text, [{ ...moved, text: "36 months" }])).toEqual([]);
  });
});

describe("sourceOffsets", () => {
  it("maps a parsed text value back through escapes, references and quote markers", () => {
    const source = "a \\* b &amp; c\n> d";
    const value = "a * b & c\nd";
    const at = sourceOffsets(value, source, 100);
    expect(at).toHaveLength(value.length + 1);
    expect(at[value.indexOf("*")]).toBe(100 + source.indexOf("*"));
    expect(at[value.indexOf("&")]).toBe(100 + source.indexOf("&"));
    expect(at[value.indexOf("c")]).toBe(100 + source.indexOf("c"));
    expect(at[value.indexOf("d")]).toBe(100 + source.indexOf("d"));
    expect(at[value.length]).toBe(100 + source.length);
  });
});

describe("Markdown marks", () => {
  it("marks a sentence across emphasis with one explained mark, citations still buttons", () => {
    const text = "Intro is fine [1]. The cap is **twelve months** of fees [1]. The end.";
    const s = span(text, "The cap is **twelve months** of fees [1].", "No passage gives the cap.");
    const { container } = render(<Markdown text={text} citationCount={1} marks={[s]} />);
    const pieces = Array.from(container.querySelectorAll("mark"));
    expect(pieces.map((m) => m.textContent).join("")).toBe("The cap is twelve months of fees [1].");
    expect(new Set(pieces.map((m) => m.getAttribute("aria-describedby"))).size).toBe(1);
    expect(container.querySelector("strong mark")?.textContent).toBe("twelve months");
    expect(pieces.every((m) => m.title.includes("No passage gives the cap."))).toBe(true);
    // The citations inside and outside the span are still buttons.
    expect(screen.getAllByRole("button", { name: "Show source 1" })).toHaveLength(2);
    // One button explains the span; the tooltip is its description.
    const flag = screen.getByRole("button", { name: "Not supported by the cited documents" });
    const tip = document.getElementById(flag.getAttribute("aria-describedby")!)!;
    expect(tip.getAttribute("role")).toBe("tooltip");
    expect(tip.textContent).toBe("Not supported by the cited documents: No passage gives the cap.");
    expect(pieces[0]!.getAttribute("aria-describedby")).toBe(tip.id);
  });

  it("opens the explanation on a tap of the text or the button, and Escape closes it", () => {
    const text = "It takes 3 days.";
    render(<Markdown text={text} marks={[span(text, "3 days", "The passage says 5 days.", "number_mismatch")]} />);
    const flag = screen.getByRole("button", { name: "A number or name does not match the cited documents" });
    expect(flag.getAttribute("aria-expanded")).toBe("false");
    fireEvent.click(screen.getByText("3 days"));
    expect(flag.getAttribute("aria-expanded")).toBe("true");
    expect(screen.getByRole("tooltip").className).toContain("open");
    fireEvent.keyDown(flag, { key: "Escape" });
    expect(flag.getAttribute("aria-expanded")).toBe("false");
    // Dismissed: hover or focus do not bring it back until they leave.
    expect(flag.parentElement!.className).toContain("dismissed");
    fireEvent.blur(flag);
    expect(flag.parentElement!.className).not.toContain("dismissed");
    fireEvent.click(flag);
    expect(flag.getAttribute("aria-expanded")).toBe("true");
    fireEvent.click(flag);
    expect(flag.getAttribute("aria-expanded")).toBe("false");
  });

  it("marks inside list items, inline code whole, never inside fenced code", () => {
    const text = "Steps:\n\n1. Open *Settings* now.\n2. Run `git push --force` after.\n\n```bash\nrm -rf build\n```\n";
    const spans = [
      span(text, "Settings* now"),
      span(text, "push --force"),
      span(text, "rm -rf"),
    ];
    const { container } = render(<Markdown text={text} marks={spans} />);
    expect(marked(container)).toEqual(["Settings", " now", "git push --force"]);
    expect(container.querySelector("li em mark")?.textContent).toBe("Settings");
    expect(container.querySelector("mark > code")?.textContent).toBe("git push --force");
    expect(container.querySelector("pre mark")).toBeNull();
    expect(container.querySelector("pre")?.textContent).toContain("rm -rf build");
    expect(screen.getAllByRole("button", { name: /Not supported/ })).toHaveLength(2);
  });

  it("keeps HTML-like text in a span as text, never markup", () => {
    const text = 'Run <img src=x onerror="window.__marked=1"> then <b>stop</b> &amp; wait.';
    const s = span(text, '<img src=x onerror="window.__marked=1"> then <b>stop</b> &amp; wait.', '<script>alert("d")</script>');
    const { container } = render(<Markdown text={text} marks={[s]} />);
    expect(container.querySelector("img, b, script")).toBeNull();
    expect(marked(container).join("")).toBe('<img src=x onerror="window.__marked=1"> then <b>stop</b> & wait.');
    expect(screen.getByRole("tooltip").textContent).toContain('<script>alert("d")</script>');
    expect((window as unknown as { __marked?: number }).__marked).toBeUndefined();
  });

  it("ignores spans that no longer fit the text, and renders the text unchanged", () => {
    const text = "Short answer.";
    const { container } = render(
      <Markdown text={text} marks={[{ start: 50, end: 90, text: "gone", reason: "unsupported", detail: "" }]} />,
    );
    expect(container.querySelector("mark")).toBeNull();
    expect(container.textContent).toBe("Short answer.");
  });

  it("marks text beyond the BMP at the right place", () => {
    const text = "😀 Fine. Costs **€40** a month.";
    const { container } = render(<Markdown text={text} marks={[span(text, "€40")]} />);
    expect(marked(container)).toEqual(["€40"]);
  });
});

describe("quoted answers", () => {
  it("shows the quotes as a block, one a line, and the draft heading as a label", () => {
    const text =
      "From the documents:\n> The cap is twelve months of fees. [1]\n> It excludes confidentiality breaches. [2]\n\n" +
      "The model's answer (a draft, not checked by a person):\n\nThe cap is 24 months [1].";
    const { container } = render(<Markdown text={text} citationCount={2} />);
    const quotes = container.querySelector("blockquote.document-quotes");
    expect(quotes?.textContent).toContain("twelve months of fees. [1]\nIt excludes");
    expect(quotes?.querySelectorAll("button.cite-ref")).toHaveLength(2);
    expect(container.querySelector("p.answer-label-quotes")?.textContent).toBe("From the documents:");
    expect(container.querySelector("p.answer-label-draft")?.textContent).toBe(
      "The model's answer (a draft, not checked by a person):",
    );
    // The draft itself is ordinary prose.
    expect(container.querySelectorAll("p.answer-label")).toHaveLength(2);
  });

  it("labels the correction appended to a streamed answer", () => {
    const text =
      "The cap is 24 months.\n\n---\nThe answer above is not supported by the documents it cites. What they say:\n\n" +
      "From the documents:\n> The cap is twelve months of fees. [1]";
    const { container } = render(<Markdown text={text} citationCount={1} />);
    expect(container.querySelector("p.answer-label-correction")).not.toBeNull();
    expect(container.querySelector("blockquote.document-quotes")).not.toBeNull();
  });
});

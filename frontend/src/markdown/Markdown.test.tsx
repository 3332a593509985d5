import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";

import { Markdown } from "./Markdown";

describe("Markdown", () => {
  it("shows raw HTML from a model as text, never as elements", () => {
    const { container } = render(
      <Markdown text={'Hi <img src=x onerror="alert(1)"> and <script>alert(2)</script>\n\n<div onclick="x()">block</div>'} />,
    );
    expect(container.querySelector("img, script, div[onclick]")).toBeNull();
    expect(container.textContent).toContain('<img src=x onerror="alert(1)">');
    expect(container.textContent).toContain("<script>alert(2)</script>");
  });

  it("drops script URLs and opens links in a new, isolated tab", () => {
    const { container } = render(<Markdown text={"[bad](javascript:alert(1)) [good](https://example.com/a)"} />);
    const links = Array.from(container.querySelectorAll("a"));
    expect(links.map((a) => a.getAttribute("href"))).toEqual(["", "https://example.com/a"]);
    expect(links[1]!.getAttribute("rel")).toContain("noopener");
    expect(links[1]!.getAttribute("target")).toBe("_blank");
  });

  it("shows images as links instead of loading them", () => {
    const { container } = render(<Markdown text={"![chart](https://tracker.example/p.png)"} />);
    expect(container.querySelector("img")).toBeNull();
    expect(screen.getByRole("link", { name: "chart" }).getAttribute("href")).toBe("https://tracker.example/p.png");
  });

  it("highlights fenced code and copies its text", async () => {
    const writeText = vi.fn().mockResolvedValue(undefined);
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    const { container } = render(<Markdown text={"```python\ndef f():\n    return 1\n```"} />);
    expect(screen.getByText("python")).toBeTruthy();
    expect(container.querySelector("pre .hljs-keyword")?.textContent).toBe("def");
    fireEvent.click(screen.getByRole("button", { name: "Copy code" }));
    await waitFor(() => expect(writeText).toHaveBeenCalledWith("def f():\n    return 1\n"));
    expect(await screen.findByText("Copied")).toBeTruthy();
  });

  it("turns [n] into source buttons only for citations that exist, not inside code", () => {
    const onCite = vi.fn();
    render(<Markdown text={"Cap is 12 months [1], see also [2] and [7]. `a[1]`"} citationCount={2} onCite={onCite} />);
    const buttons = screen.getAllByRole("button", { name: /Show source/ });
    expect(buttons.map((b) => b.textContent)).toEqual(["[1]", "[2]"]);
    fireEvent.click(buttons[1]!);
    expect(onCite).toHaveBeenCalledWith(2);
    expect(screen.getByText("a[1]").tagName).toBe("CODE");
  });

  it("renders GitHub tables", () => {
    const { container } = render(<Markdown text={"| a | b |\n|---|---|\n| 1 | 2 |"} />);
    expect(container.querySelectorAll("td")).toHaveLength(2);
  });
});

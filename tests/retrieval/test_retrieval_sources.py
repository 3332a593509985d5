"""Finding input files: allowed roots (symlinks resolved), folder walks, source names."""

from __future__ import annotations

from pathlib import Path

from retrieval.errors import MissingFile, OutsideAllowedRoots, UnsupportedType
from retrieval.sources import FoundFile, RefusedPath, discover, source_name


def test_discover_walks_folders_and_refuses_what_it_must(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "legal" / "sub").mkdir(parents=True)
    (root / "legal" / "a.md").write_text("# A\n\ntext\n")
    (root / "legal" / "sub" / "b.txt").write_text("B\n\ntext\n")
    (root / "legal" / "logo.png").write_bytes(b"\x89PNG")
    (root / "legal" / ".git").mkdir()
    (root / "legal" / ".git" / "config.md").write_text("hidden")
    outside = tmp_path / "secret.md"
    outside.write_text("# no\n\nno\n")
    (root / "legal" / "escape.md").symlink_to(outside)

    found = discover([root / "legal", root / "legal" / "a.md", outside, root / "nope.md", root / "x.bin"], [root])
    ok = [(f.source, f.path) for f in found if isinstance(f, FoundFile)]
    refused = {r.source: r for r in found if isinstance(r, RefusedPath)}
    # Each file once (a.md named twice), hidden folders skipped, sources relative to the root.
    assert ok == [
        ("legal/a.md", (root / "legal" / "a.md").resolve()),
        ("legal/sub/b.txt", (root / "legal" / "sub" / "b.txt").resolve()),
    ]
    assert isinstance(refused[str(root / "legal" / "escape.md")].error, OutsideAllowedRoots)
    assert isinstance(refused[str(outside)].error, OutsideAllowedRoots)
    assert isinstance(refused[str(root / "nope.md")].error, MissingFile)
    assert refused["legal/logo.png"].skipped and isinstance(refused["legal/logo.png"].error, UnsupportedType)


def test_source_name_uses_the_innermost_root(tmp_path: Path) -> None:
    inner = tmp_path / "docs" / "samples"
    inner.mkdir(parents=True)
    path = inner / "legal" / "x.md"
    assert source_name(path, [tmp_path, inner]) == "legal/x.md"
    assert source_name(path, [tmp_path]) == "docs/samples/legal/x.md"
    assert source_name(tmp_path.parent / "elsewhere.md", [tmp_path]) is None
    assert source_name(tmp_path / ".." / "docs.md", [tmp_path]) is None

"""The backend's shape in numbers (issue 21): two-way ties between backend packages,
import cycles between files, the largest modules, and how many modules import the
runtime. Reads the import graph with grimp (what import-linter uses).

    .venv/bin/python -m bench.code_shape [--json out.json]

A "tie" is a pair of backend packages that import each other (directly, in either
direction, at module level or inside functions: grimp sees both); a package cycle is a
group of packages that reach each other through imports, at any length. A file cycle is
a pair of modules that import each other.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from itertools import combinations
from pathlib import Path

import grimp


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def package_cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Groups of backend packages that reach each other through imports (strongly
    connected components of more than one package): a cycle of any length."""
    nodes = sorted({p for e in edges for p in e})
    reach = {n: {b for a, b in edges if a == n} for n in nodes}
    for k in nodes:  # transitive closure (a few dozen packages)
        for n in nodes:
            if k in reach[n]:
                reach[n] |= reach[k]
    groups = {frozenset(m for m in nodes if m in reach[n] and n in reach[m]) | {n} for n in nodes}
    return sorted(sorted(g) for g in groups if len(g) > 1)


def shape() -> dict[str, object]:
    graph = grimp.build_graph("backend", "experts", "router", "retrieval", cache_dir=None)
    modules = sorted(m for m in graph.modules if m.startswith("backend."))
    edges: set[tuple[str, str]] = set()
    file_edges: set[tuple[str, str]] = set()
    for importer in modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            if not imported.startswith("backend."):
                continue
            file_edges.add((importer, imported))
            a, b = package_of(importer), package_of(imported)
            if a != b:
                edges.add((a, b))
    ties = sorted(f"{a} <-> {b}" for a, b in combinations(sorted({p for e in edges for p in e}), 2)
                  if (a, b) in edges and (b, a) in edges)  # fmt: skip
    cycles = sorted(f"{a} <-> {b}" for a, b in file_edges if a < b and (b, a) in file_edges)
    sizes = []
    for module in modules:
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None, module
        sizes.append((len(Path(spec.origin).read_text().splitlines()), module))
    runtime_users = sorted(m for m in modules if "backend.runtime" in graph.find_modules_directly_imported_by(m))
    return {
        "two_way_package_ties": ties,
        "file_cycles": cycles,
        "largest_modules": [f"{module} ({lines} lines)" for lines, module in sorted(sizes, reverse=True)[:8]],
        "package_cycles": package_cycles(edges),
        "modules_importing_the_runtime": len(runtime_users),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = shape()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()

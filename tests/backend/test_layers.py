"""What may import what (ARCHITECTURE.md), including what import-linter cannot see.

import-linter (the contracts in pyproject.toml, run by ``make lint``) checks the graph
that grimp builds from import statements. A module loaded by name, as experts/llm.py
loads litellm (``importlib.import_module``, when the client is built rather than at
import), is no edge in that graph, so no contract can catch it. These tests read every
module's syntax tree for both kinds of import, and check that each contract breaks on
an import that violates it: a contract that cannot fail checks nothing.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass
from pathlib import Path

import grimp
import pytest
from importlinter.api import read_configuration
from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract
from importlinter.domain.contract import Contract

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("backend", "experts", "router", "retrieval")
LLM_ADAPTER = "experts.llm"  # the one module that may import litellm (ARCHITECTURE.md)


@dataclass(frozen=True)
class Import:
    """``module`` imports ``target`` (dotted; "?" when the name is computed at run time),
    with an import statement or ``by_name`` (importlib.import_module, __import__)."""

    module: str
    target: str
    by_name: bool

    @property
    def top(self) -> str:
        return self.target.split(".", 1)[0]


def _loads_by_name(call: ast.Call) -> bool:
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
    return name in {"import_module", "__import__"}


def imports_in(source: str, module: str) -> list[Import]:
    """Every absolute import in ``source`` (the text of ``module``), wherever it stands:
    at the top, in a function, under TYPE_CHECKING."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, False) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(Import(module, node.module, False))
        elif isinstance(node, ast.Call) and _loads_by_name(node):
            arg = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
            named = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else "?"
            found.append(Import(module, named, True))
    return found


def project_imports() -> list[Import]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found += imports_in(path.read_text(encoding="utf-8"), module)
    return found


def test_the_scan_sees_both_kinds_of_import() -> None:
    source = (
        "import litellm\n"
        "from litellm.types.utils import ModelResponse\n"
        "def later():\n"
        "    import importlib\n"
        "    importlib.import_module('litellm')\n"
        "    __import__('litellm.utils')\n"
        "    importlib.import_module(name=computed)\n"
        "from . import sibling\n"
    )
    assert imports_in(source, "x") == [
        Import("x", "litellm", False),
        Import("x", "litellm.types.utils", False),
        Import("x", "importlib", False),
        Import("x", "litellm", True),
        Import("x", "litellm.utils", True),
        Import("x", "?", True),
    ]


def test_only_the_llm_adapter_imports_litellm_by_statement_or_by_name() -> None:
    imports = project_imports()
    litellm = [i for i in imports if i.top == "litellm"]
    # The adapter's own import is seen, so the scan would see another module's.
    assert any(i.module == LLM_ADAPTER for i in litellm), "experts.llm no longer loads litellm?"
    assert [i for i in litellm if i.module != LLM_ADAPTER] == []


def test_nothing_else_is_imported_by_name() -> None:
    """The contracts see import statements only: a by-name import of torch in backend/,
    or of backend in router/, would pass them. The adapter's litellm is the exception."""
    by_name = [i for i in project_imports() if i.by_name and (i.module, i.top) != (LLM_ADAPTER, "litellm")]
    assert by_name == []


# -- each contract can fail ---------------------------------------------------------------

CONTRACT_TYPES: dict[str, type[Contract]] = {
    "forbidden": ForbiddenContract,
    "layers": LayersContract,
    "acyclic_siblings": AcyclicSiblingsContract,
}
CONFIG = read_configuration(str(ROOT / "pyproject.toml"))
CONTRACTS = {c["name"]: c for c in CONFIG["contracts_options"]}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    session = CONFIG["session_options"]
    return grimp.build_graph(*session["root_packages"], include_external_packages=True, cache_dir=None)


def kept(graph: grimp.ImportGraph, name: str, *extra: tuple[str, str]) -> bool:
    """Whether contract ``name`` holds on the project's graph plus the ``extra`` imports
    (importer, imported)."""
    options = dict(CONTRACTS[name])
    contract = CONTRACT_TYPES[options.pop("type")](options.pop("name"), CONFIG["session_options"], options)
    trial = copy.deepcopy(graph)
    for importer, imported in extra:
        trial.add_import(importer=importer, imported=imported, line_number=1, line_contents="scratch")
    return contract.check(trial, verbose=False).kept


def test_every_contract_is_tested_here() -> None:
    assert set(CONTRACTS) == {name for name, _, _ in VIOLATIONS} | {name for name, _, _ in ALLOWED}


LAYERS = "Layers: backend on top, then experts, then router and retrieval side by side"
NO_ROUTER = "Experts use retrieval, never the router"
FRAMEWORKS = "Only backend touches web, SQL, queue and Slack frameworks"
LITELLM = "Only experts.llm imports litellm"
ML = "Only router and retrieval import torch, FAISS and sentence-transformers"
ACYCLIC = "No import cycles between the backend's packages or their modules"
UPWARD = "Features never reach up into the web layer, the CLI or the wiring"

VIOLATIONS = [
    (LAYERS, "router.policy", "backend.app"),
    (LAYERS, "router.policy", "retrieval.index"),
    (LAYERS, "retrieval.index", "experts.service"),
    (NO_ROUTER, "experts.service", "router.policy"),
    (FRAMEWORKS, "router.policy", "fastapi"),
    (FRAMEWORKS, "experts.service", "redis"),
    (FRAMEWORKS, "retrieval.index", "sqlalchemy"),
    (LITELLM, "backend.app", "litellm"),
    (LITELLM, "experts.budget", "litellm"),  # a module the contract once did not list
    (LITELLM, "retrieval.index", "litellm"),
    (ML, "backend.app", "torch"),
    (ML, "experts.service", "faiss"),
    (ACYCLIC, "backend.audit.types", "backend.chat.types"),  # chat imports audit: a package cycle
    (ACYCLIC, "backend.chat.types", "backend.chat.pipeline"),  # a module cycle inside chat
    (ACYCLIC, "backend.identity.types", "backend.oidc.service"),  # a tie an earlier shape had
    (UPWARD, "backend.chat.pipeline", "backend.runtime"),
    (UPWARD, "backend.quota.service", "backend.api.deps"),
    (UPWARD, "backend.audit.writer", "backend.cli.context"),
]
ALLOWED = [
    (LAYERS, "backend.app", "router.policy"),
    (LITELLM, "experts.llm", "litellm"),  # were it imported by statement one day
    (ML, "router.policy", "torch"),
    (ACYCLIC, "backend.api.chat", "backend.chat.pipeline"),  # the web layer calls down
    (UPWARD, "backend.cli.gate", "backend.gate.training"),
    (UPWARD, "backend.worker.slack", "backend.runtime"),  # a process entry, like the CLI
]


@pytest.mark.parametrize(("name", "importer", "imported"), VIOLATIONS)
def test_a_violating_import_breaks_its_contract(
    graph: grimp.ImportGraph, name: str, importer: str, imported: str
) -> None:
    assert kept(graph, name)
    assert not kept(graph, name, (importer, imported))


@pytest.mark.parametrize(("name", "importer", "imported"), ALLOWED)
def test_an_allowed_import_keeps_its_contract(
    graph: grimp.ImportGraph, name: str, importer: str, imported: str
) -> None:
    assert kept(graph, name, (importer, imported))

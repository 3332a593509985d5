"""`expertgate router ...`: train, eval, list, promote, rollback, shadow."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

from backend.cli.context import Access, CommandContext, open_command
from backend.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from backend.gate.versions import GateVersions


def cmd_train(settings: Settings, args: argparse.Namespace) -> int:
    from backend.gate.training import train_config, train_from_all
    from backend.gate.wiring import bundled_encoder, router_store
    from experts.registry import ExpertRegistry

    registry = ExpertRegistry.from_yaml(settings.experts_file)
    finetune = settings.router_finetune if args.finetune is None else args.finetune

    async def run() -> int:
        async with open_command(settings, Access.WRITE) as cmd:
            outcome = await train_from_all(
                cmd.db,
                cmd.trail,
                cmd.actor,
                registry,
                bundled_encoder(settings, serving=False),
                router_store(settings),
                extra_files=[Path(p) for p in args.data or ()],
                use_seed=not args.no_seed,
                promote=args.promote,
                config=train_config(finetune, args.arch, args.seed),
                version=args.version,
            )
        m = outcome.manifest.metrics
        print(
            f"trained {outcome.manifest.version} on {outcome.n_seed} seed + {outcome.n_stored} stored "
            f"+ {outcome.n_files} file examples: validation macro-F1 {m['macro_f1']}, ECE {m['ece']}"
            + (" (promoted)" if outcome.promoted else "")
        )
        print(outcome.manifest.version)
        return 0

    return asyncio.run(run())


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    from backend.gate.wiring import bundled_encoder, expert_texts, make_policy, router_store
    from experts.registry import ExpertRegistry
    from router.dataset import SEED_DIR, load_jsonl
    from router.evaluate import evaluate
    from router.loading import scorer_for
    from router.service import Router

    registry = ExpertRegistry.from_yaml(settings.experts_file)
    store = router_store(settings)
    version = args.version or store.active()
    if version is None:
        print("expertgate: no gate version to evaluate")
        return 1
    gate = store.load(version)
    encoder = bundled_encoder(settings, serving=False)
    router = Router(
        encoder,
        scorer_for(gate, encoder, expert_texts(registry)),
        make_policy(registry, gate.manifest.policy),
    )
    examples = load_jsonl(Path(args.data) if args.data else SEED_DIR / "test.jsonl")
    result = evaluate(router, examples)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    rep = result.report
    print(f"gate {result.router_version} on {rep.n} examples")
    print(f"accuracy {rep.accuracy:.4f}  macro-F1 {rep.macro_f1:.4f}  ECE {result.ece:.4f}")
    print(
        f"general recall {rep.general_recall:.4f}  in-domain abstained {rep.in_domain_abstain_rate:.4f}  "
        f"abstain rate {result.abstain_rate:.4f}"
    )
    print(
        f"latency p50 {result.latency_p50_ms:.2f} ms  p99 {result.latency_p99_ms:.2f} ms  "
        f"batch {result.batch_rps:.0f} req/s"
    )
    print(f"{'':>10}" + "".join(f"{label:>10}" for label in rep.labels) + "   precision recall")
    for label, row in zip(rep.labels, rep.confusion, strict=True):
        cells = "".join(f"{n:>10}" for n in row)
        print(f"{label:>10}{cells}   {rep.precision[label]:>9.3f} {rep.recall[label]:>6.3f}")
    return 0


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    from backend.gate.wiring import router_store

    store = router_store(settings)
    active, shadow = store.active(), store.shadow()
    for m in store.manifests():
        mark = "*" if m.version == active else ("s" if m.version == shadow else " ")
        f1 = m.metrics.get("macro_f1", "-")
        print(f"{mark} {m.version:<40} {m.created_at:<26} val macro-F1 {f1}  experts {','.join(m.experts)}")
    return 0


def _versions(cmd: CommandContext, session: AsyncSession) -> GateVersions:
    from backend.gate.versions import GateVersions
    from backend.gate.wiring import router_store

    return GateVersions(session, router_store(cmd.settings), cmd.trail)


def cmd_promote(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> None:
        async with open_command(settings, Access.WRITE) as cmd, cmd.db.transaction() as session:
            await _versions(cmd, session).promote(cmd.actor, args.version)

    asyncio.run(run())
    print(f"promoted {args.version}; running servers switch within {settings.router_reload_s:g}s")
    return 0


def cmd_rollback(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> str:
        async with open_command(settings, Access.WRITE) as cmd, cmd.db.transaction() as session:
            return await _versions(cmd, session).rollback(cmd.actor)

    print(f"rolled back to {asyncio.run(run())}")
    return 0


def cmd_shadow(settings: Settings, args: argparse.Namespace) -> int:
    version = None if args.off else args.version

    async def run() -> None:
        async with open_command(settings, Access.WRITE) as cmd, cmd.db.transaction() as session:
            await _versions(cmd, session).set_shadow(cmd.actor, version)

    asyncio.run(run())
    print("shadow off" if args.off else f"{args.version} now runs in shadow next to the active gate")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    router = sub.add_parser("router", help="train, evaluate and manage gate versions")
    cmds = router.add_subparsers(dest="router_command", required=True)

    train = cmds.add_parser("train", help="train a new gate version from seed + feedback + files")
    train.add_argument("--data", action="append", help="extra JSONL file of {text, domain} (repeatable)")
    train.add_argument("--no-seed", action="store_true", help="leave out the shipped seed examples")
    train.add_argument("--arch", choices=["mlp", "linear", "knn"], default="knn")
    train.add_argument("--seed", type=int, default=7)
    train.add_argument(
        "--finetune",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="tune the encoder's layers for routing first (default: the router_finetune setting, on)",
    )
    train.add_argument("--version", help="name of the new version (default: gate-<time>-<data hash>)")
    train.add_argument("--promote", action="store_true", help="make the new version active")
    train.set_defaults(func=cmd_train)

    ev = cmds.add_parser("eval", help="evaluate a gate version on labelled JSONL")
    ev.add_argument("--data", help="JSONL of {text, domain}; default: the held-out test split")
    ev.add_argument("--version", help="default: the active version")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_eval)

    cmds.add_parser("list", help="list gate versions (* active, s shadow)").set_defaults(func=cmd_list)

    promote = cmds.add_parser("promote", help="make VERSION the active gate")
    promote.add_argument("version")
    promote.set_defaults(func=cmd_promote)

    cmds.add_parser("rollback", help="re-activate the previously promoted version").set_defaults(func=cmd_rollback)

    shadow = cmds.add_parser("shadow", help="run VERSION in shadow beside the active gate")
    group = shadow.add_mutually_exclusive_group(required=True)
    group.add_argument("version", nargs="?")
    group.add_argument("--off", action="store_true")
    shadow.set_defaults(func=cmd_shadow)

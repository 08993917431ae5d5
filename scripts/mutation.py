"""Mutation check of the core modules: does some test fail when the code is subtly wrong?

One AST change at a time (a comparison flipped, ``and``/``or`` swapped, a ``not`` dropped, a boolean
or keyword ``True``/``False`` flipped, a number moved by one, a ``return X`` made ``return None``, a
call statement deleted); after each, only the tests that guard that module run (``-x``, with a time
limit). A mutant the tests do not notice "survives": a guarantee nothing checks. docs/testing.md has
the scores and explains the survivors that are equivalent to the original code.

    .venv/bin/python scripts/mutation.py                      # every module in GUARDS
    .venv/bin/python scripts/mutation.py delivery --function Delivery._claim --function Delivery.give_up
    .venv/bin/python scripts/mutation.py storage --lines 330-375 --list

The mutant is written into a copy of the tree in a temporary directory, never into this checkout,
so an interrupted run leaves nothing behind. One Azurite is started for the whole run and shared by
every test run (``TEST_STORAGE_CONNECTION``); each test still uses its own tables and queues.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The tests that guard each module, the quickest to fail first (pytest stops at the first failure).
GUARDS: dict[str, list[str]] = {
    "gateway/delivery.py": [
        "tests/integration/test_guarantees.py", "tests/integration/test_delivery.py",
        "tests/integration/test_delivery_reconcile.py", "tests/integration/test_retry_delay.py",
        "tests/integration/test_receipts.py", "tests/integration/test_receipt_checks.py",
        "tests/integration/test_optouts.py", "tests/integration/test_inbound.py",
    ],
    "gateway/optouts.py": ["tests/integration/test_optouts.py", "tests/integration/test_inbound.py"],
    "gateway/schedule.py": ["tests/unit/test_schedule.py", "tests/integration/test_schedule.py"],
    "gateway/cancel.py": ["tests/unit/test_schedule.py", "tests/integration/test_schedule.py"],
    "gateway/keywords.py": ["tests/unit/test_keywords.py", "tests/integration/test_inbound.py"],
    "gateway/reply_index.py": ["tests/unit/test_reply_match.py", "tests/integration/test_inbound.py"],
    "gateway/inbound.py": ["tests/unit/test_inbound_parsing.py", "tests/integration/test_inbound.py"],
    "gateway/auth.py": [
        "tests/integration/test_auth.py", "tests/integration/test_http_guarantees.py",
        "tests/integration/test_auth_cache.py",
    ],
    "gateway/cache.py": ["tests/unit/test_cache.py", "tests/integration/test_auth.py"],
    "gateway/validation.py": [
        "tests/unit/test_validation.py", "tests/integration/test_http_guarantees.py",
        "tests/integration/test_http_input.py", "tests/integration/test_http_storage_limits.py",
    ],
    "gateway/pacing.py": ["tests/integration/test_pacing.py", "tests/integration/test_fan_out.py"],
    "gateway/receipts.py": [
        "tests/unit/test_receipts.py", "tests/integration/test_receipts.py",
        "tests/integration/test_receipt_checks.py",
    ],
    "gateway/resend.py": [
        "tests/unit/test_resend.py", "tests/integration/test_resend.py", "tests/integration/test_resend_http.py",
    ],
    "gateway/receipt_checks.py": ["tests/unit/test_receipts.py", "tests/integration/test_receipt_checks.py"],
    "gateway/storage.py": [
        "tests/integration/test_storage.py", "tests/integration/test_guarantees.py",
        "tests/integration/test_delivery.py", "tests/integration/test_idempotency.py",
        "tests/integration/test_http_storage_limits.py", "tests/integration/test_receipts.py",
    ],
    "gateway/webhook_urls.py": ["tests/unit/test_webhook_urls.py", "tests/integration/test_webhook_endpoints.py"],
    "gateway/webhook_endpoints.py": [
        "tests/unit/test_webhook_endpoints.py", "tests/integration/test_webhook_endpoints.py",
    ],
    "gateway/webhook_signing.py": ["tests/unit/test_webhook_signing.py", "tests/integration/test_webhooks.py"],
    "gateway/webhook_dispatch.py": ["tests/unit/test_webhook_signing.py", "tests/integration/test_webhooks.py"],
    "gateway/webhook_outbox.py": ["tests/unit/test_webhook_outbox.py", "tests/integration/test_webhooks.py"],
    "gateway/segments.py": [
        "tests/unit/test_segments.py", "tests/unit/test_validation.py", "tests/integration/test_http_segments.py",
    ],
    "gateway/smart_encoding.py": [
        "tests/unit/test_smart_encoding.py", "tests/unit/test_validation.py", "tests/integration/test_http_segments.py",
    ],
    "gateway/open_work.py": [
        "tests/integration/test_open_work.py", "tests/integration/test_sweep_cost.py",
        "tests/integration/test_webhook_emit.py",
    ],
    "gateway/telemetry.py": ["tests/unit/test_telemetry.py", "tests/integration/test_tracing.py"],
    "gateway/listing.py": ["tests/integration/test_listing.py", "tests/integration/test_accept_floor.py"],
    "gateway/message_list.py": ["tests/unit/test_message_list.py", "tests/integration/test_http_message_log.py"],
    "gateway/retention_links.py": ["tests/unit/test_retention_links.py", "tests/integration/test_retention.py"],
    "gateway/console_page.py": ["tests/unit/test_console_files.py", "tests/integration/test_console_http.py"],
    "gateway/comm_events.py": ["tests/unit/test_retention_links.py", "tests/integration/test_console_http.py"],
}
PYTEST_OPTIONS = ["-x", "-q", "-p", "no:cacheprovider"]
LOGGERS = {"log", "logger", "logging"}  # calls on these are not deleted: no behaviour the tests guard depends on them
NEGATED: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
}
BOUNDARY: dict[type[ast.cmpop], type[ast.cmpop]] = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
SYMBOLS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
}


@dataclass(frozen=True)
class Mutant:
    module: str  # path from the repository root
    number: int  # its position among the module's mutants: how the mutant is applied again
    line: int
    function: str  # qualified name of the enclosing function or class, "" at module level
    change: str

    def __str__(self) -> str:
        where = f" {self.function}" if self.function else ""
        return f"{self.module}:{self.line}{where}: {self.change}"


class _Mutator(ast.NodeTransformer):
    """Numbers every possible change in a fixed walk order; applies the one numbered ``target``.

    Collecting (``target`` None) and applying walk the same tree the same way, so a number names
    the same change both times.
    """

    def __init__(self, module: str, source: str, target: int | None = None) -> None:
        self.module = module
        self.source = source
        self.target = target
        self.found: list[Mutant] = []
        self.count = 0
        self.scope: list[str] = []

    def _offer(self, node: ast.AST, variants: Sequence[tuple[str, Callable[[], ast.AST]]]) -> ast.AST:
        for change, build in variants:
            number = self.count
            self.count += 1
            if self.target is None:
                self.found.append(Mutant(self.module, number, node.lineno, ".".join(self.scope), change))
            elif number == self.target:
                return ast.copy_location(build(), node)
        return node

    def _text(self, node: ast.AST, limit: int = 60) -> str:
        text = " ".join((ast.get_source_segment(self.source, node) or ast.unparse(node)).split())
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def _scoped(self, node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef, fields: Sequence[str]) -> ast.AST:
        self.scope.append(node.name)
        for name in fields:  # annotations and the return annotation are not code: left alone
            value = getattr(node, name)
            visited = [self.visit(child) for child in value] if isinstance(value, list) else self.visit(value)
            setattr(node, name, visited)
        self.scope.pop()
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        return self._scoped(node, ["decorator_list", "bases", "keywords", "body"])

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return self._scoped(node, ["decorator_list", "args", "body"])

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_arg(self, node: ast.arg) -> ast.AST:
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        variants = []
        for position, op in enumerate(node.ops):
            for replacement in (NEGATED.get(type(op)), BOUNDARY.get(type(op))):
                if replacement is not None:
                    variants.append((f"`{self._text(node)}`: `{SYMBOLS[type(op)]}` -> `{SYMBOLS[replacement]}`",
                                     _compare_with(node, position, replacement)))
        return self._offer(node, variants)

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        old, new = ("and", ast.Or) if isinstance(node.op, ast.And) else ("or", ast.And)
        return self._offer(node, [(f"`{self._text(node)}`: `{old}` -> `{new.__name__.lower()}`",
                                   lambda: ast.BoolOp(op=new(), values=node.values))])

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if not isinstance(node.op, ast.Not):
            return node
        return self._offer(node, [(f"`{self._text(node)}`: `not` dropped", lambda: node.operand)])

    def visit_keyword(self, node: ast.keyword) -> ast.AST:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, bool):
            flipped = not node.value.value
            change = f"`{node.arg}={node.value.value}` -> `{node.arg}={flipped}`"
            node.value = self._offer(node.value, [(change, lambda: ast.Constant(flipped))])
            return node
        return self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        if isinstance(value, bool):
            return self._offer(node, [(f"`{value}` -> `{not value}`", lambda: ast.Constant(not value))])
        if isinstance(value, int | float):
            return self._offer(node, [(f"`{value!r}` -> `{value + step!r}`",
                                       lambda step=step: ast.Constant(value + step)) for step in (1, -1)])
        return node

    def visit_Return(self, node: ast.Return) -> ast.AST:
        self.generic_visit(node)
        value = node.value
        if value is None or (isinstance(value, ast.Constant) and value.value in (None, False)):
            return node  # already None, or False: the same in every test of truth
        return self._offer(node, [(f"`return {self._text(value)}` -> `return None`", lambda: ast.Return(None))])

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        self.generic_visit(node)
        call = node.value
        if not isinstance(call, ast.Call) or _is_logging(call):
            return node
        return self._offer(node, [(f"`{self._text(call)}` deleted", ast.Pass)])


def _compare_with(node: ast.Compare, position: int, op: type[ast.cmpop]) -> Callable[[], ast.AST]:
    def build() -> ast.AST:
        mutated = copy.copy(node)
        mutated.ops = [op() if index == position else old for index, old in enumerate(node.ops)]
        return mutated

    return build


def _is_logging(call: ast.Call) -> bool:
    func = call.func
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in LOGGERS


def mutants_of(module: str, source: str) -> list[Mutant]:
    mutator = _Mutator(module, source)
    mutator.visit(ast.parse(source))
    return mutator.found


def mutated_source(mutant: Mutant, source: str) -> str:
    tree = _Mutator(mutant.module, source, target=mutant.number).visit(ast.parse(source))
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


class Sandbox:
    """A copy of the tree (tracked and untracked files, not ignored ones) where mutants are written."""

    def __init__(self, sources: dict[str, str]) -> None:
        self.sources = sources  # the modules as they were when the run began: edits made meanwhile do not leak in
        self.running: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="mutation-")
        self.root = Path(self._dir.name)
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, check=True).stdout.decode().split("\0")
        for name in filter(None, listed):
            source = ROOT / name
            if source.is_file() and not source.is_symlink():
                target = self.root / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        for name in (".venv", "node_modules"):
            if (ROOT / name).exists():
                (self.root / name).symlink_to((ROOT / name).resolve())

    def run(self, module: str, source: str | None, tests: Sequence[str], env: dict[str, str],
            timeout: float) -> tuple[str, float]:
        """Run ``tests`` with ``module`` replaced by ``source`` (None: the original).

        Returns 'passed', 'failed' or 'timeout', and the seconds it took.
        """
        path = self.root / module
        path.write_text(source if source is not None else self.sources[module])
        started = time.monotonic()
        self.running = subprocess.Popen([sys.executable, "-m", "pytest", *PYTEST_OPTIONS, *tests], cwd=self.root,
                                        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        try:
            code = self.running.wait(timeout=timeout)
            outcome = "passed" if code == 0 else "failed"
        except subprocess.TimeoutExpired:
            self.stop()
            outcome = "timeout"
        finally:
            self.running = None
            path.write_text(self.sources[module])
        return outcome, time.monotonic() - started

    def stop(self) -> None:
        """Kill the running tests and whatever they started (their own process group)."""
        process = self.running
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def close(self) -> None:
        self._dir.cleanup()


def _line_ranges(text: str) -> list[tuple[int, int]]:
    ranges = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        ranges.append((int(first), int(last or first)))
    return ranges


def _module_path(name: str) -> str:
    for module in GUARDS:
        if name in (module, Path(module).stem, Path(module).name):
            return module
    raise SystemExit(f"unknown module {name!r}: choose from {', '.join(Path(m).stem for m in GUARDS)}")


def _selected(args: argparse.Namespace, sources: dict[str, str]) -> Iterator[Mutant]:
    for module, source in sources.items():
        chosen = [
            mutant for mutant in mutants_of(module, source)
            if (not args.function or any(mutant.function == name or mutant.function.startswith(name + ".")
                                         for name in args.function))
            and (not args.lines or any(first <= mutant.line <= last for first, last in _line_ranges(args.lines)))
        ]
        yield from chosen[: args.limit] if args.limit else chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"{', '.join(Path(m).stem for m in GUARDS)} (default: all)")
    parser.add_argument("--module", dest="more_modules", action="append", default=[], help="same as a positional")
    parser.add_argument("--function", action="append", default=[],
                        help="only mutants inside this function or class (qualified name, e.g. Delivery._claim)")
    parser.add_argument("--lines", help="only mutants on these lines, e.g. 120-180,200")
    parser.add_argument("--limit", type=int, help="at most this many mutants per module")
    parser.add_argument("--tests", action="append", default=[], help="run these test files instead of the guards")
    parser.add_argument("--timeout", type=float, help="seconds per mutant (default: 4x the clean run, at least 60)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested at once, each in its own copy")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    args = parser.parse_args(argv)
    args.modules = [*args.modules, *args.more_modules]

    modules = [_module_path(name) for name in args.modules] or list(GUARDS)
    sources = {module: (ROOT / module).read_text() for module in dict.fromkeys(modules)}
    mutants = list(_selected(args, sources))
    if args.list:
        for mutant in mutants:
            print(mutant)
        print(f"{len(mutants)} mutant(s)")
        return 0
    if not mutants:
        print("no mutant matches")
        return 1

    from devhost.azurite import Azurite, external_connection_string

    azurite = None if external_connection_string() else Azurite.start()
    connection = external_connection_string() or azurite.connection_string  # type: ignore[union-attr]
    env = {**os.environ, "TEST_STORAGE_CONNECTION": connection, "PYTHONDONTWRITEBYTECODE": "1"}
    sandboxes = [Sandbox(sources) for _ in range(max(1, args.jobs))]
    try:
        return _run(mutants, args, sandboxes, env)
    except KeyboardInterrupt:
        print("\ninterrupted: nothing was left behind")
        return 130
    finally:
        for sandbox in sandboxes:
            sandbox.stop()
            sandbox.close()
        if azurite is not None:
            azurite.stop()


def _run(mutants: list[Mutant], args: argparse.Namespace, sandboxes: list[Sandbox], env: dict[str, str]) -> int:
    sources = sandboxes[0].sources
    modules = list(dict.fromkeys(mutant.module for mutant in mutants))
    tests = {module: [name for name in args.tests or GUARDS[module] if (ROOT / name).exists()] for module in modules}
    timeouts: dict[str, float] = {}
    for module in modules:
        outcome, seconds = sandboxes[0].run(module, None, tests[module], env, timeout=600)
        if outcome != "passed":
            print(f"{module}: the guarding tests fail without any mutant ({outcome}); fix them first")
            return 2
        timeouts[module] = args.timeout or max(60.0, 4 * seconds)
        print(f"{module}: clean run {seconds:.1f} s over {' '.join(tests[module])}; "
              f"{sum(m.module == module for m in mutants)} mutant(s), {timeouts[module]:.0f} s each at most")

    free = list(sandboxes)
    results: dict[Mutant, str] = {}

    def test(mutant: Mutant) -> tuple[Mutant, str, float]:
        sandbox = free.pop()
        try:
            outcome, seconds = sandbox.run(mutant.module, mutated_source(mutant, sources[mutant.module]),
                                           tests[mutant.module], env, timeouts[mutant.module])
        finally:
            free.append(sandbox)
        return mutant, outcome, seconds

    pool = ThreadPoolExecutor(max_workers=len(sandboxes))
    try:
        for done, (mutant, outcome, seconds) in enumerate(pool.map(test, mutants), start=1):
            results[mutant] = "survived" if outcome == "passed" else "killed" if outcome == "failed" else "timeout"
            print(f"[{done}/{len(mutants)}] {results[mutant]:8} {seconds:5.1f} s  {mutant}", flush=True)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)

    print("\nScore (a time-out counts as killed: the tests noticed something; on a busy machine, rerun those)")
    for module in modules:
        mine = [outcome for mutant, outcome in results.items() if mutant.module == module]
        killed, timeouts = sum(outcome != "survived" for outcome in mine), mine.count("timeout")
        print(f"  {module:24} {killed:4}/{len(mine):<4} killed {100 * killed / len(mine):5.1f} %"
              + (f"  ({timeouts} by time-out)" if timeouts else ""))
    for label, wanted in (("Timed out", "timeout"), ("Survivors", "survived")):
        listed = [mutant for mutant, outcome in results.items() if outcome == wanted]
        if listed or wanted == "survived":
            print(f"\n{label}: {len(listed)}")
        for mutant in listed:
            print(f"  {mutant}")
    return 1 if "survived" in results.values() else 0


if __name__ == "__main__":
    sys.exit(main())

"""Cold start: what ``import function_app`` costs beyond importing the dependencies it uses.

A fresh interpreter per run (``python -X importtime``), alternating between

* **app**: ``import function_app`` (what the Functions worker does when it indexes the app), and
* **deps** (the baseline): importing, in the same order, every module that ``import function_app``
  leaves in ``sys.modules`` except our own (``function_app``, ``gateway.*``),

so the difference is our code: executing our modules, building our pydantic models and
dataclasses, compiling our sources. Both run from a copy of the app (function_app.py,
gateway/, host.json) with ``SMS_PROVIDER=outbox``, in two variants: **source** (no
``__pycache__``, as in Azure: .funcignore keeps bytecode out of the package and the package is
mounted read-only, so the worker compiles our modules at every cold start) and **bytecode**
(our modules precompiled). Dependencies load from the venv's bytecode in both.

Also checks that modules only some providers or identity-based storage need are not imported,
and says which large packages are, and who imports them.

    python -m bench.coldstart [--runs 7]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import ROOT, print_header, table, write_results

GOAL_MS = 50.0
OURS = re.compile(r"^(function_app|gateway(\..*)?)$")
MUST_NOT_IMPORT = [
    "azure.communication.sms",  # the ACS provider's SDK
    "azure.identity",  # identity-based storage connections and ACS with a managed identity
    "msal",  # azure.identity's
    "gateway.providers.twilio",
    "gateway.providers.acs",
    "devhost",  # the local host is not part of the app
    "gateway.metadata",  # built when /metadata or /openapi.json is first requested
    "opentelemetry",  # tracing and metrics: only with a connection string or an OTEL_*_EXPORTER (gateway.telemetry)
    "azure.monitor.opentelemetry",  # the Azure Monitor distro and its exporter: only with a connection string
]
LARGE = ["azure.functions", "werkzeug", "http.server", "azure.core", "azure.data.tables", "azure.storage.queue",
         "cryptography", "requests", "urllib3", "pydantic", "pydantic_core", "phonenumbers", "isodate"]

TIMED = """
import time, sys
start = time.perf_counter()
{body}
print(repr((time.perf_counter() - start) * 1000), flush=True)
"""
DEPS_BODY = """
import importlib, json
for name in json.load(open({path!r})):
    if name not in sys.modules:
        try:
            importlib.import_module(name)
        except Exception:
            pass
"""
PROFILE = """
import cProfile, importlib, json, pstats, sys, time
for name in json.load(open({path!r})):
    if name not in sys.modules:
        try:
            importlib.import_module(name)
        except Exception:
            pass
profile = cProfile.Profile()
start = time.perf_counter()
profile.enable()
import function_app
profile.disable()
total = time.perf_counter() - start
stats = pstats.Stats(profile).stats
picks = {{
    "compiling our sources": lambda f, l, n: n == "source_to_code",
    "building pydantic models": lambda f, l, n: f.endswith("_model_construction.py") and n == "__new__",
    "  of which: pydantic plugin discovery (entry points)": lambda f, l, n: f.endswith("plugin/_loader.py")
        and n == "get_plugins",
    "creating dataclasses": lambda f, l, n: f.endswith("dataclasses.py") and n == "_process_class",
    "compiling regular expressions": lambda f, l, n: f.endswith("re/__init__.py") and n == "_compile",
    "enum classes": lambda f, l, n: f.endswith("enum.py") and n == "__new__",
}}
out = {{name: sum(v[3] for k, v in stats.items() if test(*k)) for name, test in picks.items()}}
print(json.dumps({{"profiled_total": total, "parts": out}}))
"""


def clean_env() -> dict[str, str]:
    unset = ("SMS_", "TWILIO_", "ACS_", "AzureWebJobs", "PYTHON", "APPLICATIONINSIGHTS_", "OTEL_")  # telemetry off
    env = {name: value for name, value in os.environ.items() if not name.startswith(unset)}
    env.update({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "SMS_PROVIDER": "outbox",
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"})
    return env


def make_copy(target: Path, compiled: bool) -> None:
    target.mkdir(parents=True)
    shutil.copy2(ROOT / "function_app.py", target)
    shutil.copy2(ROOT / "host.json", target)
    shutil.copytree(ROOT / "gateway", target / "gateway", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if compiled:
        compileall.compile_dir(target, quiet=1)


def run(directory: Path, code: str, env: dict[str, str], *, importtime: bool) -> tuple[float, str]:
    flags = ["-X", "importtime"] if importtime else []
    done = subprocess.run([sys.executable, *flags, "-c", code], cwd=directory, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"subprocess failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1]), done.stderr


def parse_importtime(text: str) -> list[tuple[str, int, float, float]]:
    """(module, depth, self ms, cumulative ms) per line, in the order Python printed them."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.split(":", 1)[1].split("|")
        depth = (len(name) - len(name.lstrip(" "))) // 2
        lines.append((name.strip(), depth, int(self_us) / 1000, int(cumulative_us) / 1000))
    return lines


def importer_chain(lines: list[tuple[str, int, float, float]], module: str) -> list[str]:
    """Who imported ``module`` first: its parents up to the top-level import (importtime prints children first)."""
    for index, (name, depth, _, _) in enumerate(lines):
        if name != module:
            continue
        chain, level = [], depth
        for later, later_depth, _, _ in lines[index + 1:]:
            if later_depth < level:
                chain.append(later)
                level = later_depth
                if level == 0:
                    break
        return chain
    return []


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per measurement (median; ≥ 5)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.runs = max(5, args.runs)
    print_header("coldstart", args)
    results: dict[str, Any] = {"variants": {}}
    with tempfile.TemporaryDirectory(prefix="coldstart-") as temp:
        for variant in ("source", "bytecode"):
            directory = Path(temp) / variant
            make_copy(directory, compiled=variant == "bytecode")
            env = clean_env()
            listing = subprocess.run(
                [sys.executable, "-c", "import sys, json; import function_app; print(json.dumps(list(sys.modules)))"],
                cwd=directory, env=env, capture_output=True, text=True, check=True, timeout=120)
            modules = json.loads(listing.stdout)
            deps = [name for name in modules if not OURS.match(name)]
            deps_path = Path(temp) / f"deps-{variant}.json"
            deps_path.write_text(json.dumps(deps))
            app_code = TIMED.format(body="import function_app")
            deps_code = TIMED.format(body=DEPS_BODY.format(path=str(deps_path)))
            app_ms, deps_ms, app_plain, deps_plain, own_self = [], [], [], [], {}
            app_lines: list[tuple[str, int, float, float]] = []
            for index in range(args.runs):
                order = [("app", app_code), ("deps", deps_code)]
                for kind, code in order if index % 2 == 0 else reversed(order):
                    wall, stderr = run(directory, code, env, importtime=True)
                    plain, _ = run(directory, code, env, importtime=False)
                    if kind == "app":
                        app_ms.append(wall)
                        app_plain.append(plain)
                        app_lines = parse_importtime(stderr)
                        for name, _, self_ms, _ in app_lines:
                            if OURS.match(name):
                                own_self.setdefault(name, []).append(self_ms)
                    else:
                        deps_ms.append(wall)
                        deps_plain.append(plain)
            profile = subprocess.run([sys.executable, "-c", PROFILE.format(path=str(deps_path))], cwd=directory,
                                     env=env, capture_output=True, text=True, check=True, timeout=120)
            parts = json.loads(profile.stdout.strip().splitlines()[-1])
            app_median, deps_median = statistics.median(app_ms), statistics.median(deps_ms)
            plain_ours = statistics.median(app_plain) - statistics.median(deps_plain)
            results["variants"][variant] = {
                "app_ms": app_ms, "deps_ms": deps_ms, "app_median_ms": app_median, "deps_median_ms": deps_median,
                "ours_ms": app_median - deps_median, "ratio": app_median / deps_median,
                "plain_app_ms": app_plain, "plain_deps_ms": deps_plain, "plain_ours_ms": plain_ours,
                "our_modules_self_ms": {name: statistics.median(values) for name, values in own_self.items()},
                "profile": parts, "met": app_median - deps_median < GOAL_MS and plain_ours < GOAL_MS,
            }
            if variant == "source":
                results["modules_imported"] = len(modules)
                results["must_not_import"] = {name: name in modules for name in MUST_NOT_IMPORT}
                results["large_imported"] = {
                    name: {"cumulative_ms": next((c for n, _, _, c in app_lines if n == name), None),
                           "first_imported_by": importer_chain(app_lines, name)[:4]}
                    for name in LARGE if name in modules}

    rows = []
    for variant, data in results["variants"].items():
        rows.append([variant, data["app_median_ms"], data["deps_median_ms"], data["ours_ms"], data["ratio"],
                     data["plain_ours_ms"], ("PASS" if data["met"] else "FAIL") + f" (< {GOAL_MS:.0f} ms)"])
    print(table(["our modules", "import function_app ms", "deps alone ms", "ours ms", "app/deps",
                 "ours ms without -X importtime", "goal"], rows))
    print()
    source = results["variants"]["source"]
    slowest = sorted(source["our_modules_self_ms"].items(), key=lambda item: -item[1])[:8]
    print(table(["our module (source)", "self ms (importtime)"], slowest))
    print()
    profiled = source["profile"]["profiled_total"] * 1000
    print(table([f"where our time goes (source, cProfile, {profiled:.0f} ms profiled)", "ms", "share"],
                [[name, value * 1000, f"{value * 1000 / profiled:.0%}"]
                 for name, value in source["profile"]["parts"].items()]))
    print()
    print(table(["must not be imported (SMS_PROVIDER=outbox)", "imported?", ""],
                [[name, "yes" if imported else "no", "FAIL" if imported else "PASS"]
                 for name, imported in results["must_not_import"].items()]))
    print()
    print(table(["large module imported", "cumulative ms (first import)", "first imported by"],
                [[name, "-" if info["cumulative_ms"] is None else info["cumulative_ms"],
                  " ← ".join(info["first_imported_by"])]
                 for name, info in results["large_imported"].items()]))
    path = write_results("coldstart", args, results)
    print(f"results: {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

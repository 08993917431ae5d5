"""Reading the Bicep templates offline: pycep parses them in the IaC virtualenv, and ``Template`` answers questions
about every file of ``infra/bicep`` at once (main.bicep wires the modules in ``app/``).

pycep runs in its own virtualenv (``$IAC_VENV``, default ``.venv-iac/``, made from ``requirements-iac.txt``)
because checkov, which it comes with, pins many dependencies. Parsing is slow (seconds per file), so results are
cached by file text and several files are parsed in one subprocess.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BICEP_DIR = ROOT / "infra" / "bicep"
MAIN_BICEP = BICEP_DIR / "main.bicep"

SETUP_HINT = (
    "run scripts/test.sh, which creates it; by hand: "
    "python3.11 -m venv .venv-iac && .venv-iac/bin/pip install -r requirements-iac.txt"
)


def iac_venv() -> Path:
    """Where the IaC tools are installed: $IAC_VENV, else .venv-iac/ in the repository."""
    return Path(os.environ.get("IAC_VENV") or ROOT / ".venv-iac")


def iac_tool(name: str) -> Path:
    """A program in the IaC virtualenv; fails the test (not skips it) when the virtualenv is missing."""
    venv = iac_venv()
    for candidate in (venv / "bin" / name, venv / "Scripts" / f"{name}.exe"):
        if candidate.exists():
            return candidate
    pytest.fail(f"{name} is not installed in the IaC virtualenv {venv}: {SETUP_HINT}")


_PARSE_SCRIPT = """
import json, sys
from pathlib import Path
from pycep import BicepParser
parser = BicepParser(cache=False)
result = {}
for name in sys.argv[1:]:
    try:
        result[name] = {"ok": parser.parse(file_path=Path(name))}
    except Exception as error:  # report every file, not just the first failure
        result[name] = {"error": f"{type(error).__name__}: {error}"}
print(json.dumps(result, default=str))
"""


def parse_bicep(*paths: Path) -> dict[Path, dict[str, Any]]:
    """Parse Bicep files with pycep in the IaC virtualenv; raises AssertionError naming any file that fails.

    Results are kept by file text, so a copy of a file parsed before costs nothing.
    """
    texts = {path: path.read_text() for path in paths}
    missing = {text: path for path, text in texts.items() if text not in _PARSED}
    if missing:
        _PARSED.update(zip(missing, _run_pycep(list(missing.values())), strict=True))
    errors = {path: _PARSED[text]["error"] for path, text in texts.items() if "error" in _PARSED[text]}
    assert not errors, f"Bicep files pycep cannot parse: {errors}"
    return {path: _PARSED[text]["ok"] for path, text in texts.items()}


_PARSED: dict[str, dict[str, Any]] = {}


def _run_pycep(paths: list[Path]) -> list[dict[str, Any]]:
    """pycep's answer for each file, in order: {"ok": parsed} or {"error": message}; one subprocess for all."""
    python = iac_tool("python")
    completed = subprocess.run(
        [str(python), "-c", _PARSE_SCRIPT, *(str(path) for path in paths)],
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert completed.returncode == 0, f"pycep failed to run:\n{completed.stderr}"
    results = json.loads(completed.stdout)
    return [results[str(path)] for path in paths]


def bicep_files(directory: Path = BICEP_DIR) -> list[Path]:
    return sorted(directory.rglob("*.bicep"))


# ---------------------------------------------------------------------------------------------------------------
# Reading one parsed file
# ---------------------------------------------------------------------------------------------------------------


def unquote(key: Any) -> str:
    """An object key or string as written, without Bicep's single quotes."""
    return str(key).strip("'")


def parameter_defaults(parsed: dict[str, Any]) -> dict[str, Any]:
    return {name: spec.get("default") for name, spec in parsed.get("parameters", {}).items()}


def decorators(spec: dict[str, Any]) -> dict[str, Any]:
    """A parameter's decorators by type: allowed, min_value, max_value, description, secure..."""
    return {item["type"]: item.get("argument") for item in spec.get("decorators", [])}


def evaluate_string(expression: Any, parsed: dict[str, Any]) -> str:
    """Evaluate a pycep string that is a parameter name or interpolates parameters, using their defaults."""
    defaults = parameter_defaults(parsed)
    assert isinstance(expression, str), f"cannot evaluate {expression!r}"
    if expression in defaults:
        return str(defaults[expression])

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in defaults, f"{expression!r} uses {name!r}, which is not a parameter"
        return str(defaults[name])

    return re.sub(r"\$\{(\w+)\}", substitute, expression)


def resources_of_type(parsed: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in parsed.get("resources", {}).items() if res["type"] == resource_type}


def resource_body(resource: dict[str, Any]) -> dict[str, Any]:
    """The body of a resource or module (name, properties, params...), looking through `if (...)` and `for`."""
    config = resource["config"]
    while "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"]
    return config


def loop_source(resource: dict[str, Any]) -> str | None:
    loop = resource["config"].get("loop_type")
    return loop["detail"].get("array_name") if loop else None


# ---------------------------------------------------------------------------------------------------------------
# Every file of the template
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """Every .bicep file under a directory, parsed, by path relative to it ("main.bicep", "app/function.bicep")."""

    files: dict[str, dict[str, Any]]
    texts: dict[str, str]

    @classmethod
    def load(cls, directory: Path = BICEP_DIR) -> Template:
        paths = bicep_files(directory)
        parsed = parse_bicep(*paths)
        relative = {path: path.relative_to(directory).as_posix() for path in paths}
        return cls(files={relative[path]: parsed[path] for path in paths},
                   texts={relative[path]: path.read_text() for path in paths})

    @property
    def main(self) -> dict[str, Any]:
        return self.files["main.bicep"]

    def file(self, name: str) -> dict[str, Any]:
        assert name in self.files, f"no {name} in the template: {sorted(self.files)}"
        return self.files[name]

    def resources(self, resource_type: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(file, symbolic name, resource) of every declared (not `existing`) resource of a type, in any file."""
        for file, parsed in self.files.items():
            for name, resource in resources_of_type(parsed, resource_type).items():
                if not resource.get("existing"):
                    yield file, name, resource

    def only_resource(self, resource_type: str) -> tuple[str, dict[str, Any]]:
        """(file, resource) of the one resource of a type the template declares."""
        found = [(file, resource) for file, _, resource in self.resources(resource_type)]
        assert len(found) == 1, f"expected one {resource_type}, found {len(found)}"
        return found[0]

    def module(self, file: str, name: str) -> dict[str, Any]:
        """The body (name, params, dependsOn) of a module call."""
        modules = self.file(file).get("modules", {})
        assert name in modules, f"{file} has no module {name}: {sorted(modules)}"
        return resource_body(modules[name])

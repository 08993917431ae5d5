"""Offline checks of the infrastructure: the Bicep template, its parameters, azd and the az deploy script.

Bicep is parsed with pycep-parser and scanned with checkov, both run from their own virtualenv (``$IAC_VENV``,
default ``.venv-iac/``, made from ``requirements-iac.txt``) because checkov pins many dependencies. Cross-checks
tie the template to the code: queue and table names, default values, every setting the code reads, and the
Python version.
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BICEP_DIR = ROOT / "infra" / "bicep"
MAIN_BICEP = BICEP_DIR / "main.bicep"
PARAMETERS_JSON = BICEP_DIR / "main.parameters.json"
DEPLOY_SH = ROOT / "infra" / "deploy.sh"
LOCAL_SETTINGS_EXAMPLE = ROOT / "local.settings.json.example"

SETUP_HINT = (
    "run scripts/test.sh, which creates it; by hand: "
    "python3.11 -m venv .venv-iac && .venv-iac/bin/pip install -r requirements-iac.txt"
)

# Settings the code reads that the template must not set, with the reason.
NOT_APP_SETTINGS = {
    "AzureWebJobsStorage": "connection-string form for Azurite and local runs; Azure uses the identity-based "
    "AzureWebJobsStorage__* settings because the account refuses shared keys",
    "WEBSITE_INSTANCE_ID": "set by the platform on every instance",
    "ACS_CA_BUNDLE": "test-only: a CA file to trust a local Communication Services fake; Azure uses public CAs",
}
# Top-level modules that never run in Azure: the deployment package must not hold them.
DEV_ONLY_MODULES = {
    "devhost": "hosts function_app.py locally without Core Tools; starts Azurite for tests and benchmarks",
    "fakes": "local fakes of the SMS providers",
    "tests": "the test suite",
    "bench": "the benchmarks",
    "scripts": "bootstrap, run and test scripts",
}
# Settings the Functions host (not our code) reads, allowed in local.settings.json.example.
HOST_SETTINGS = {
    "AzureWebJobsStorage",
    "AzureWebJobsFeatureFlags",
    "AzureWebJobsSecretStorageType",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
HOST_SETTING_PATTERNS = (re.compile(r"^AzureWebJobsStorage__\w+$"), re.compile(r"^AzureWebJobs\.[\w-]+\.Disabled$"))
# Settings Flex Consumption rejects or that would bring shared-key storage back.
FORBIDDEN_APP_SETTINGS = {
    "AzureWebJobsStorage",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
}


# ---------------------------------------------------------------------------------------------------------------
# The IaC virtualenv and the tools in it
# ---------------------------------------------------------------------------------------------------------------


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
    """Parse Bicep files with pycep in the IaC virtualenv; raises AssertionError naming any file that fails."""
    texts = tuple((path, path.read_text()) for path in paths)
    parsed = _parse_cached(texts)
    errors = {path: result["error"] for path, result in parsed.items() if "error" in result}
    assert not errors, f"Bicep files pycep cannot parse: {errors}"
    return {path: result["ok"] for path, result in parsed.items()}


@cache
def _parse_cached(texts: tuple[tuple[Path, str], ...]) -> dict[Path, dict[str, Any]]:
    python = iac_tool("python")
    completed = subprocess.run(
        [str(python), "-c", _PARSE_SCRIPT, *(str(path) for path, _ in texts)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert completed.returncode == 0, f"pycep failed to run:\n{completed.stderr}"
    return {Path(name): result for name, result in json.loads(completed.stdout).items()}


def bicep_files() -> list[Path]:
    return sorted(BICEP_DIR.rglob("*.bicep"))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """main.bicep as pycep parses it."""
    return parse_bicep(MAIN_BICEP)[MAIN_BICEP]


# ---------------------------------------------------------------------------------------------------------------
# Reading the template
# ---------------------------------------------------------------------------------------------------------------


def template_app_settings(parsed: dict[str, Any]) -> list[str]:
    """Names in the template's `appSettings` variable (a list of {name, value} objects)."""
    variable = parsed.get("variables", {}).get("appSettings")
    assert variable is not None, "main.bicep has no `appSettings` variable: keep every app setting in it"
    items = variable["value"]
    assert isinstance(items, list), "`appSettings` must be a list of {name, value} objects"
    names = []
    for item in items:
        assert isinstance(item, dict) and set(item) == {"name", "value"}, f"not a {{name, value}} object: {item}"
        names.append(str(item["name"]).strip("'"))
    return names


def parameter_defaults(parsed: dict[str, Any]) -> dict[str, Any]:
    return {name: spec.get("default") for name, spec in parsed.get("parameters", {}).items()}


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
    """The properties block of a resource, looking through `if (...)` and `for` wrappers."""
    config = resource["config"]
    while "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"]
    return config


def loop_source(resource: dict[str, Any]) -> str | None:
    loop = resource["config"].get("loop_type")
    return loop["detail"].get("array_name") if loop else None


# ---------------------------------------------------------------------------------------------------------------
# Which settings the code reads
# ---------------------------------------------------------------------------------------------------------------

_ENV_RECEIVER = re.compile(r"(^|\.)(env|environ|environment)$")
_PLACEHOLDER = "\x00"


@dataclass(frozen=True)
class _Template:
    """A setting name with holes for the given parameters of a helper function, e.g. '{prefix}__accountName'."""

    parts: tuple[str | None, ...]  # literal text, or None where a parameter goes
    params: tuple[str, ...]  # the parameter for each None, in order

    def fill(self, values: dict[str, str]) -> str:
        holes = iter(self.params)
        return "".join(part if part is not None else values[next(holes)] for part in self.parts)

    def substitute(self, arguments: dict[str, _Template]) -> _Template:
        """Put each parameter's argument (itself a template) in its hole."""
        parts: list[str | None] = []
        params: list[str] = []
        holes = iter(self.params)
        for part in self.parts:
            if part is not None:
                parts.append(part)
                continue
            argument = arguments[next(holes)]
            parts.extend(argument.parts)
            params.extend(argument.params)
        return _Template(tuple(parts), tuple(params))


@dataclass
class SettingsScan:
    """What a scan of the code found: setting names, and reads whose name is only known at run time."""

    names: dict[str, list[str]] = field(default_factory=dict)  # name -> where it is read
    dynamic: list[str] = field(default_factory=list)

    def add(self, name: str, where: str) -> None:
        self.names.setdefault(name, []).append(where)


class _FunctionInfo:
    def __init__(self, node: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> None:
        self.node = node
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        self.params = [a.arg for a in positional] + [a.arg for a in args.kwonlyargs]
        self.positional = [a.arg for a in positional]
        self.skip_first = is_method and bool(self.positional) and self.positional[0] in {"self", "cls"}
        defaults: dict[str, ast.expr] = {}
        for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults, strict=True):
            defaults[arg.arg] = default
        for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
            if kw_default is not None:
                defaults[arg.arg] = kw_default
        self.defaults = defaults


def _module_constants(tree: ast.Module) -> dict[str, str]:
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = node.value.value
        elif (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
              and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            constants[node.target.id] = node.value.value
    return constants


def _functions(tree: ast.Module) -> Iterator[tuple[_FunctionInfo, str]]:
    """Every function and method with a dotted name for messages."""

    def walk(node: ast.AST, prefix: str, in_class: bool) -> Iterator[tuple[_FunctionInfo, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield _FunctionInfo(child, in_class), f"{prefix}{child.name}"
                yield from walk(child, f"{prefix}{child.name}.", False)
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.", True)
            else:
                yield from walk(child, prefix, in_class)

    yield from walk(tree, "", False)


def _env_reads(node: ast.AST) -> Iterator[tuple[ast.expr, int]]:
    """Key expressions read from an environment mapping: env.get(k), env[k], k in env, os.getenv(k)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.args:
            receiver = ast.unparse(sub.func.value)
            mapping_read = sub.func.attr in {"get", "pop", "setdefault"} and _ENV_RECEIVER.search(receiver)
            if mapping_read or (sub.func.attr == "getenv" and receiver == "os"):
                yield sub.args[0], sub.lineno
        elif (isinstance(sub, ast.Subscript) and isinstance(sub.ctx, ast.Load)
              and _ENV_RECEIVER.search(ast.unparse(sub.value))):
            yield sub.slice, sub.lineno
        elif (isinstance(sub, ast.Compare) and len(sub.ops) == 1 and isinstance(sub.ops[0], ast.In | ast.NotIn)
              and _ENV_RECEIVER.search(ast.unparse(sub.comparators[0]))):
            yield sub.left, sub.lineno


def _as_template(expr: ast.expr, function: _FunctionInfo | None, constants: dict[str, str]) -> _Template | None:
    """A key expression as literal text with parameter holes; None when it depends on anything else."""

    def piece(value: ast.expr) -> tuple[str | None, str | None] | None:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value.value, None
        if isinstance(value, ast.Name):
            if function is not None and value.id in function.params:
                return None, value.id
            if value.id in constants:
                return constants[value.id], None
        return None

    if isinstance(expr, ast.JoinedStr):
        parts: list[str | None] = []
        params: list[str] = []
        for value in expr.values:
            inner = value.value if isinstance(value, ast.FormattedValue) else value
            if isinstance(value, ast.FormattedValue) and (value.format_spec is not None or value.conversion != -1):
                return None
            resolved = piece(inner)
            if resolved is None:
                return None
            text, param = resolved
            parts.append(text)
            if param is not None:
                params.append(param)
        return _Template(tuple(parts), tuple(params))
    resolved = piece(expr)
    if resolved is None:
        return None
    text, param = resolved
    return _Template((text,), ()) if param is None else _Template((None,), (param,))


def _helpers_called(
    call: ast.Call, helpers: dict[str, list[tuple[_FunctionInfo, _Template]]]
) -> Iterator[tuple[_FunctionInfo, _Template]]:
    """Helpers this call may invoke: f(...) for functions, self.f(...) for methods, module.f(...) for functions."""
    func = call.func
    if isinstance(func, ast.Name):
        yield from ((info, tmpl) for info, tmpl in helpers.get(func.id, []) if not info.skip_first)
    elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        for info, tmpl in helpers.get(func.attr, []):
            if info.skip_first == (func.value.id in {"self", "cls"}):
                yield info, tmpl


def _call_arguments(call: ast.Call, callee: _FunctionInfo, via_attribute: bool) -> dict[str, ast.expr]:
    positional = callee.positional[1:] if (callee.skip_first and via_attribute) else callee.positional
    bound = dict(zip(positional, call.args, strict=False))
    bound.update({kw.arg: kw.value for kw in call.keywords if kw.arg is not None})
    return bound


def scan_settings(root: Path, package: str = "gateway", skip: Iterable[str] = ()) -> SettingsScan:
    """Setting names the code under ``root/package`` reads from its environment.

    Found: literal keys (``env.get("X")``, ``env["X"]``, ``"X" in env``, ``os.getenv("X")``), module constants,
    f-strings over a parameter default (``env.get(f"{prefix}__accountName")`` with ``prefix="..."``), and names
    passed to helper functions that read a parameter from the environment (``_text(env, "X")``), through any
    depth of helpers. Keys only known at run time (from bindings, attributes) are listed in ``dynamic``.
    """
    scan = SettingsScan()
    skipped = set(skip)
    modules: list[tuple[str, ast.Module, dict[str, str], list[tuple[_FunctionInfo, str]]]] = []
    for path in sorted((root / package).rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative in skipped:
            continue
        tree = ast.parse(path.read_text(), filename=relative)
        modules.append((relative, tree, _module_constants(tree), list(_functions(tree))))

    # helper name -> list of (function info, template): calling it with the holes filled reads a setting.
    helpers: dict[str, list[tuple[_FunctionInfo, _Template]]] = {}

    def add_helper(info: _FunctionInfo, tmpl: _Template) -> bool:
        entries = helpers.setdefault(info.node.name, [])
        if any(existing is info and t == tmpl for existing, t in entries):
            return False
        entries.append((info, tmpl))
        return True

    # Direct reads.
    for relative, tree, constants, functions in modules:
        owner = {id(sub): info for info, _ in functions for sub in ast.walk(info.node)}
        for key, line in _env_reads(tree):
            info = owner.get(id(key))
            tmpl = _as_template(key, info, constants)
            where = f"{relative}:{line}"
            if tmpl is None:
                scan.dynamic.append(f"{where}: {ast.unparse(key)}")
            elif not tmpl.params:
                scan.add(tmpl.fill({}), where)
            else:
                assert info is not None
                add_helper(info, tmpl)
                defaults = {p: info.defaults.get(p) for p in tmpl.params}
                if all(isinstance(d, ast.Constant) and isinstance(d.value, str) for d in defaults.values()):
                    scan.add(tmpl.fill({p: d.value for p, d in defaults.items()}), where)  # type: ignore[union-attr]

    # Calls to helpers, to a fixed point (a helper may pass its own parameter on to another helper).
    for _ in range(10):
        changed = False
        for relative, tree, constants, functions in modules:
            owner = {id(sub): info for info, _ in functions for sub in ast.walk(info.node)}
            for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
                for callee, tmpl in list(_helpers_called(call, helpers)):
                    caller = owner.get(id(call))
                    bound = _call_arguments(call, callee, isinstance(call.func, ast.Attribute))
                    arguments: dict[str, _Template] = {}
                    for param in tmpl.params:
                        expr = bound.get(param, callee.defaults.get(param))
                        arg_tmpl = None if expr is None else _as_template(expr, caller, constants)
                        if arg_tmpl is None:
                            break
                        arguments[param] = arg_tmpl
                    else:
                        filled = tmpl.substitute(arguments)
                        if not filled.params:
                            scan.add(filled.fill({}), f"{relative}:{call.lineno}")
                            continue
                        if caller is not None:
                            changed |= add_helper(caller, filled)
                            continue
                    scan.dynamic.append(f"{relative}:{call.lineno}: {ast.unparse(call)}")
        if not changed:
            break
    scan.dynamic = sorted(set(scan.dynamic))
    return scan


def code_settings() -> SettingsScan:
    return scan_settings(ROOT)


def missing_from_template(code: Iterable[str], template_names: Iterable[str]) -> set[str]:
    """Settings the code reads that the template's app settings leave out (exempt ones aside)."""
    return set(code) - set(template_names) - set(NOT_APP_SETTINGS)


# ---------------------------------------------------------------------------------------------------------------
# Parsing and security scanning
# ---------------------------------------------------------------------------------------------------------------


def test_every_bicep_file_parses() -> None:
    files = bicep_files()
    assert MAIN_BICEP in files
    parsed = parse_bicep(*files)
    assert set(parsed) == set(files)


def test_no_registry_modules() -> None:
    """Registry modules are opaque to checkov and cannot be fetched offline: declare resources in the repo."""
    for path, parsed in parse_bicep(*bicep_files()).items():
        for name, module in parsed.get("modules", {}).items():
            assert module["type"] == "local", f"{path.name}: module {name} is not a local file"
            assert (path.parent / module["detail"]["path"]).exists(), f"{path.name}: module {name} file is missing"


def test_checkov_reports_no_failed_check() -> None:
    checkov = iac_tool("checkov")
    completed = subprocess.run(
        [str(checkov), "-d", str(BICEP_DIR), "--framework", "bicep", "--skip-download", "-o", "json"],
        capture_output=True, text=True, timeout=600, check=False, cwd=ROOT,
    )
    assert completed.stdout.strip(), f"checkov printed nothing:\n{completed.stderr}"
    report = json.loads(completed.stdout)
    report = report[0] if isinstance(report, list) else report
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in report["results"]["failed_checks"]]
    assert not failed, "checkov failed checks (fix them or skip inline with a reason):\n" + "\n".join(failed)
    assert summary["parsing_errors"] == 0, summary
    assert summary["passed"] > 0, summary
    skipped = report["results"]["skipped_checks"]
    reasons = {check["check_id"]: check["check_result"].get("suppress_comment", "") for check in skipped}
    unexplained = [check for check, reason in reasons.items() if len(reason.strip()) < 20]
    assert not unexplained, f"skipped without a reason: {unexplained}"


# ---------------------------------------------------------------------------------------------------------------
# The template against the code
# ---------------------------------------------------------------------------------------------------------------


def _default_settings() -> Any:
    from gateway.settings import Settings, StorageSettings

    return Settings(storage=StorageSettings(connection_string="UseDevelopmentStorage=true"))


def test_queue_and_table_names_match_the_code(template: dict[str, Any]) -> None:
    settings = _default_settings()
    variables = template["variables"]
    queues = {evaluate_string(v, template) for v in variables["queueNames"]["value"]}
    tables = {evaluate_string(v, template) for v in variables["tableNames"]["value"]}
    assert queues == {settings.queue_name, settings.poison_queue_name}
    assert tables == {settings.communications_table, settings.api_keys_table, settings.outbox_table}
    # ...and the template really creates them from those lists.
    [queue_resource] = resources_of_type(template, "Microsoft.Storage/storageAccounts/queueServices/queues").values()
    [table_resource] = resources_of_type(template, "Microsoft.Storage/storageAccounts/tableServices/tables").values()
    assert loop_source(queue_resource) == "queueNames"
    assert loop_source(table_resource) == "tableNames"


# Template parameter -> field of gateway.settings.Settings with the same meaning.
PARAMETER_FIELDS = {
    "smsQueueName": "queue_name",
    "smsTablePrefix": "table_prefix",
    "smsProvider": "provider",
    "smsMaxBodyLength": "max_body_length",
    "smsMaxRecipients": "max_recipients",
    "smsMaxRequestBytes": "max_request_bytes",
    "smsApiKeyCacheSeconds": "api_key_cache_seconds",
}


def test_parameter_defaults_match_the_code(template: dict[str, Any]) -> None:
    from gateway.settings import Settings

    code_defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    defaults = parameter_defaults(template)
    for parameter, field_name in PARAMETER_FIELDS.items():
        assert field_name in code_defaults, f"Settings has no field {field_name!r} any more: update PARAMETER_FIELDS"
        assert defaults[parameter] == code_defaults[field_name], (parameter, field_name)


def test_scanner_finds_what_settings_py_reads() -> None:
    scan = code_settings()
    expected = {
        "SMS_QUEUE_NAME", "SMS_TABLE_PREFIX", "SMS_PROVIDER", "SMS_ALLOW_OUTBOX_IN_AZURE", "SMS_DEFAULT_SENDER",
        "SMS_DEFAULT_REGION", "SMS_MAX_BODY_LENGTH", "SMS_MAX_RECIPIENTS", "SMS_MAX_REQUEST_BYTES",
        "SMS_API_KEY_CACHE_SECONDS", "WEBSITE_INSTANCE_ID", "AzureWebJobsStorage",
        "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__tableServiceUri",
        "AzureWebJobsStorage__queueServiceUri", "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId",
    }
    assert expected <= set(scan.names), expected - set(scan.names)


def test_template_sets_every_setting_the_code_reads(template: dict[str, Any]) -> None:
    scan = code_settings()
    names = template_app_settings(template)
    missing = missing_from_template(scan.names, names)
    assert not missing, "settings the code reads but main.bicep's appSettings lacks: " + ", ".join(
        f"{name} (read at {', '.join(scan.names[name])})" for name in sorted(missing)
    )
    assert len(names) == len(set(names)), "a setting appears twice in appSettings"


def test_template_sets_the_identity_based_storage_settings(template: dict[str, Any]) -> None:
    names = set(template_app_settings(template))
    for suffix in ("accountName", "credential", "clientId", "blobServiceUri", "queueServiceUri", "tableServiceUri"):
        assert f"AzureWebJobsStorage__{suffix}" in names
    assert {"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"} <= names
    assert not names & FORBIDDEN_APP_SETTINGS, names & FORBIDDEN_APP_SETTINGS


def test_removing_a_setting_from_the_template_is_caught(tmp_path: Path) -> None:
    """The check must fail when the template loses a setting: run it against an edited copy."""
    text = MAIN_BICEP.read_text()
    entry = re.compile(r"\n  \{\n    name: 'SMS_QUEUE_NAME'\n    value: [^\n]+\n  \}")
    assert len(entry.findall(text)) == 1, "expected one SMS_QUEUE_NAME entry in appSettings"
    edited = tmp_path / "main.bicep"
    edited.write_text(entry.sub("", text))
    names = template_app_settings(parse_bicep(edited)[edited])
    assert "SMS_QUEUE_NAME" not in names
    assert missing_from_template(code_settings().names, names) == {"SMS_QUEUE_NAME"}


def _write_module(root: Path, name: str, source: str) -> None:
    path = root / "pkg" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))


def test_scanner_handles_the_ways_code_reads_settings(tmp_path: Path) -> None:
    _write_module(tmp_path, "a.py", """
        import os
        from collections.abc import Mapping

        NAME = "FROM_CONSTANT"

        def direct(env: Mapping[str, str]) -> None:
            env.get("LITERAL_GET")
            env["SUBSCRIPT"]
            "MEMBERSHIP" in env
            os.environ.get("OS_ENVIRON")
            os.getenv("OS_GETENV")
            env.get(NAME)

        def family(env: Mapping[str, str], prefix: str = "Store") -> None:
            env.get(prefix)
            env.get(f"{prefix}__uri")

        def _text(env: Mapping[str, str], name: str) -> str | None:
            return (env.get(name) or "").strip() or None

        def _required(env: Mapping[str, str], name: str) -> str:
            return _text(env, name) or "x"

        def users(env: Mapping[str, str]) -> None:
            _text(env, "VIA_HELPER")
            _required(env, name="VIA_HELPER_OF_HELPER")
            family(env, prefix="Other")

        class Reader:
            def __init__(self, environ: Mapping[str, str]) -> None:
                self.environ = environ

            def read(self, setting: str) -> str | None:
                return self.environ.get(setting)

            def use(self) -> None:
                self.read("VIA_METHOD")

        def dynamic(env: Mapping[str, str], spec: object) -> None:
            env.get(f"AzureWebJobs.{spec.name}.Disabled")
        """)
    _write_module(tmp_path, "b.py", """
        from pkg.a import _text

        def elsewhere(env):
            return _text(env, "FROM_OTHER_MODULE")
        """)
    scan = scan_settings(tmp_path, package="pkg")
    assert set(scan.names) == {
        "LITERAL_GET", "SUBSCRIPT", "MEMBERSHIP", "OS_ENVIRON", "OS_GETENV", "FROM_CONSTANT",
        "Store", "Store__uri", "Other", "Other__uri",
        "VIA_HELPER", "VIA_HELPER_OF_HELPER", "VIA_METHOD", "FROM_OTHER_MODULE",
    }
    assert any("spec.name" in line for line in scan.dynamic)


def test_local_settings_example_holds_only_known_settings() -> None:
    values = json.loads(LOCAL_SETTINGS_EXAMPLE.read_text())["Values"]
    known = set(scan_settings(ROOT).names) | HOST_SETTINGS
    unknown = {name for name in values
               if name not in known and not any(p.match(name) for p in HOST_SETTING_PATTERNS)}
    assert not unknown, f"local.settings.json.example has settings neither the code nor the host reads: {unknown}"


def test_python_version_matches(template: dict[str, Any]) -> None:
    local = (ROOT / ".python-version").read_text().strip()
    [site] = resources_of_type(template, "Microsoft.Web/sites").values()
    runtime = resource_body(site)["properties"]["functionAppConfig"]["runtime"]
    assert runtime == {"name": "python", "version": local}


# ---------------------------------------------------------------------------------------------------------------
# The hosting the brief asks for
# ---------------------------------------------------------------------------------------------------------------


def test_function_app_is_flex_consumption_and_locked_down(template: dict[str, Any]) -> None:
    [plan] = resources_of_type(template, "Microsoft.Web/serverfarms").values()
    assert resource_body(plan)["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert resource_body(plan)["properties"]["reserved"] is True
    [site] = resources_of_type(template, "Microsoft.Web/sites").values()
    body = resource_body(site)
    assert body["kind"] == "functionapp,linux"
    assert body["identity"]["type"] == "UserAssigned"
    properties = body["properties"]
    assert properties["httpsOnly"] is True
    assert properties["siteConfig"]["minTlsVersion"] == "1.2"
    assert properties["siteConfig"]["ftpsState"] == "Disabled"
    assert properties["siteConfig"]["appSettings"] == "appSettings"
    deployment = properties["functionAppConfig"]["deployment"]["storage"]
    assert deployment["type"] == "blobContainer"
    assert deployment["authentication"]["type"] == "UserAssignedIdentity"
    scale = properties["functionAppConfig"]["scaleAndConcurrency"]
    assert scale == {"instanceMemoryMB": "instanceMemoryMB", "maximumInstanceCount": "maximumInstanceCount"}
    assert "'azd-service-name': 'api'" in MAIN_BICEP.read_text()
    assert parameter_defaults(template)["functionAppName"] == "production-eros-gateway-api-sms-wa"
    assert set(template["outputs"]) >= {"ENDPOINT_URL", "FUNCTION_APP_NAME", "RESOURCE_GROUP_NAME"}


def test_storage_monitoring_and_vault_use_entra_only(template: dict[str, Any]) -> None:
    [storage] = resources_of_type(template, "Microsoft.Storage/storageAccounts").values()
    props = resource_body(storage)["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    [insights] = resources_of_type(template, "Microsoft.Insights/components").values()
    assert resource_body(insights)["properties"]["DisableLocalAuth"] is True
    [vault] = resources_of_type(template, "Microsoft.KeyVault/vaults").values()
    vault_props = resource_body(vault)["properties"]
    assert vault_props["enableRbacAuthorization"] is True
    assert vault_props["enableSoftDelete"] is True


def test_identity_gets_the_roles_it_needs(template: dict[str, Any]) -> None:
    roles = template["variables"]["roles"]["value"]
    assert roles["storageBlobDataOwner"] == "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
    assert roles["storageQueueDataContributor"] == "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
    assert roles["storageTableDataContributor"] == "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
    assert roles["monitoringMetricsPublisher"] == "3913510d-42f4-4e42-8a64-420c390055eb"
    assert roles["keyVaultSecretsUser"] == "4633458b-17de-408a-b874-0445c86b69e6"
    granted = []
    for assignment in resources_of_type(template, "Microsoft.Authorization/roleAssignments").values():
        body = resource_body(assignment)
        granted.append((body["scope"], json.dumps(body["properties"])))
    for scope, role in [("storage", "storageBlobDataOwner"), ("storage", "storageQueueDataContributor"),
                        ("storage", "storageTableDataContributor"), ("appInsights", "monitoringMetricsPublisher"),
                        ("keyVault", "keyVaultSecretsUser")]:
        assert any(s == scope and f'"{role}"' in text and '"identity"' in text and "ServicePrincipal" in text
                   for s, text in granted), (scope, role)


def test_parameters_file_and_azure_yaml() -> None:
    parameters = json.loads(PARAMETERS_JSON.read_text())["parameters"]
    defined = set(parameter_defaults(parse_bicep(MAIN_BICEP)[MAIN_BICEP]))
    assert set(parameters) <= defined, set(parameters) - defined
    assert parameters["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    azure_yaml = (ROOT / "azure.yaml").read_text()
    for line in ("path: infra/bicep", "  api:", "project: .", "language: python", "host: function"):
        assert line in azure_yaml, line


# ---------------------------------------------------------------------------------------------------------------
# infra/deploy.sh
# ---------------------------------------------------------------------------------------------------------------


def test_deploy_script_is_valid_bash() -> None:
    completed = subprocess.run(["bash", "-n", str(DEPLOY_SH)], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    assert "set -euo pipefail" in DEPLOY_SH.read_text()


def test_deploy_script_passes_shellcheck() -> None:
    shellcheck = iac_tool("shellcheck")
    completed = subprocess.run([str(shellcheck), str(DEPLOY_SH)], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr


FAKE_AZ = r'''#!{python}
"""Stands in for az: records each call and answers the few queries deploy.sh makes."""
import json, os, shutil, sys
args = sys.argv[1:]
state = os.environ["FAKE_AZ_DIR"]
with open(os.path.join(state, "calls.jsonl"), "a") as log:
    log.write(json.dumps(args) + "\n")
joined = " ".join(args)
outputs = {{"FUNCTION_APP_NAME": "app-test", "ENDPOINT_URL": "https://app-test.azurewebsites.net",
           "STORAGE_ACCOUNT_NAME": "sttest", "KEY_VAULT_NAME": "kv-test", "SMS_PROVIDER": "twilio"}}
if args[:2] == ["account", "show"]:
    if "user.type" in joined:
        print("user")
    elif "user.name" in joined:
        print("someone@example.com")
elif args[:3] == ["ad", "signed-in-user", "show"]:
    print("11111111-2222-3333-4444-555555555555")
elif args[:3] == ["deployment", "group", "create"]:
    params = args[args.index("--parameters") + 1]
    shutil.copy(params[1:], os.path.join(state, "parameters.json"))
elif args[:3] == ["deployment", "group", "show"]:
    if not os.path.exists(os.path.join(state, "parameters.json")):
        sys.exit(3)  # no earlier deployment
    query = args[args.index("--query") + 1]
    print(outputs[query.split(".")[2]])
elif args[:3] == ["keyvault", "secret", "list"]:
    print("twilio-auth-token\nunrelated-secret")
elif args[:4] == ["functionapp", "deployment", "source", "config-zip"]:
    shutil.copy(args[args.index("--src") + 1], os.path.join(state, "app.zip"))
'''


def _fake_checkout(tmp_path: Path, with_app: bool = True) -> tuple[Path, dict[str, str]]:
    checkout = tmp_path / "checkout"
    (checkout / "infra" / "bicep").mkdir(parents=True)
    shutil.copy(DEPLOY_SH, checkout / "infra" / "deploy.sh")
    shutil.copy(MAIN_BICEP, checkout / "infra" / "bicep" / "main.bicep")
    if with_app:
        for name in ("function_app.py", "host.json", "requirements.txt"):
            (checkout / name).write_text("# stand-in\n")
        (checkout / "gateway" / "__pycache__").mkdir(parents=True)
        (checkout / "gateway" / "__init__.py").write_text("")
        (checkout / "gateway" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"")
    (checkout / "tests").mkdir()
    (checkout / "tests" / "test_x.py").write_text("")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "az"
    fake.write_text(FAKE_AZ.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    state = tmp_path / "state"
    state.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SMS_", "TWILIO_", "ACS_", "AZURE_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", FAKE_AZ_DIR=str(state))
    return checkout, env


def test_deploy_script_runs_end_to_end_against_a_fake_az(tmp_path: Path) -> None:
    checkout, env = _fake_checkout(tmp_path)
    secret = 'tok"en\\with-quote-and-backslash'
    env.update(
        SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN=secret,
        SMS_ALLOW_OUTBOX_IN_AZURE="false", SMS_EXISTING_SECRETS="twilio-api-key-secret, acs-connection-string",
    )
    completed = subprocess.run(["bash", str(checkout / "infra" / "deploy.sh"), "test", "westeurope"],
                               env=env, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    state = tmp_path / "state"
    calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    assert any(call[:6] == ["group", "create", "--name", "rg-sms-gateway-test", "--location", "westeurope"]
               for call in calls), calls
    assert not any(secret in arg for call in calls for arg in call), "a secret reached an az command line"

    parameters = json.loads((state / "parameters.json").read_text())["parameters"]
    assert set(parameters) <= set(parameter_defaults(parse_bicep(MAIN_BICEP)[MAIN_BICEP]))
    assert parameters["twilioAuthToken"]["value"] == secret
    assert parameters["smsProvider"]["value"] == "twilio"
    assert parameters["smsAllowOutboxInAzure"]["value"] is False
    assert parameters["existingSecretNames"]["value"] == ["twilio-api-key-secret", "acs-connection-string"]
    assert parameters["deployerPrincipalId"]["value"] == "11111111-2222-3333-4444-555555555555"
    assert parameters["deployerPrincipalType"]["value"] == "User"
    assert parameters["environmentName"]["value"] == "test"

    publish = next(call for call in calls if call[:4] == ["functionapp", "deployment", "source", "config-zip"])
    assert publish[publish.index("--build-remote") + 1] == "true"
    with zipfile.ZipFile(state / "app.zip") as archive:
        names = set(archive.namelist())
    assert {"function_app.py", "host.json", "requirements.txt", "gateway/__init__.py"} <= names
    assert not any(name.endswith(".pyc") or name.startswith("tests/") for name in names), names
    assert "python -m gateway keys create" in completed.stdout
    assert "AzureWebJobsStorage__accountName=sttest" in completed.stdout
    assert not (tmp_path / "checkout" / "parameters.json").exists()


def test_deploy_script_keeps_referencing_secrets_already_in_the_vault(tmp_path: Path) -> None:
    """A redeployment without the secret in the environment must not empty the app setting."""
    checkout, env = _fake_checkout(tmp_path)
    state = tmp_path / "state"
    command = ["bash", str(checkout / "infra" / "deploy.sh"), "test"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "existingSecretNames" not in json.loads((state / "parameters.json").read_text())["parameters"]
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    parameters = json.loads((state / "parameters.json").read_text())["parameters"]
    assert parameters["existingSecretNames"]["value"] == ["twilio-auth-token"]
    env["SMS_EXISTING_SECRETS"] = ""
    chosen = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert chosen.returncode == 0, chosen.stdout + chosen.stderr
    assert "existingSecretNames" not in json.loads((state / "parameters.json").read_text())["parameters"]


def test_deploy_script_refuses_a_checkout_without_the_app(tmp_path: Path) -> None:
    checkout, env = _fake_checkout(tmp_path, with_app=False)
    completed = subprocess.run(["bash", str(checkout / "infra" / "deploy.sh"), "test"],
                               env=env, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode != 0
    assert "function_app.py is missing" in completed.stderr


def deploy_script_package(tmp_path: Path) -> set[str]:
    """The files of the zip deploy.sh builds from this checkout, by its own build_package."""
    package = tmp_path / "app.zip"
    completed = subprocess.run(["bash", "-c", 'source "$1" && build_package "$2"', "-", str(DEPLOY_SH), str(package)],
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    with zipfile.ZipFile(package) as archive:
        return set(archive.namelist())


def funcignore_package(root: Path) -> set[str]:
    """The files azd and ``func`` publish from ``root``: everything .funcignore does not exclude.

    .funcignore follows .gitignore's rules; this reads the part of them it uses: a trailing ``/`` matches
    directories only, a pattern without another ``/`` matches a name at any depth, ``*`` globs, and an
    excluded directory excludes everything in it.
    """
    patterns = [line.strip() for line in (root / ".funcignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert not [p for p in patterns if p.startswith("!") or "/" in p.rstrip("/")], \
        "funcignore_package reads only unanchored patterns without negation: teach it the new ones"

    def ignored(name: str, is_dir: bool) -> bool:
        return any(fnmatch.fnmatchcase(name, p.rstrip("/")) for p in patterns if is_dir or not p.endswith("/"))

    files = set()
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [name for name in dirnames if not ignored(name, is_dir=True)]
        here = Path(directory).relative_to(root)
        files |= {(here / name).as_posix() for name in filenames if not ignored(name, is_dir=False)}
    return files


def top_level(files: Iterable[str]) -> set[str]:
    return {name.split("/", 1)[0] for name in files}


def test_deploy_script_packages_the_app_and_no_dev_only_module(tmp_path: Path) -> None:
    files = deploy_script_package(tmp_path)
    assert top_level(files) == {"function_app.py", "host.json", "requirements.txt", "gateway"}, top_level(files)
    assert {"gateway/__init__.py", "gateway/settings.py", "gateway/providers/twilio.py"} <= files
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc")]


def test_funcignore_keeps_dev_only_modules_out_of_the_azd_package() -> None:
    files = funcignore_package(ROOT)
    assert {"function_app.py", "host.json", "requirements.txt", "gateway/__init__.py"} <= files
    assert not top_level(files) & set(DEV_ONLY_MODULES), sorted(top_level(files) & set(DEV_ONLY_MODULES))
    python_modules = {name for name in top_level(files) if name.endswith(".py") or f"{name}/__init__.py" in files}
    assert python_modules == {"function_app.py", "gateway"}, "a Python module outside gateway/ would be deployed"


def test_funcignore_package_would_show_a_dev_only_module(tmp_path: Path) -> None:
    """The check above can fail: a checkout whose .funcignore lost its devhost/ line ships devhost/."""
    (tmp_path / "devhost").mkdir()
    (tmp_path / "devhost" / "__init__.py").write_text("")
    (tmp_path / "function_app.py").write_text("")
    lines = (ROOT / ".funcignore").read_text().splitlines()
    (tmp_path / ".funcignore").write_text("\n".join(line for line in lines if line != "devhost/") + "\n")
    assert "devhost/__init__.py" in funcignore_package(tmp_path)
    (tmp_path / ".funcignore").write_text("\n".join(lines) + "\n")
    assert top_level(funcignore_package(tmp_path)) == {"function_app.py", ".funcignore"}


def test_deploy_script_usage() -> None:
    completed = subprocess.run(["bash", str(DEPLOY_SH)], capture_output=True, text=True, check=False)
    assert completed.returncode == 2
    assert "usage: infra/deploy.sh <environment> [location]" in completed.stderr

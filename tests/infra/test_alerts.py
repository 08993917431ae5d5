"""The alert rules (infra/bicep/app/alerts.bicep): what Azure Monitor would refuse at deployment, checked here, and
that the rules watch the metrics the gateway really exports (gateway/telemetry.py).

Sources: the Bicep reference of Microsoft.Insights/scheduledQueryRules 2023-12-01 and actionGroups 2023-01-01
(learn.microsoft.com/azure/templates/microsoft.insights/...): severity 0-4; evaluationFrequency and windowSize are
ISO 8601 durations the log search alert API takes, the window no shorter than the frequency; an action group's
groupShortName is at most 12 characters and its location 'global'; a rule name has none of `*<>%{}&:\\?/#`.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway import telemetry
from tests.infra.bicep import BICEP_DIR, Template, resource_body, unquote

RULE_TYPE = "Microsoft.Insights/scheduledQueryRules"
GROUP_TYPE = "Microsoft.Insights/actionGroups"
DURATIONS = {"PT1M": 1, "PT5M": 5, "PT10M": 10, "PT15M": 15, "PT30M": 30, "PT45M": 45, "PT1H": 60, "PT2H": 120,
             "PT3H": 180, "PT4H": 240, "PT5H": 300, "PT6H": 360, "P1D": 1440, "P2D": 2880}
AGGREGATIONS = {"Count", "Average", "Minimum", "Maximum", "Total"}
FORBIDDEN_NAME = re.compile(r"[*<>%{}&:\\?/#]")


def alert_problems(template: Template) -> Iterator[str]:
    """Every place an alert rule or action group breaks what the platform takes."""
    for file, name, resource in template.resources(GROUP_TYPE):
        body = resource_body(resource)
        properties = body.get("properties") or {}
        short = unquote(properties.get("groupShortName", ""))
        if not 1 <= len(short) <= 12:
            yield f"{file}: {name} groupShortName {short!r} is not 1 to 12 characters"
        if unquote(body.get("location", "")) != "global":
            yield f"{file}: {name} is not in location 'global'"
        if not properties.get("emailReceivers"):
            yield f"{file}: {name} emails nobody"
    for file, name, resource in template.resources(RULE_TYPE):
        body = resource_body(resource)
        properties: dict[str, Any] = body.get("properties") or {}
        if FORBIDDEN_NAME.search(re.sub(r"\$\{[^}]*\}", "", unquote(body.get("name", "")))):
            yield f"{file}: {name} has a character a rule name cannot have"
        severity = properties.get("severity")
        if not (isinstance(severity, int) and 0 <= severity <= 4):
            yield f"{file}: {name} severity {severity!r} is not 0 to 4"
        frequency = DURATIONS.get(unquote(properties.get("evaluationFrequency", "")))
        window = DURATIONS.get(unquote(properties.get("windowSize", "")))
        if frequency is None or window is None:
            yield f"{file}: {name} evaluationFrequency or windowSize is not a duration the API takes"
        elif window < frequency:
            yield f"{file}: {name} windowSize is shorter than its evaluationFrequency"
        if not (properties.get("actions") or {}).get("actionGroups"):
            yield f"{file}: {name} notifies no action group"
        if not properties.get("scopes"):
            yield f"{file}: {name} has no scope"
        for criterion in (properties.get("criteria") or {}).get("allOf") or []:
            aggregation = unquote(criterion.get("timeAggregation", ""))
            if aggregation not in AGGREGATIONS:
                yield f"{file}: {name} timeAggregation {aggregation!r}"
            elif (aggregation == "Count") == ("metricMeasureColumn" in criterion):
                yield f"{file}: {name} needs a metricMeasureColumn exactly when it does not count rows"


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load()


def test_the_alert_rules_break_nothing_the_platform_refuses(template: Template) -> None:
    assert [name for _, name, _ in template.resources(RULE_TYPE)] == ["poisonAlert", "failureRateAlert",
                                                                      "queueAgeAlert"]
    assert list(alert_problems(template)) == []


def test_the_alerts_exist_only_with_an_email_and_take_it_as_a_parameter(template: Template) -> None:
    text = template.texts["main.bicep"]
    assert "module alerts 'app/alerts.bicep' = if (!empty(alertEmail)) {" in text
    assert template.module("main.bicep", "alerts")["params"]["email"] == "alertEmail"
    assert template.main["parameters"]["alertEmail"]["default"] == ""


def test_the_queries_watch_the_metrics_the_gateway_exports(template: Template) -> None:
    text = template.texts["app/alerts.bicep"]
    names = set(re.findall(r'name (?:==|in \() ?"(sms\.[a-z.]+)"', text)) | set(re.findall(r'"(sms\.queue\.[a-z]+)"',
                                                                                          text))
    assert names == {telemetry.MESSAGES, telemetry.QUEUE_AGE, telemetry.QUEUE_WAITING}
    outcomes = set(re.findall(r'"([a-z_]+)"', " ".join(re.findall(r"outcome[^|]*", text)))) - {"sms.outcome"}
    assert outcomes and outcomes <= set(telemetry.OUTCOMES), outcomes


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) >= 1, f"expected {old!r} in {path.name}"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(("old", "new", "problem"), [
    ("groupShortName: 'sms-gateway'", "groupShortName: 'sms-gateway-operators'", "groupShortName"),
    ("  location: 'global'", "  location: location", "location 'global'"),
    ("severity: 1", "severity: 5", "severity 5"),
    ("windowSize: 'PT15M'", "windowSize: 'PT1M'", "shorter than"),
    ("evaluationFrequency: 'PT5M'", "evaluationFrequency: 'PT7M'", "not a duration"),
    ("timeAggregation: 'Count'", "timeAggregation: 'Maximum'", "metricMeasureColumn"),
    ("name: '${namePrefix}-poison-queue'", "name: '${namePrefix}/poison-queue'", "cannot have"),
])
def test_each_check_catches_what_the_platform_would_refuse(tmp_path: Path, old: str, new: str, problem: str) -> None:
    copy = tmp_path / "bicep"
    shutil.copytree(BICEP_DIR, copy)
    _edit(copy / "app" / "alerts.bicep", old, new)
    found = list(alert_problems(Template.load(copy)))
    assert any(problem in line for line in found), found

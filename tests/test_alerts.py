"""docs/alerts.yml: Prometheus alerting rules that load, and name only metrics the service exports."""

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.factories import webhook_body
from transactions import worker

ALERTS = Path(__file__).resolve().parent.parent / "docs" / "alerts.yml"

# PromQL words that look like metric names: functions are told apart by their "(".
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
DURATION = re.compile(r"[0-9]+(ms|s|m|h|d|w|y)")


def _rules() -> list[dict]:
    document = yaml.safe_load(ALERTS.read_text())
    assert set(document) == {"groups"}
    rules = []
    for group in document["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"]
        rules.extend(group["rules"])
    return rules


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: not functions, label matchers, ranges or keywords."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", expr):
        name, call = match.groups()
        if not call and name.lower() not in PROMQL_WORDS:
            names.add(name)
    return names


def test_metric_names_are_read_from_expressions():
    expr = 'sum by (outcome) (rate(a_total{outcome="failed"}[5m])) / clamp_min(b_seconds, 1e-9) > 0 and c'

    assert metric_names(expr) == {"a_total", "b_seconds", "c"}


def test_every_rule_has_an_alert_expression_duration_severity_and_text():
    rules = _rules()

    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert DURATION.fullmatch(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"page", "ticket"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_rules_cover_silence_lag_failures_and_the_database():
    exprs = " ".join(rule["expr"] for rule in _rules())

    for needed in [
        "transactions_last_received_timestamp_seconds",
        'transactions_processing_lag_seconds{quantile="0.99"}',
        "transactions_backlog_oldest_due_seconds",
        'transactions_processing_outcomes_total{outcome="failed"}',
        "transactions_collector_up",
    ]:
        assert needed in exprs, needed


@pytest.mark.django_db(transaction=True)
def test_every_metric_in_the_rules_is_exported_by_the_service(client, settings):
    # Traffic that makes each labelled metric appear: one webhook that fails for good,
    # one that is processed.
    settings.PROCESSING_DELAY_SECONDS = 0
    settings.PROCESSING_MAX_ATTEMPTS = 1
    for failure_rate in (1.0, 0.0):
        settings.PROCESSING_FAILURE_RATE = failure_rate
        body = json.dumps(webhook_body())
        assert (
            client.post("/v1/webhooks/transactions", body, content_type="application/json").status_code == 202
        )
        worker.ProcessingRound(idle=0.1).run()

    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    exported = {
        re.match(r"[a-zA-Z_:][\w:]*", line).group()
        for line in response.content.decode().splitlines()
        if line and not line.startswith("#")
    }

    for rule in _rules():
        missing = metric_names(rule["expr"]) - exported
        assert not missing, f"{rule['alert']} reads metrics the service does not export: {missing}"

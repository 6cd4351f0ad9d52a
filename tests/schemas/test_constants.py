"""The contract's constants (platforms, campaign states and event types, dead-letter reasons,
insight and metrics kinds) are spelled out once, in `schemas/`: every other module imports them,
and the tables keyed by one of them name each of its values."""

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest

from schemas.api import MetricsKind
from schemas.campaigns import CampaignEventType, CampaignStatus
from schemas.events import PLATFORMS, DeadLetterReason
from schemas.insights import ForecastModel, InsightKind, InsightMetric, InsightStatus, ScopeKind
from schemas.webhooks import AttemptStatus

REPO = Path(__file__).resolve().parents[2]
# Everything that runs, the test modules aside (a test may spell out what it expects).
CODE = ["fk", "api", "core", "streams", "etl", "scoring", "insights", "briefs", "bench", "chaos"]
CODE += ["soak", "grafana", "examples"]
CONSTANTS: dict[str, frozenset[str]] = {
    "platforms": frozenset(PLATFORMS),
    "campaign states": frozenset(CampaignStatus),
    "campaign event types": frozenset(CampaignEventType),
    "dead-letter reasons": frozenset(DeadLetterReason),
    "metrics kinds": frozenset(get_args(MetricsKind)),
    "insight kinds": frozenset(get_args(InsightKind)),
    "insight metrics": frozenset(get_args(InsightMetric)),
    "insight states": frozenset(get_args(InsightStatus)),
    "insight scopes": frozenset(get_args(ScopeKind)),
    "forecast models": frozenset(get_args(ForecastModel)),
    "delivery attempt states": frozenset(get_args(AttemptStatus)),
}


def spelled_out(tree: ast.AST) -> Iterator[tuple[int, frozenset[str]]]:
    """Each tuple, list or set of string literals (a `Literal[...]`'s included), by line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set) and len(node.elts) > 1:
            values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if len(values) == len(node.elts) and all(isinstance(v, str) for v in values):
                yield node.lineno, frozenset(values)


def test_no_module_spells_out_a_contract_constant_again() -> None:
    copies = [
        f"{path.relative_to(REPO)}:{line} ({name})"
        for top in CODE
        for path in sorted((REPO / top).rglob("*.py"))
        for line, values in spelled_out(ast.parse(path.read_text()))
        for name, constant in CONSTANTS.items()
        if values == constant
    ]
    assert not copies, f"import these from schemas/ instead: {copies}"


def test_the_check_finds_a_copy() -> None:
    source = 'PLATFORMS = ("instagram", "tiktok", "youtube", "x", "facebook")\n'
    assert [values for _, values in spelled_out(ast.parse(source))] == [CONSTANTS["platforms"]]
    source = 'kind: Literal["spike", "stall", "rateDrop"]\n'
    assert [values for _, values in spelled_out(ast.parse(source))] == [CONSTANTS["insight kinds"]]


@pytest.mark.parametrize(
    ("module", "table"),
    [
        ("etl.generate", "_PLATFORM_RATE"),
        ("etl.generate", "_PLATFORM_SHARE"),
        ("briefs.composer", "_DELIVERABLES"),
    ],
)
def test_every_table_by_platform_names_every_platform(module: str, table: str) -> None:
    import importlib

    assert set(getattr(importlib.import_module(module), table)) == set(PLATFORMS)


def test_the_dashboard_offers_every_platform() -> None:
    page = (REPO / "api" / "static" / "dashboard.html").read_text()
    assert tuple(re.findall(r"<option>([^<]+)</option>", page)) == PLATFORMS

"""Every benchmark runs, in its smoke size (`python -m bench --smoke`): one that no longer works
fails here, not on the day someone measures. Those that run in this process use the session's
broker and chDB path; those that measure `fk up` start it on the session's broker."""

import ast
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS, main
from core.kafka import EmbeddedBroker

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_the_benchmark_runs_in_its_smoke_size(
    name: str,
    broker: EmbeddedBroker,
    chdb_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FK_BENCH_BOOTSTRAP", broker.bootstrap)
    monkeypatch.setenv("FK_BENCH_CLICKHOUSE_URL", chdb_url)
    BENCHMARKS[name].smoke()
    assert capsys.readouterr().out.strip(), "the benchmark reported nothing"


def test_every_benchmark_module_is_listed() -> None:
    """A module of `bench/` with a `run` function is a benchmark: `python -m bench` runs it."""
    modules = {
        path.stem
        for path in BENCH.glob("*.py")
        if any(
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "run"
            for node in ast.parse(path.read_text()).body
        )
    }
    unlisted = modules - set(BENCHMARKS)
    assert not unlisted, f"add {unlisted} to BENCHMARKS in bench/__main__.py, with a smoke size"
    assert set(BENCHMARKS) <= modules


def test_an_unknown_benchmark_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["--smoke", "pipelin"])
    assert refused.value.code == 2
    assert "unknown benchmark pipelin" in capsys.readouterr().err

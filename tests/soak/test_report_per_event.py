"""The soak report states the embedded broker's bytes per event beside `fk up`'s."""

import re

from soak.load import Options, Results
from soak.processes import role
from soak.receiver import Receiver
from soak.report import render

MiB = 2**20


def test_the_report_names_fk_up_and_the_broker_with_their_bytes_per_event() -> None:
    memory = [
        (10.0, 1_000, {"fk up (11)": 800 * MiB, "tansu-v0.6.0-51 (12)": 60 * MiB}),
        (
            60.0,
            1_001_000,
            {"fk up (11)": 800 * MiB + 300_000_000, "tansu-v0.6.0-51 (12)": 60 * MiB + 720_000_000},
        ),
    ]
    recorded = Results(memory=memory, load_seconds=60, drain_seconds=0.5)
    recorded.record("POST /events", 3.0)
    options = Options(duration=60, rate=10, events_rate=100, warmup=10)
    report, _ = render(recorded, options, Receiver(), max_growth=0.10)
    line = next(x for x in report.splitlines() if x.startswith("Bytes per event"))
    assert re.search(r"fk up \(worker \+ API \+ chDB\) \+300 B, embedded broker \+720 B", line)
    assert "RSS per sample (MiB; fk up (worker + API + chDB) / embedded broker)" in report
    # The table keeps each process's name and PID, its figure in the per-event column.
    assert re.search(r"^\| tansu-v0\.6\.0-51 \(12\) \| .* \| \+720 B \| ", report, re.M)


def test_roles_of_sampled_processes() -> None:
    assert role("fk up (4242)") == "fk up (worker + API + chDB)"
    assert role("tansu-v0.6.0-51 (4243)") == "embedded broker"
    assert role("sh (4244)") == "sh (4244)"


def test_the_report_gives_each_process_its_cores_between_samples() -> None:
    memory = [
        (60.0, 1_000, {"fk up (11)": 800 * MiB, "tansu-v0.6.0-51 (12)": 60 * MiB}),
        (120.0, 2_000, {"fk up (11)": 800 * MiB, "tansu-v0.6.0-51 (12)": 60 * MiB}),
        (180.0, 3_000, {"fk up (11)": 800 * MiB, "tansu-v0.6.0-51 (12)": 60 * MiB}),
    ]
    cpu = [
        (60.0, {"fk up (11)": 30.0, "tansu-v0.6.0-51 (12)": 6.0}),
        (120.0, {"fk up (11)": 78.0, "tansu-v0.6.0-51 (12)": 18.0}),
        (180.0, {"fk up (11)": 120.0, "tansu-v0.6.0-51 (12)": 60.0}),
    ]
    recorded = Results(memory=memory, cpu=cpu, load_seconds=180, drain_seconds=0.5)
    recorded.record("POST /events", 3.0)
    options = Options(duration=180, rate=10, events_rate=100, warmup=60)
    report, _ = render(recorded, options, Receiver(), max_growth=0.10)
    line = next(x for x in report.splitlines() if x.startswith("Cores per sample"))
    assert line == (
        "Cores per sample (CPU since the sample before; fk up (worker + API + chDB) / embedded"
        " broker): 120 s 0.80, 0.20; 180 s 0.70, 0.70"
    )

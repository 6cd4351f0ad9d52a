"""`python -m soak` (or `make soak DURATION=1800 RATE=200 EVENTS=2000`): start `fk up` in its own
data directory, a webhook receiver and a fake OpenAI-compatible model on 127.0.0.1, run the mixed
load, print the report, and exit 1 when memory grew more than allowed, a request failed or the
consumer lag was unbounded."""

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from core.auth import issue_token
from core.settings import DEV_JWT_SECRET
from soak.heap import heap_growth
from soak.load import Load, Options, Results
from soak.model import fake_model
from soak.probe import summarise
from soak.processes import Platform, free_port
from soak.receiver import Receiver
from soak.report import BROKER_MAX_BYTES_PER_EVENT, render


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Run:
    """What one load run on a fresh `fk up` gave."""

    results: Results
    receiver: Receiver
    alive: bool
    exit_code: int | None
    log_tail: str
    heap: str
    load_before: str
    load_after: str


async def run_load(
    options: Options,
    workdir: Path,
    *,
    demo: bool = False,
    traced: bool = False,
    probe_every: float = 0.0,
    probe_trim: bool = False,
) -> Run:
    """Start `fk up` in `workdir` (with a webhook receiver and a fake model on 127.0.0.1), offer
    the load, stop everything and return what was measured."""
    receiver = Receiver()
    await receiver.start()
    model = fake_model()
    model.start()
    platform = Platform(
        workdir,
        free_port(),
        {
            "FK_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
            "FK_LLM_BASE_URL": model.base_url,
            "FK_LLM_API_KEY": "soak-fake-key",
            "FK_LLM_MODEL": "fake-model",
            # One client token stands for every user here: the per-caller write and brief
            # limits (tested in tests/security) would turn the offered load into 429s.
            "FK_RATE_LIMIT_READS_PER_MINUTE": "0",
            "FK_RATE_LIMIT_WRITES_PER_MINUTE": "0",
            "FK_RATE_LIMIT_EVENTS_PER_MINUTE": "0",
            "FK_RATE_LIMIT_BRIEFS_PER_MINUTE": "0",
        },
        demo=demo,
        traced=traced,
        probe_every=probe_every,
        probe_trim=probe_trim,
    )
    load_before = load_average()
    # SIGTERM (e.g. from `timeout`) cancels the run, so fk up is still stopped below.
    current = asyncio.current_task()
    assert current is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, current.cancel)
    try:
        await asyncio.to_thread(platform.start)
        print(f"fk up ready on {platform.base_url} (processes: {platform.pids()})", flush=True)
        token = issue_token(DEV_JWT_SECRET, org="soak", ttl_seconds=int(options.duration) + 3600)
        results = await Load(platform, token, receiver, options).run()
        alive = platform.alive()
        heap = await asyncio.to_thread(heap_growth, platform.snapshots) if traced else ""
    finally:
        code = await asyncio.to_thread(platform.stop)
        model.stop()
        await receiver.stop()
    return Run(
        results, receiver, alive, code, platform.log_tail(), heap, load_before, load_average()
    )


async def soak(
    options: Options,
    workdir: Path,
    max_growth: float,
    demo: bool,
    traced: bool,
    probe_every: float,
    probe_trim: bool,
    broker_max_bytes_per_event: float = BROKER_MAX_BYTES_PER_EVENT,
) -> bool:
    run = await run_load(
        options, workdir, demo=demo, traced=traced, probe_every=probe_every, probe_trim=probe_trim
    )
    report, passed = render(
        run.results,
        options,
        run.receiver,
        max_growth,
        broker_max_bytes_per_event=broker_max_bytes_per_event,
    )
    print(f"load average (1/5/15 min) before: {run.load_before}, after: {run.load_after}")
    print(report)
    if run.heap:
        print(run.heap)
    if probe_every > 0 and (workdir / "probe.jsonl").exists():
        load_began = time.time() - (time.monotonic() - run.results.started)
        print(summarise(workdir / "probe.jsonl", from_wall=load_began + options.warmup))
    if not run.alive:
        print(f"fk up died during the soak (exit {run.exit_code}):\n{run.log_tail}")
    return passed and run.alive


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=1800, help="seconds of load")
    parser.add_argument("--rate", type=float, default=200, help="mixed requests per second")
    parser.add_argument("--events-rate", type=float, default=2000, help="events per second")
    parser.add_argument("--warmup", type=float, default=120, help="seconds before memory counts")
    parser.add_argument("--sample-every", type=float, default=60, help="memory sample period")
    parser.add_argument("--brief-every", type=float, default=30)
    parser.add_argument("--upload-every", type=float, default=60)
    parser.add_argument("--webhook-every", type=float, default=60)
    parser.add_argument("--max-memory-growth", type=float, default=0.10)
    parser.add_argument(
        "--max-broker-bytes-per-event",
        type=float,
        default=BROKER_MAX_BYTES_PER_EVENT,
        help="the embedded broker's RSS growth per accepted event that fails the soak",
    )
    parser.add_argument("--demo", action="store_true", help="start fk up with demo data")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="trace fk up's Python heap (slower)"
    )
    parser.add_argument(
        "--probe",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="sample fk up's memory by kind from inside it every SECONDS (<workdir>/probe.jsonl; "
        "read it with `python -m soak.probe`)",
    )
    parser.add_argument(
        "--probe-trim",
        action="store_true",
        help="with --probe: return glibc's free memory after each sample (an experiment)",
    )
    parser.add_argument("--workdir", type=Path, help="kept after the run (default: a temp dir)")
    args = parser.parse_args()
    options = Options(
        duration=args.duration,
        rate=args.rate,
        events_rate=args.events_rate,
        warmup=args.warmup,
        sample_every=args.sample_every,
        brief_every=args.brief_every,
        upload_every=args.upload_every,
        webhook_every=args.webhook_every,
    )
    print(
        f"soak: {args.rate:.0f} req/s + {args.events_rate:.0f} events/s for {args.duration:.0f} s, "
        f"started {time.strftime('%Y-%m-%d %H:%M:%S')} on {os.cpu_count()} cores",
        flush=True,
    )
    if args.workdir:
        passed = asyncio.run(
            soak(
                options,
                args.workdir,
                args.max_memory_growth,
                args.demo,
                args.tracemalloc,
                args.probe,
                args.probe_trim,
                args.max_broker_bytes_per_event,
            )
        )
    else:
        with tempfile.TemporaryDirectory(prefix="fk-soak-") as tmp:
            passed = asyncio.run(
                soak(
                    options,
                    Path(tmp),
                    args.max_memory_growth,
                    args.demo,
                    args.tracemalloc,
                    args.probe,
                    args.probe_trim,
                    args.max_broker_bytes_per_event,
                )
            )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

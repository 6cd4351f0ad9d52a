"""Campaign command latency on an idle embedded platform (`python -m bench commands`).

`fk up` with no demo data; one client sends campaign commands one after another (a create,
then PATCHes at the version just returned), each answered once the campaign agent decided it
and the worker stored its effects. Beside it, in the same run: `GET /healthz` (the floor of an
answer from this API) and `GET /campaigns/{id}` (a read of what the commands wrote).
Target: commands p99 <= 100 ms.
"""

import tempfile
import time
from pathlib import Path

import httpx

from bench.common import free_port, median, percentile
from core.auth import issue_token
from core.settings import DEV_JWT_SECRET
from soak.processes import Platform


def _timed(
    call: "httpx.Client", method: str, url: str, **kwargs: object
) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = call.request(method, url, **kwargs)  # type: ignore[arg-type]
    return (time.perf_counter() - started) * 1000, response


def _median_ms(metrics: str, name: str, label: str) -> float:
    """The upper bound of the histogram bucket holding the median (`label` e.g. kind="update")."""
    buckets: list[tuple[float, float]] = []
    for line in metrics.splitlines():
        if line.startswith(f"{name}_bucket{{") and label in line:
            bound = line.split('le="')[1].split('"')[0]
            buckets.append((float(bound), float(line.split()[-1])))
    if not buckets:
        return float("nan")
    total = buckets[-1][1]
    return next(bound for bound, count in sorted(buckets) if count >= total / 2) * 1000


def run(commands: int = 500, campaigns: int = 20) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="fk-bench-commands-") as tmp:
        platform = Platform(Path(tmp), free_port(), {"FK_RATE_LIMIT_WRITES_PER_MINUTE": "0"})
        platform.start()
        try:
            token = issue_token(DEV_JWT_SECRET, org="demo")
            with httpx.Client(
                base_url=platform.base_url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ) as http:
                created: list[float] = []
                patched: list[float] = []
                healthz: list[float] = []
                reads: list[float] = []
                versions: dict[str, int] = {}
                for n in range(campaigns):
                    took, response = _timed(http, "POST", "/campaigns", json={"name": f"c{n}"})
                    response.raise_for_status()
                    created.append(took)
                    versions[response.json()["id"]] = response.json()["version"]
                ids = list(versions)
                for n in range(commands):
                    campaign_id = ids[n % len(ids)]
                    took, response = _timed(
                        http,
                        "PATCH",
                        f"/campaigns/{campaign_id}",
                        json={"budget": n + 1},
                        headers={"If-Match": f'"{versions[campaign_id]}"'},
                    )
                    response.raise_for_status()
                    patched.append(took)
                    versions[campaign_id] = response.json()["version"]
                    healthz.append(_timed(http, "GET", "/healthz")[0])
                    reads.append(_timed(http, "GET", f"/campaigns/{campaign_id}")[0])
                exported = http.get("/metrics").text
                agent_ms = _median_ms(exported, "fk_campaign_command_seconds", 'kind="update"')
                stages = {
                    stage: _median_ms(
                        exported, "fk_campaign_command_wait_seconds", f'stage="{stage}"'
                    )
                    for stage in ("answer", "store")
                }
        finally:
            platform.stop()
    figures = {
        "agent_update_p50": agent_ms,
        "answer_p50": stages["answer"],
        "store_p50": stages["store"],
        "create_p50": median(created),
        "create_p99": percentile(created, 99),
        "patch_p50": median(patched),
        "patch_p99": percentile(patched, 99),
        "healthz_p50": median(healthz),
        "healthz_p99": percentile(healthz, 99),
        "read_p50": median(reads),
        "read_p99": percentile(reads, 99),
    }
    print(
        f"campaign commands, idle embedded platform ({campaigns} creates, {commands} PATCHes"
        " in series), ms:"
    )
    print(f"  {'':12} {'p50':>8} {'p99':>8}")
    for name in ("create", "patch", "read", "healthz"):
        print(f"  {name:12} {figures[name + '_p50']:8.1f} {figures[name + '_p99']:8.1f}")
    print(
        "  medians by stage (bucket bounds): the agent's answer"
        f" <= {stages['answer']:.1f} ms, of which its own work (decide, record, publish,"
        f" answer) <= {agent_ms:.1f} ms; then the worker's store <= {stages['store']:.1f} ms"
    )
    commands_p99 = max(figures["create_p99"], figures["patch_p99"])
    verdict = "PASS" if commands_p99 <= 100 else "FAIL"
    print(
        f"  commands p99 {commands_p99:.1f} ms (target <= 100: {verdict}); "
        f"{commands_p99 / max(figures['healthz_p99'], 1e-9):.1f}x /healthz p99"
    )
    return figures

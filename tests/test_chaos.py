"""`make chaos` in CI: a short run that kills the embedded platform and the webhook receiver once
each under the mixed workload must end with every check against its reference passing."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import REPO

pytestmark = pytest.mark.slow


def test_a_short_chaos_run_matches_its_reference(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FK_")}
    args = ["--duration", "30", "--interval", "4", "--settle", "60", "--seed", "3"]
    result = subprocess.run(
        [sys.executable, "-m", "chaos", *args, "--workdir", str(tmp_path)],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = result.stdout
    assert result.returncode == 0, report + result.stderr[-3000:]
    assert "result: OK" in report
    kills = re.search(r"kills\s+platform (\d+), receiver (\d+)", report)
    assert kills is not None, report
    assert int(kills[1]) >= 1
    assert int(kills[2]) >= 1
    delivered = re.search(r"webhook ids delivered\s+(\d+)", report)
    assert delivered is not None
    assert int(delivered[1]) > 0

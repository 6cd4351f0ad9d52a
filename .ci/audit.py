"""Audit the pinned dependencies (constraints.txt) for known vulnerabilities with PyPI's
vulnerability data. Exit 0: no audited pin is known-vulnerable (pins that could not be audited are
listed); 1: a known-vulnerable pin (with `--strict`, also a pin that could not be audited and is
not held back with a reason); 2: the data could not be read at all. Never passes silently.

Where PyPI's per-release JSON (`/pypi/NAME/VERSION/json`) answers, pip-audit does the work
(`--strict`, so a pin it cannot look up fails the run). Where only the per-project JSON answers
(`/pypi/NAME/json`; some networks filter the other), its `vulnerabilities` -- PyPI's records for
the project's latest release -- audit every pin that is the latest release; a pin behind it cannot
be audited from that data: it is listed, with the reason when HELD_BACK gives one, and fails the
run only with `--strict` (otherwise any upstream release would turn CI red overnight)."""

import argparse
import concurrent.futures
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

# Pins behind their latest release because a dependent's bound holds them there.
HELD_BACK = {
    "click": "faust-streaming requires click<8.4",
    "croniter": "mode-streaming requires croniter<6",
    "venusian": "faust-streaming requires venusian==3.1.0",
    "numpy": "pandas and chdb's numpy; 2.5 has not been tried with the ETL and scoring suites",
}


def pins(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise SystemExit(f"audit: {path}: not an exact pin: {line!r}")
        out.append((name.strip(), version.strip()))
    return out


def fetch(url: str, timeout: float, tries: int = 3) -> dict[str, Any] | None:
    """The JSON at `url`; None for a 404. Other failures are tried again, then propagate."""
    for attempt in range(1, tries + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data: dict[str, Any] = json.load(response)
                return data
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            if attempt == tries:
                raise
        except OSError:
            if attempt == tries:
                raise
    raise AssertionError("unreachable")


def per_release_available(index: str, name: str, version: str, timeout: float) -> bool:
    return fetch(f"{index}/pypi/{name}/{version}/json", timeout) is not None


def run_pip_audit(constraints: Path, index: str) -> int:
    command = [
        sys.executable, "-m", "pip_audit", "--requirement", str(constraints), "--no-deps",
        "--disable-pip", "--strict", "--vulnerability-service", "pypi",
        "--progress-spinner", "off",
    ]  # fmt: skip
    if index != "https://pypi.org":
        raise SystemExit("audit: pip-audit only queries pypi.org; no other index is supported")
    return subprocess.call(command)


def audit_latest(
    entries: list[tuple[str, str]], index: str, timeout: float
) -> tuple[list[str], list[str], list[str]]:
    """(vulnerable, not audited, held back) lines, from the per-project JSON."""

    def one(entry: tuple[str, str]) -> tuple[str, str, dict[str, Any] | None]:
        name, version = entry
        return name, version, fetch(f"{index}/pypi/{name}/json", timeout)

    vulnerable, unaudited, held = [], [], []
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for name, version, project in pool.map(one, entries):
            if project is None:
                unaudited.append(f"{name}=={version}: not on the index")
                continue
            latest = project["info"]["version"]
            if version != latest:
                line = f"{name}=={version} (latest {latest})"
                if name.lower() in HELD_BACK:
                    held.append(f"{line}: {HELD_BACK[name.lower()]}")
                else:
                    unaudited.append(f"{line}: only the latest release can be audited here")
                continue
            for vuln in project.get("vulnerabilities") or []:
                if vuln.get("withdrawn"):
                    continue
                fixed = ", ".join(vuln.get("fixed_in") or []) or "no fix yet"
                vulnerable.append(f"{name}=={version}: {vuln.get('id')} (fixed in {fixed})")
    return vulnerable, unaudited, held


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("constraints", type=Path, nargs="?", default=Path("constraints.txt"))
    parser.add_argument("--index", default="https://pypi.org")
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument(
        "--strict", action="store_true", help="fail on pins that cannot be audited too"
    )
    args = parser.parse_args(argv)
    index = args.index.rstrip("/")
    entries = pins(args.constraints)
    try:
        if per_release_available(index, *entries[0], args.timeout):
            return run_pip_audit(args.constraints, index)
        vulnerable, unaudited, held = audit_latest(entries, index, args.timeout)
    except (OSError, ValueError, KeyError) as exc:
        print(
            f"audit: FAILED: cannot read vulnerability data from {index} ({exc}); "
            "nothing was audited",
            file=sys.stderr,
        )
        return 2
    print(
        f"audit: {len(entries) - len(unaudited) - len(held)} of {len(entries)} pins audited "
        f"against {index}'s vulnerability data (per-project JSON; per-release JSON unavailable)"
    )
    for line in held:
        print(f"  held back, not audited: {line}")
    for line in unaudited:
        print(f"  NOT AUDITED: {line}", file=sys.stderr)
    for line in vulnerable:
        print(f"  VULNERABLE: {line}", file=sys.stderr)
    if vulnerable or (unaudited and args.strict):
        print("audit: FAILED", file=sys.stderr)
        return 1
    print("audit: no known vulnerability in the audited pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())

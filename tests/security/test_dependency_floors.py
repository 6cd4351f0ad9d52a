"""Dependency floors past known advisories: a direct dependency's floor in pyproject.toml, and
every pin in constraints.txt, is at or above the first release that fixes each advisory listed
here. `make audit` checks the pins against PyPI's data; the floors are what an install outside the
pins (`pip install fk-platform` without constraints.txt) may resolve, which it cannot see."""

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]

# (distribution, first fixed release, advisory). Direct dependencies carry a floor in pyproject;
# transitive ones are held by their pin only.
ADVISORIES = [
    ("pyjwt", "2.12.0", "CVE-2026-32597: the crit header parameter not validated"),
    ("pyjwt", "2.13.0", "CVE-2026-48523: algorithm allow-list bypass with a PyJWK key"),
    ("pyjwt", "2.14.0", "CVE-2026-102267: PyJWKClient follows redirects off the JWKS origin"),
    ("pyjwt", "2.15.0", "CVE-2026-101918"),
    ("python-multipart", "0.0.26", "CVE-2026-40347: DoS by a large preamble or epilogue"),
    ("python-multipart", "0.0.30", "CVE-2026-53538: ';' as a form field separator"),
    ("starlette", "1.0.1", "CVE-2026-48710: Host header bypasses path-based authorisation"),
    ("starlette", "1.3.0", "PYSEC-2026-248: request.url host taken from the path"),
    ("starlette", "1.3.1", "FormParser max_fields / max_part_size enforced"),
    ("fastapi", "0.133.1", "the first release that allows Starlette 1.x (the fixes above)"),
    ("cryptography", "46.0.5", "CVE-2026-26007: subgroup attack on SECT curves"),
    ("cryptography", "50.0.0", "CVE-2026-69247: PKCS#7 EnvelopedData Bleichenbacher oracle"),
    ("orjson", "3.11.6", "CVE-2025-67221: unbounded recursion on deeply nested documents"),
    ("tqdm", "4.66.3", "CVE-2024-34062: eval of CLI arguments"),
    ("aiohttp", "3.14.4", "PYSEC-2026-4369/4370: Request.scheme from the request target"),
    ("h11", "0.16.0", "CVE-2025-43859: chunked-encoding request smuggling"),
    ("requests", "2.33.0", "CVE-2026-25645"),
    ("idna", "3.14", "GHSA-65pc-fj4g-8rjx: quadratic time on long inputs (CVE-2024-3651 bypass)"),
    ("urllib3", "2.6.3", "CVE-2026-21441: decompression limits skipped on redirects"),
]
TRANSITIVE = {"h11", "requests", "idna", "urllib3"}


def floors() -> dict[str, Version]:
    """The `>=` floor of every dependency and extra in pyproject.toml, by distribution."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for group in project["optional-dependencies"].values():
        lines += group
    out: dict[str, Version] = {}
    for line in lines:
        requirement = Requirement(line)
        for spec in requirement.specifier:
            if spec.operator == ">=":
                out[requirement.name.lower()] = Version(spec.version)
    return out


def pins() -> dict[str, Version]:
    out: dict[str, Version] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            out[name.lower().replace("_", "-")] = Version(version)
    return out


@pytest.mark.parametrize(("name", "fixed", "advisory"), ADVISORIES)
def test_the_floor_and_the_pin_are_past_the_fix(name: str, fixed: str, advisory: str) -> None:
    pinned = pins()
    assert name in pinned, f"{name} is not pinned in constraints.txt"
    assert pinned[name] >= Version(fixed), f"pin {name}=={pinned[name]} is before {advisory}"
    if name in TRANSITIVE:
        return
    declared = floors()
    assert name in declared, f"{name} has no floor in pyproject.toml"
    assert declared[name] >= Version(fixed), f"floor {name}>={declared[name]}: {advisory}"


def test_every_floor_is_installable_with_the_pins() -> None:
    """A floor above its pin would make `make install` unsatisfiable."""
    pinned = pins()
    above = {
        n: (str(v), str(pinned[n])) for n, v in floors().items() if n in pinned and v > pinned[n]
    }
    assert not above, above

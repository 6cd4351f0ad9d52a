"""Everything that runs is type-checked: each Python file of the repository is under mypy's
`files` (strict, as `make lint` runs it), except the test modules themselves and what ruff also
leaves out as reference material (pyproject's `extend-exclude`)."""

import os
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Directories that hold no code of ours: hidden ones (the virtual environments, caches) but CI's.
_NOT_OURS = {"__pycache__", "node_modules", "build"}


def python_files(root: Path, skipped: set[str]) -> list[str]:
    found = []
    for directory, subdirectories, files in os.walk(root):
        here = Path(directory).relative_to(root).as_posix()
        subdirectories[:] = [
            d
            for d in subdirectories
            if (not d.startswith(".") or d == ".ci")
            and d not in _NOT_OURS
            and (f"{here}/{d}" if here != "." else d) not in skipped
        ]
        found += [f"{here}/{f}" if here != "." else f for f in files if f.endswith(".py")]
    return sorted(found)


def test_mypy_checks_every_python_file_but_the_test_modules() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    mypy = pyproject["tool"]["mypy"]
    assert mypy["strict"] is True
    checked = [entry.rstrip("/") for entry in mypy["files"]]
    excluded = [re.compile(pattern) for pattern in mypy["exclude"]]
    skipped = set(pyproject["tool"]["ruff"]["extend-exclude"])
    files = python_files(REPO, skipped)
    assert "fk/cli.py" in files, "the walk finds the code"
    unchecked = [
        path
        for path in files
        if not any(path == entry or path.startswith(f"{entry}/") for entry in checked)
        and not any(pattern.search(path) for pattern in excluded)
    ]
    assert not unchecked, f"add these to [tool.mypy] files in pyproject.toml: {unchecked}"
    # The exclusion is the test modules only: their helpers (fixtures, fakes) are checked.
    assert [p for p in files if any(x.search(p) for x in excluded)] == [
        p for p in files if re.search(r"(^|/)tests/(.+/)?test_[^/]*\.py$", p)
    ]

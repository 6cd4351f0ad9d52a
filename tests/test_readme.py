"""The README as a newcomer uses it: every bash block of its "Five-minute walkthrough", pasted in
order into one shell against a live `fk up --demo` (the shared `demo_platform`), runs top to
bottom with no editing, and what it creates is visible to the dashboard's organisation; the API
section's examples, pasted after it, all answer with a success status. It opens with the two
commands, stays within a size budget with its topics, and every link it and docs/ make to a file
resolves."""

import re
import subprocess
from pathlib import Path

from tests.processes import REPO, PlatformProcess

README = REPO / "README.md"
WALKTHROUGH = "## Five-minute walkthrough"
README_BUDGET_BYTES = 18_000


def bash_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", markdown, re.M | re.S)


def section(markdown: str, title: str) -> str:
    return markdown.split(f"\n{title}\n", 1)[1].split("\n## ", 1)[0]


def walkthrough(markdown: str) -> list[str]:
    return bash_blocks(section(markdown, WALKTHROUGH))


def api_examples(markdown: str) -> str:
    """The API section's examples (they use the walkthrough's variables), each `curl` failing
    on an HTTP error status."""
    return "\n".join(bash_blocks(section(markdown, "## API"))).replace("curl -s ", "curl -sf ")


def test_no_example_needs_editing_before_it_runs() -> None:
    """No placeholder to replace by hand (`cmp_123`, `<id>`) and no organisation but `demo`,
    the one the start-up token and the dashboard use."""
    text = README.read_text()
    for block in bash_blocks(text):
        assert not re.search(r"(?<![<\w])<[A-Za-z_]+>", block), block
        assert "cmp_123" not in block, block
        assert "--org" not in block, block
    assert len(walkthrough(text)) >= 5


def test_the_two_commands_come_first() -> None:
    """Before anything else: one command brings the platform up with demo data, one runs the
    tests."""
    first = re.search(r"^```(\w*)\n(.*?)^```", README.read_text(), re.M | re.S)
    assert first is not None
    commands = [line.split("#", 1)[0].strip() for line in first[2].splitlines()]
    assert (first[1], commands) == ("bash", ["make run", "make test"])


def test_the_readme_stays_short_and_keeps_its_topics() -> None:
    """A screen-scroll per topic, the depth in docs/: a size budget, and the topics a reader
    comes for."""
    text = README.read_text()
    assert len(text.encode()) <= README_BUDGET_BYTES
    headings = re.findall(r"^#{2,3} (.+)$", text, re.M)
    for topic in (
        "Where it listens",
        "Five-minute walkthrough",
        "Producing and consuming with Kafka",
        "The engagement event (topic `engagement-events`)",
        "API",
        "Design decisions and trade-offs",
        "What comes next",
    ):
        assert topic in headings, headings
    design = section(text, "## Design decisions and trade-offs")
    for link in ("docs/delivery-semantics.md", "docs/windowing.md", "docs/architecture.md"):
        assert f"]({link})" in design, link


def test_every_link_to_a_file_of_the_repository_resolves() -> None:
    """The README and docs/ link to each other: no link names a file that is not there."""
    for page in [README, *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            assert (page.parent / path).exists(), f"{page.name}: {target}"


def test_the_walkthrough_runs_top_to_bottom_by_pasting(
    demo_platform: PlatformProcess, tmp_path: Path
) -> None:
    kafka = f"127.0.0.1:{demo_platform.env['FK_KAFKA_EMBEDDED_PORT']}"
    text = README.read_text()
    script = "\n".join([*walkthrough(text), 'echo "--- API examples"', api_examples(text)])
    script = script.replace("localhost:8000", f"127.0.0.1:{demo_platform.port}")
    script = script.replace("127.0.0.1:8000", f"127.0.0.1:{demo_platform.port}")
    script = script.replace("127.0.0.1:19092", kafka)
    # A checkout of its own: `.venv` is this one's; `data/` (the generated CSV) lands here.
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "FK_API_PORT": str(demo_platform.port)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr + demo_platform.log()

    campaign_id = re.search(r'"eventIds":\["(cmp_\w+)-1"', out)
    assert campaign_id is not None, out
    cid = campaign_id[1]
    assert '"accepted":2' in out
    assert '"window1h":{"views":2000,"likes":130,"comments":15,"shares":13' in out
    assert '"status":"scheduled","version":2' in out
    # The upload of the file `fk etl` loaded: what the README shows, nothing stored twice.
    assert '"inserted": 9941,\n  "duplicates": 0,' in out  # fk etl (indented JSON)
    assert '"inserted":0,"duplicates":9941' in out  # the same file through POST /etl/uploads
    assert (tmp_path / "data" / "performance.csv").exists()
    assert '"caption"' in out  # the brief, read back by its id
    assert f"CampaignStatusChanged {cid} 2" in out  # from Kafka
    assert '"name":"Summer Launch"' in out.split("--- API examples", 1)[1]

    # The dashboard's campaigns panel (its ten busiest, organisation `demo`) shows it by name.
    listed = demo_platform.http.get("/engagement/campaigns", params={"limit": 10}).json()
    mine = [c for c in listed["items"] if c["campaignId"] == cid]
    assert len(mine) == 1, listed
    # The walkthrough's two events and the API section's one.
    assert (mine[0]["name"], mine[0]["total"]["views"]) == ("Spring Launch", 2010)

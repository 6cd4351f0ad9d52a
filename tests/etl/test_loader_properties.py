"""Property-based checks of the CSV row validator on real chDB: whatever the bytes of a file, a
load either refuses the file as a whole with a reason (`LoadRefused`) or reports every row it
read as accepted or rejected (line, column, reason), and only rows that pass the rules are
stored. Never another exception."""

import csv
import io
import itertools
from pathlib import Path

from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from core.clickhouse import Store
from etl.columns import CANONICAL, OPTIONAL, REQUIRED
from etl.loader import LoadRefused, Outputs, load_file
from schemas.etl import LoadReport
from schemas.events import PLATFORMS

REASONS = {
    "missing value",
    "not an integer",
    "negative count",
    "views not positive",
    "unknown platform",
    "bad date",
    "wrong column count",
}
# Each example loads one file into chDB (~0.1 s): a modest, reproducible budget.
BUDGET = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_files = itertools.count()
LAST_LINE_WITHOUT_NEWLINE = b"c,i,x,1,1,1,1"

cells = st.one_of(
    st.integers(-5, 10**12).map(str),
    st.sampled_from(["", " ", "1.5", "1e3", "0x10", "+7", "007", "NaN", "-0", "9" * 25]),
    st.sampled_from([*PLATFORMS, "TikTok", " youtube ", "myspace"]),
    st.sampled_from(["2026-10-28", "2026-10-28T09:30:00Z", "2026-02-31", "1699999999000", "x"]),
    st.text(st.characters(codec="utf-8", exclude_characters="\r"), max_size=12),
    # No lone carriage return: Python's reader (the row-count oracle) ends a record there, RFC
    # 4180 and ClickHouse do not; test_any_bytes_under_a_valid_header covers those files.
    st.text(alphabet=",\"\n\t;\\'", max_size=4),
)


@st.composite
def csv_bodies(draw: st.DrawFn) -> bytes:
    """A header with every required column (and some optional and extra ones, in any order),
    then rows of plausible and hostile cells, some with the wrong number of fields."""
    names = list(REQUIRED) + draw(st.lists(st.sampled_from(OPTIONAL), unique=True, max_size=4))
    names += draw(st.lists(st.sampled_from(["notes", "extra", ""]), max_size=2))
    names = draw(st.permutations(names))
    width = st.integers(max(0, len(names) - 2), len(names) + 1)
    rows = draw(
        st.lists(width.flatmap(lambda n: st.lists(cells, min_size=n, max_size=n)), max_size=8)
    )
    out = io.StringIO()
    csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))).writerows([names, *rows])
    bom = draw(st.sampled_from(["", "\ufeff"]))
    return (bom + out.getvalue()).encode() + draw(
        st.sampled_from([b"", b"\n", LAST_LINE_WITHOUT_NEWLINE])
    )


def check_load(store: Store, tmp_path: Path, body: bytes) -> LoadReport | None:
    note(f"file bytes: {body!r}")
    path = tmp_path / f"perf-{next(_files)}.csv"
    path.write_bytes(body)
    refusal = ""
    try:
        report = load_file(store, path, Outputs.beside(path), org="acme")
    except LoadRefused as refused:
        refusal = str(refused) or "(no reason given)"
    if refusal:
        assert refusal != "(no reason given)", "a refusal needs a reason"
        return None
    assert report.accepted + report.rejected == report.rows
    assert report.inserted + report.duplicates == report.accepted
    assert 0 <= report.accepted <= report.rows
    for error in report.errors:
        assert error.reason in REASONS, error
        assert error.line >= 2, error
        assert error.column is None or error.column in CANONICAL, error
    if report.rejected:
        assert report.errors or report.errors_omitted
    # Only rows that pass every rule are ever stored.
    assert store.query_rows_sync(
        "SELECT count() FROM engagement_events WHERE source = 'batch' AND (views = 0"
        " OR campaign_id = '' OR influencer_id = ''"
        " OR platform NOT IN ('instagram', 'tiktok', 'youtube', 'x', 'facebook'))"
    ) == [(0,)]
    return report


@BUDGET
@given(body=csv_bodies())
@example(body=b"campaignId,influencerId,platform,views,likes,comments,shares\n")
@example(body=b"campaignId,influencerId,platform,views,likes,comments,shares\nc,i,x,1,1,1,1")
def test_any_rows_under_a_valid_header(store: Store, tmp_path: Path, body: bytes) -> None:
    report = check_load(store, tmp_path, body)
    assert report is not None, "a file with every required column is loaded"
    records = csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""))
    rows = [r for r in records if r]  # blank lines are no rows
    assert report.rows == len(rows) - 1


HEADER = b"campaignId,influencerId,platform,views,likes,comments,shares\n"


@BUDGET
@given(tail=st.binary(max_size=200))
@example(tail=b"\xff\xfe,\x00\n")
@example(tail=b'"unterminated,1,2\n')
@example(tail=b"0,0,0,0,\r0\n")  # a lone CR inside a record
def test_any_bytes_under_a_valid_header(store: Store, tmp_path: Path, tail: bytes) -> None:
    check_load(store, tmp_path, HEADER + tail)


@BUDGET
@given(body=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
@example(body=b"")
@example(body=b"\xef\xbb\xbf")
@example(body=b"\xff\n")
def test_any_bytes_as_a_file(store: Store, tmp_path: Path, body: bytes) -> None:
    check_load(store, tmp_path, body)

"""Batch loads on real chDB: every rejection reason with its line and column, the CSV dialect
variants, whole-file refusals, idempotent reloads and the creators dimension."""

import csv
from pathlib import Path

import pytest

from core.clickhouse import Store
from etl.loader import LoadRefused, Outputs, load_file
from schemas.etl import LoadReport

HEADER = "campaignId,influencerId,platform,postId,postedAt,views,likes,comments,shares,saves"


def load(store: Store, path: Path, **kwargs: object) -> LoadReport:
    kwargs.setdefault("org", "acme")
    return load_file(store, path, Outputs.beside(path), **kwargs)  # type: ignore[arg-type]


def write(tmp_path: Path, text: str, name: str = "performance.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def stored(store: Store) -> list[tuple[object, ...]]:
    return store.query_rows_sync(
        "SELECT post_id, views, likes, comments, shares, saves, source, campaign_id "
        "FROM engagement_events ORDER BY post_id"
    )


def test_every_rejection_reason_with_line_and_column(store: Store, tmp_path: Path) -> None:
    rows = [
        HEADER,
        "c1,i1,instagram,ok1,2026-10-28T09:30:00Z,100,10,2,1,",  # 2: valid
        "c1,,instagram,p3,,100,10,2,1,",  # 3: missing influencerId
        "c1,i1,instagram,p4,,1.5,10,2,1,",  # 4: views not an integer
        "c1,i1,instagram,p5,,100,-1,2,1,",  # 5: negative likes
        "c1,i1,instagram,p6,,0,1,2,1,",  # 6: views not positive
        "c1,i1,myspace,p7,,100,10,2,1,",  # 7: unknown platform
        "c1,i1,tiktok,p8,2026-02-31,100,10,2,1,",  # 8: bad date
        "c1,i1,tiktok,p9,,100,10,2",  # 9: too few fields
        "c1,i1,tiktok,p10,,100,10,2,1,,surplus",  # 10: too many fields
        "c1,i1,tiktok,p11,,,abc,2,1,-4",  # 11: several problems at once
        "c1,i1,TikTok,ok2,2026-10-28,5,0,0,0,7",  # 12: valid (platform case-insensitive)
    ]
    path = write(tmp_path, "\n".join(rows) + "\n")
    report = load(store, path)
    assert (report.rows, report.accepted, report.rejected) == (11, 2, 9)
    assert [(e.line, e.column, e.reason) for e in report.errors] == [
        (3, "influencerId", "missing value"),
        (4, "views", "not an integer"),
        (5, "likes", "negative count"),
        (6, "views", "views not positive"),
        (7, "platform", "unknown platform"),
        (8, "postedAt", "bad date"),
        (9, None, "wrong column count"),
        (10, None, "wrong column count"),
        (11, "views", "missing value"),
        (11, "likes", "not an integer"),
        (11, "saves", "negative count"),
    ]
    assert stored(store) == [
        ("ok1", 100, 10, 2, 1, 0, "batch", "c1"),
        ("ok2", 5, 0, 0, 0, 7, "batch", "c1"),
    ]
    assert report.rejected_file is not None
    with Path(report.rejected_file).open(newline="") as fh:
        rejected = list(csv.reader(fh))
    assert rejected[0] == ["line", "column", "reason", *HEADER.split(",")]
    assert [r[0] for r in rejected[1:]] == [str(n) for n in range(3, 12)]
    assert rejected[-1][:3] == [
        "11",
        "views;likes;saves",
        "missing value;not an integer;negative count",
    ]
    assert rejected[-1][3:] == ["c1", "i1", "tiktok", "p11", "", "", "abc", "2", "1", "-4"]
    assert Path(path.parent / "performance.report.json").exists()


def test_bom_crlf_quotes_snake_case_and_extra_columns(store: Store, tmp_path: Path) -> None:
    text = (
        "\ufeffviews,Influencer_ID,campaign_id,platform,notes,likes,comments,shares,post_id\r\n"
        '100,i1,"cmp, with comma",youtube,"a note\r\nover two lines",10,1,1,a\r\n'
        "\r\n"
        '200,i2,c2,x,"three\nline\nnote",20,2,2,b\r\n'
        "-5,i3,c2,x,,1,1,1,c\r\n"
        '300,i4,c2,x,"",30,3,"3",d'
    )
    report = load(store, write(tmp_path, text))
    assert (report.rows, report.accepted, report.rejected) == (4, 3, 1)
    # Line 1 header, 2-3 first row, 4 blank, 5-7 second row, 8 the bad one.
    assert [(e.line, e.column, e.reason) for e in report.errors] == [(8, "views", "negative count")]
    assert report.extra_columns == ["notes"]
    assert [r[:2] + r[-1:] for r in stored(store)] == [
        ("a", 100, "cmp, with comma"),
        ("b", 200, "c2"),
        ("d", 300, "c2"),
    ]


def test_a_field_spelled_like_a_null_is_kept_as_text(store: Store, tmp_path: Path) -> None:
    report = load(store, write(tmp_path, HEADER + "\n\\N,i1,x,p,,1,0,0,0,\n"))
    assert report.accepted == 1
    assert store.query_rows_sync("SELECT campaign_id FROM engagement_events") == [("\\N",)]


def test_missing_required_columns_refuse_the_whole_file(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "campaign_id,influencerId,views,likes\nc,i,1,1\n")
    with pytest.raises(LoadRefused, match="platform, comments, shares"):
        load(store, path)
    assert stored(store) == []


@pytest.mark.parametrize("text", ["", "\ufeff", "\n\n"])
def test_an_empty_file_is_refused(store: Store, tmp_path: Path, text: str) -> None:
    with pytest.raises(LoadRefused, match="empty"):
        load(store, write(tmp_path, text))


def test_loading_the_same_content_twice_stores_it_once(store: Store, tmp_path: Path) -> None:
    first = write(tmp_path, HEADER + "\nc,i,x,p1,,10,1,0,0,\nc,i,x,p2,,20,2,0,0,\n", "a.csv")
    # The same rows again, in another column order and spelling, one new row, one repeated.
    second = write(
        tmp_path,
        "views,likes,comments,shares,campaign_id,influencer_id,platform,post_id\n"
        "20,2,0,0,c,i,x,p2\n30,3,0,0,c,i,x,p3\n30,3,0,0,c,i,x,p3\n",
        "b.csv",
    )
    assert (load(store, first).inserted, load(store, first).inserted) == (2, 0)
    report = load(store, second)
    assert (report.accepted, report.inserted, report.duplicates) == (3, 1, 2)
    assert store.query_rows_sync("SELECT count(), sum(views) FROM engagement_events") == [(3, 60)]


def test_repeated_rows_of_a_first_load_are_stored_once(store: Store, tmp_path: Path) -> None:
    # A store with no batch-loaded events takes the one-insert path: repeats inside the file
    # are still stored once, the first row winning (its followers and row number).
    path = write(
        tmp_path,
        "campaignId,influencerId,platform,postId,views,likes,comments,shares,followers\n"
        "c,i,x,p1,10,1,0,0,100\nc,i,x,p2,20,2,0,0,\nc,i,x,p1,10,1,0,0,999\nc,i,x,p2,20,2,0,0,\n",
    )
    report = load(store, path)
    assert (report.accepted, report.inserted, report.duplicates) == (4, 2, 2)
    assert store.query_rows_sync(
        "SELECT post_id, followers, kafka_offset FROM engagement_events ORDER BY post_id"
    ) == [("p1", 100, 0), ("p2", None, 1)]
    assert load(store, path).inserted == 0


def test_creator_attributes_merge_newest_first(store: Store, tmp_path: Path) -> None:
    header = "campaignId,influencerId,platform,postedAt,views,likes,comments,shares,"
    header += "followers,handle,category,country"
    load(
        store,
        write(
            tmp_path,
            header + "\nc,i1,x,2026-01-01,1,0,0,0,100,@old,Food,IN\n"
            "c,i1,x,2026-02-01,2,0,0,0,150,@new,,\n",
            "a.csv",
        ),
    )
    load(store, write(tmp_path, header + "\nc,i1,x,2025-12-01,3,0,0,0,90,,Travel,\n", "b.csv"))
    assert store.query_rows_sync(
        "SELECT handle, category, country, followers FROM creators FINAL"
    ) == [("@new", "Travel", "IN", 150)]


def test_line_numbers_stay_exact_across_many_blocks(store: Store, tmp_path: Path) -> None:
    # Rows are parsed by one thread (it numbers them) and checked by two, in blocks of 16k:
    # rejected rows far into the file, after quoted line breaks, keep their physical lines.
    lines = [HEADER]
    expected: list[tuple[int, str, str]] = []
    line = 2  # where the next row starts
    for n in range(60_000):
        if n % 7919 == 0:
            lines.append(f'c1,i{n},instagram,"multi\nline {n}",,100,10,2,1,')
        elif n % 4001 == 0:
            lines.append(f"c1,i{n},myspace,p{n},,100,10,2,1,")
            expected.append((line, "platform", "unknown platform"))
        else:
            lines.append(f"c1,i{n % 500},tiktok,p{n},,{n + 1},1,0,0,")
        line += 1 + lines[-1].count("\n")
    path = write(tmp_path, "\n".join(lines) + "\n")
    report = load(store, path)
    assert (report.rows, report.rejected) == (60_000, len(expected))
    assert [(e.line, e.column, e.reason) for e in report.errors] == expected
    assert expected[-1][0] > 50_000
    with Path(report.rejected_file or "").open(newline="") as fh:
        assert [int(r[0]) for r in list(csv.reader(fh))[1:]] == [e[0] for e in expected]

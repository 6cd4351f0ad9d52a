"""One loader for both shapes: a ClickHouse server is sent the file as the body of one INSERT
and parses it with the statement the embedded store runs on the file itself. Here, on chDB, the
server's statement reads the same bytes through `format()` instead of `input()` (which only a
server has): the staged rows and the load reports are the same as the embedded path's. The
server itself runs in tests/deploy/test_containers.py."""

import re
from pathlib import Path
from typing import Any

import pytest

from core.clickhouse import Store
from etl import queries
from etl.columns import resolve_header
from etl.loader import Outputs, load_file, read_header

HEADER = "campaignId,influencerId,platform,postId,postedAt,views,likes,comments,shares,saves,handle"


def tricky_csv(rows: int) -> str:
    """Quoted line breaks, blank lines, wrong column counts, every rejection, across blocks."""
    lines = ["\ufeff" + HEADER]
    for i in range(rows):
        kind = i % 7
        if kind == 0:
            lines.append(
                f'c{i % 3},i{i % 11},instagram,p{i},2026-10-28T09:30:00Z,{i + 1},1,2,3,,"a\nb"'
            )
        elif kind == 1:
            lines.append("")
        elif kind == 2:
            lines.append(f"c1,i1,tiktok,p{i},,{i + 1},1,2")
        elif kind == 3:
            lines.append(f"c1,,myspace,p{i},2026-02-31,-1,x,2,3,4,h,surplus")
        elif kind == 4:
            lines.append(f"c2,i2,YouTube,p{i},2026-10-28,{i + 1},0,0,0,7,h{i}")
        else:
            lines.append(f"c{i % 5},i{i % 13},x,p{i % 50},,{i % 9 + 1},1,1,1,1,")
    return "\n".join(lines) + "\n"


def server_statement_on_chdb(store: Store) -> Any:
    """`store.command_sync` as a server would run `stage_from_body`: the body read by
    `format(CSV, …, body)` where a server reads it by `input(…)`."""
    run = store.command_sync
    bodies: list[int] = []

    def command(sql: str, parameters: Any = None, *, data: Any = None, settings: Any = None) -> Any:
        if data is None:
            return run(sql, parameters, settings=settings)
        bodies.append(len(data))
        assert sql.rstrip().endswith("FORMAT CSV")
        sql = re.sub(r"input\('([^']*)'\)", r"format(CSV, '\1', {body:String})", sql)
        sql = sql.rstrip().removesuffix("FORMAT CSV")
        return run(sql, {**(parameters or {}), "body": data.decode()}, settings=settings)

    command.bodies = bodies  # type: ignore[attr-defined]
    return command


def test_the_servers_statement_stages_the_rows_the_file_read_does(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "p.csv"
    path.write_text(tricky_csv(40_000))  # more rows than a block (16,384)
    names, skip = read_header(path)
    header = resolve_header(names)
    load_time = {"load_time": "2026-12-01 00:00:00.000"}
    store.command_sync(
        queries.stage(header, "from_file"),
        {
            "path": str(path),
            "structure": queries.file_structure(header),
            "skip": skip,
            **load_time,
        },
    )
    store.command_sync(queries.staging_table(header, "from_body"), load_time)
    rows = queries.staged_rows(
        header,
        f"format(CSV, '{queries.file_structure(header)}', {{body:String}})",
        "rowNumberInAllBlocks()",
    )
    store.command_sync(
        f"INSERT INTO from_body {rows}",
        {**load_time, "body": path.read_text()},
        settings=queries.body_settings(skip),
    )
    everything = "SELECT * FROM {t:Identifier} ORDER BY rn"
    from_file = store.query_rows_sync(everything, {"t": "from_file"})
    assert len(from_file) > 30_000
    assert store.query_rows_sync(everything, {"t": "from_body"}) == from_file


def test_a_load_against_a_server_reports_what_the_embedded_load_does(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "p.csv"
    path.write_text(tricky_csv(3_000))
    embedded = load_file(store, path, Outputs.beside(path, tmp_path / "embedded"), org="acme")
    monkeypatch.setattr(store, "embedded", False)
    command = server_statement_on_chdb(store)
    monkeypatch.setattr(store, "command_sync", command)
    server = load_file(store, path, Outputs.beside(path, tmp_path / "server"), org="globex")
    assert command.bodies == [path.stat().st_size]  # the file went as the body, once
    different = {"load_id", "seconds", "rejected_file"}
    assert server.model_dump(exclude=different) == embedded.model_dump(exclude=different)
    assert server.inserted > 0
    assert (tmp_path / "server" / "p.rejected.csv").read_bytes() == (
        tmp_path / "embedded" / "p.rejected.csv"
    ).read_bytes()
    again = load_file(store, path, Outputs.beside(path, tmp_path / "again"), org="globex")
    assert (again.inserted, again.duplicates) == (0, server.accepted)

"""Partitions read without holes: a fetched partition whose records skip offsets (as the embedded
broker answers under concurrent producers) ends at the hole, so the next fetch asks for it again;
a hole that stays is stepped over after a while, and compacted topics keep theirs."""

from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from core import contiguous, kafka  # noqa: F401  (importing core.kafka installs the reader)


def _batch(*offsets: int) -> bytes:
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 20)
    for n, offset in enumerate(offsets):
        builder.append(n, timestamp=1, key=None, value=f"v{offset}".encode(), headers=[])
    buffer = builder.build()
    # A batch's records are numbered from its base offset (bytes 0-8) by their deltas.
    return offsets[0].to_bytes(8, "big") + bytes(buffer[8:])


def _fetched(topic: str, fetch_offset: int, *batches: tuple[int, ...]) -> Any:
    data = b"".join(_batch(*b) for b in batches)
    return fetcher.PartitionRecords(
        TopicPartition(topic, 0),
        MemoryRecords(data),
        [],
        fetch_offset,
        None,
        None,
        True,
        fetcher.READ_UNCOMMITTED,
    )


def _offsets(records: Iterator[object]) -> list[int]:
    return [r.offset for r in records]  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _no_open_holes() -> Iterator[None]:
    contiguous.HOLES.first_seen.clear()
    yield
    contiguous.HOLES.first_seen.clear()


def test_every_consumer_reads_through_the_contiguous_records() -> None:
    assert fetcher.PartitionRecords is contiguous.ContiguousPartitionRecords


def test_a_partition_without_holes_is_read_whole() -> None:
    records = _fetched("t-engagement-events", 5, (5, 6), (7, 8, 9))
    assert _offsets(records) == [5, 6, 7, 8, 9]
    assert records.next_fetch_offset == 10


def test_a_hole_between_batches_ends_the_read_at_the_first_missing_offset() -> None:
    records = _fetched("t-campaign-commands", 5, (5, 6), (9,))
    assert _offsets(records) == [5, 6]
    # The consumer's position: its next fetch asks for offset 7 again.
    assert records.next_fetch_offset == 7
    # Fetched again once the broker shows 7 and 8: read on, and the hole is closed.
    assert _offsets(_fetched("t-campaign-commands", 7, (7, 8), (9,))) == [7, 8, 9]
    assert contiguous.HOLES.first_seen == {}


def test_a_hole_before_the_first_batch_reads_nothing() -> None:
    records = _fetched("t-campaign-commands", 499, (501,))
    assert _offsets(records) == []
    assert records.next_fetch_offset == 499


def test_a_hole_that_stays_is_stepped_over_after_the_patience(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _offsets(_fetched("t-engagement-events", 5, (5,), (8,))) == [5]
    monkeypatch.setattr(contiguous, "PATIENCE_SECONDS", 0.0)
    records = _fetched("t-engagement-events", 6, (8,))
    assert _offsets(records) == [8]
    assert records.next_fetch_offset == 9
    assert contiguous.HOLES.first_seen == {}


@pytest.mark.parametrize("topic", ["fkapp-campaigns-changelog", "fkapp-__assignor-__leader"])
def test_compacted_topics_keep_their_holes(topic: str) -> None:
    assert _offsets(_fetched(topic, 5, (5, 6), (9,))) == [5, 6, 9]

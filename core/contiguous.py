"""Reading a partition without holes, whatever the broker answers.

In a topic that is not compacted every record has an offset, one after another (a transaction's
marker takes one too, and the reader steps over it). The embedded broker (Tansu 0.6.0) breaks
this under concurrent producers: a fetch at offset N can be answered with records from N+2 while
N and N+1, already acknowledged to their producers, are not yet readable. aiokafka takes such a
hole for compaction and moves its position past it, so those records were never read: a
campaign command sent by a second API process went unanswered (a 503 after
`FK_COMMAND_TIMEOUT_SECONDS`), and an engagement event from a second producer could be lost.

`install()` makes every aiokafka consumer of the process stop at a hole in a topic that is not
compacted and fetch again from the hole's first offset, where the records appear a few
milliseconds later. A hole still there after `PATIENCE_SECONDS` is taken as real (records gone
from the log as they were read, e.g. by retention), logged, counted and stepped over.

Compacted topics keep their holes: Faust's table changelogs (`…-changelog`) and internal
topics (`__…`, Faust's `…-__assignor-__leader`).
"""

import time
from collections.abc import Iterator
from typing import Any

import structlog
from aiokafka.consumer import fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.structs import ConsumerRecord

from core.metrics import KAFKA_READ_HOLES

log = structlog.get_logger(__name__)

PATIENCE_SECONDS = 5.0
"""How long a hole is fetched again before its records count as gone."""
_MAX_HOLES = 10_000


def compacted(topic: str) -> bool:
    """Whether the topic may have holes by design (compaction)."""
    return topic.endswith("-changelog") or "__" in topic


class _Holes:
    """When each open hole (topic, partition, first missing offset) was first met."""

    def __init__(self) -> None:
        self.first_seen: dict[tuple[str, int, int], float] = {}

    def wait(self, topic: str, partition: int, offset: int) -> bool:
        """Whether to fetch again from `offset` rather than step over the hole there."""
        key = (topic, partition, offset)
        now = time.monotonic()
        if len(self.first_seen) >= _MAX_HOLES:
            self.first_seen.clear()
        first = self.first_seen.setdefault(key, now)
        if first == now:
            KAFKA_READ_HOLES.labels("refetched").inc()
            log.debug("kafka.read_hole", topic=topic, partition=partition, offset=offset)
        if now - first < PATIENCE_SECONDS:
            return True
        del self.first_seen[key]
        KAFKA_READ_HOLES.labels("skipped").inc()
        log.error(
            "kafka.read_hole_skipped",
            topic=topic,
            partition=partition,
            offset=offset,
            waited_seconds=round(now - first, 1),
        )
        return False

    def closed(self, topic: str, partition: int, offset: int) -> None:
        self.first_seen.pop((topic, partition, offset), None)


HOLES = _Holes()


class ContiguousPartitionRecords(fetcher.PartitionRecords):  # type: ignore[misc]
    """aiokafka's records of one fetched partition (`PartitionRecords._unpack_records`, 0.14),
    but ending at a hole: its position stays at the first missing offset, so the consumer's next
    fetch asks for it again."""

    def _unpack_records(self) -> Iterator[ConsumerRecord[Any, Any]]:
        tp = self._tp
        guarded = not compacted(tp.topic)
        records = self._records
        while records.has_next():
            batch = records.next_batch()
            if self._check_crcs and not batch.validate_crc():
                raise CorruptRecordException(f"Invalid CRC - {tp}")
            if self._isolation_level == fetcher.READ_COMMITTED and batch.producer_id is not None:
                self._consume_aborted_up_to(batch.base_offset)
                if batch.is_control_batch and self._contains_abort_marker(batch):
                    self._aborted_producers.discard(batch.producer_id)
                if batch.is_transactional and batch.producer_id in self._aborted_producers:
                    self.next_fetch_offset = batch.next_offset
                    continue
            if batch.is_control_batch:
                self.next_fetch_offset = batch.next_offset
                continue
            for record in batch:
                if record.offset < self.next_fetch_offset:
                    continue  # a compressed batch's records before the fetched offset
                expected = self.next_fetch_offset
                if guarded and record.offset > expected:
                    if HOLES.wait(tp.topic, tp.partition, expected):
                        return
                elif guarded and HOLES.first_seen:
                    HOLES.closed(tp.topic, tp.partition, expected)
                consumer_record = self._consumer_record(tp, record)
                self.next_fetch_offset = record.offset + 1
                yield consumer_record
            self.next_fetch_offset = batch.next_offset


def install() -> None:
    """Every aiokafka consumer of this process reads through `ContiguousPartitionRecords`."""
    fetcher.PartitionRecords = ContiguousPartitionRecords

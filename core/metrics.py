"""Prometheus metrics of every component, named fk_<subsystem>_<what>; labels are bounded sets."""

import asyncio
import time
from collections.abc import Sequence

import numpy as np
from prometheus_client import Counter, Gauge, Histogram


def observe_many(histogram: Histogram, amounts: Sequence[float] | np.ndarray) -> None:
    """`histogram.observe` for each amount, in one pass: a bucket increment per distinct bucket
    rather than per value (the engagement consumer observes every event's freshness).

    Uses the histogram's own bucket bounds and values (prometheus_client internals, pinned in
    constraints.txt; a unit test holds it equal to `observe`). Not for labelled parents.
    """
    values = np.asarray(amounts, dtype=np.float64)
    if not values.size:
        return
    bounds = histogram._upper_bounds
    # side="left": the first bound >= the value, as `observe` picks it.
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    histogram._sum.inc(float(values.sum()))
    for index in np.flatnonzero(counts):
        histogram._buckets[int(index)].inc(int(counts[index]))


PIPELINE_EVENTS_IN = Counter("fk_pipeline_events_in_total", "Messages read from engagement-events.")
PIPELINE_EVENTS_STORED = Counter(
    "fk_pipeline_events_stored_total", "Valid, first-seen events written to the store."
)
PIPELINE_DUPLICATES = Counter(
    "fk_pipeline_duplicates_total", "Valid events dropped because their eventId was already seen."
)
PIPELINE_DEAD_LETTERS = Counter(
    "fk_pipeline_dead_letters_total", "Messages sent to the dead-letter topic.", ["reason"]
)
SINK_BATCH_ROWS = Histogram(
    "fk_sink_batch_rows",
    "Rows per store insert.",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10_000, 20_000, 50_000),
)
SINK_INSERT_SECONDS = Histogram(
    "fk_sink_insert_seconds",
    "Latency of one store insert.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
SINK_FAILURES = Counter("fk_sink_failures_total", "Store inserts that failed and were retried.")
PIPELINE_FRESHNESS_SECONDS = Histogram(
    "fk_pipeline_freshness_seconds",
    "From the message's broker timestamp to its events being queryable in the store.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
ASSIGNED_PARTITIONS = Gauge(
    "fk_pipeline_assigned_partitions", "Partitions of engagement-events this worker owns."
)
CONSUMER_LAG = Gauge(
    "fk_pipeline_consumer_lag_messages",
    "High-water mark minus position, per partition of engagement-events.",
    ["partition"],
)
CONSUMER_STALLED = Gauge(
    "fk_pipeline_consumer_stalled",
    "1 while the consumer (engagement, campaigns) has read nothing for 30 s though its"
    " partitions have unread records.",
    ["consumer"],
)
CONSUMER_RECONNECTS = Counter(
    "fk_pipeline_consumer_reconnects_total",
    "Times a stalled consumer dropped its broker connections to reconnect.",
    ["consumer"],
)
KAFKA_READ_HOLES = Counter(
    "fk_kafka_read_holes_total",
    "Holes in a fetched partition of a topic that is not compacted (core/contiguous.py):"
    " refetched until filled, or skipped as gone after waiting.",
    ["outcome"],
)
EMBEDDED_BROKER_RESIDENT_BYTES = Gauge(
    "fk_embedded_broker_resident_bytes",
    "Resident memory of the embedded broker this process runs (it keeps every message in"
    " memory), sampled every few seconds; 0 in a process that runs none.",
)

API_REQUESTS = Counter(
    "fk_api_requests_total", "HTTP requests by route template.", ["method", "route", "status"]
)
API_REQUEST_SECONDS = Histogram(
    "fk_api_request_seconds",
    "HTTP request latency by route template.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
API_RATE_LIMITED = Counter(
    "fk_api_rate_limited_total",
    "Requests refused with 429 by a per-caller rate limit.",
    ["limit"],
)
API_CACHE = Counter("fk_api_cache_total", "Metrics cache lookups.", ["result"])

CAMPAIGN_EVENTS = Counter(
    "fk_campaign_events_total", "Campaign events published by the campaign agent.", ["type"]
)
CAMPAIGN_COMMANDS = Counter(
    "fk_campaign_commands_total", "Campaign commands decided by the agent.", ["kind", "outcome"]
)
CAMPAIGN_AGENT_PARTITIONS = Gauge(
    "fk_campaign_agent_partitions",
    "campaign-commands partitions this worker's campaign agent owns (after its last rebalance"
    " and table recovery).",
)
CAMPAIGN_COMMAND_WAIT_SECONDS = Histogram(
    "fk_campaign_command_wait_seconds",
    "What a command waited for, by stage: its delivery to the agent (sent to picked up, on the"
    " agent's clock), the agent's answer (sent to answered, on the client's), then the store"
    " (answered to stored: the worker's projection, or the client's own insert).",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
CAMPAIGN_COMMAND_SECONDS = Histogram(
    "fk_campaign_command_seconds",
    "Time the campaign agent took to decide, record, publish and answer a command.",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
CAMPAIGN_EVENTS_CONSUMED = Counter(
    "fk_campaign_events_consumed_total", "Messages read from campaign-events by the worker."
)
CAMPAIGN_CLOCK_TRANSITIONS = Counter(
    "fk_campaign_clock_transitions_total", "Transitions made by start and end dates.", ["status"]
)
WEBHOOK_ATTEMPTS = Counter(
    "fk_webhook_attempts_total", "Delivery attempts by result.", ["kind", "status"]
)
WEBHOOK_DEAD_LETTERS = Counter(
    "fk_webhook_dead_letters_total", "Deliveries that failed for good (dead-lettered)."
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "fk_webhook_attempt_seconds",
    "Latency of one delivery attempt.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WEBHOOK_DELIVERY_SECONDS = Histogram(
    "fk_webhook_delivery_seconds",
    "From the campaign event to its successful delivery.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30, 300, 3600),
)
WEBHOOK_HELD = Gauge("fk_webhook_deliveries_held", "Deliveries queued or in flight on this worker.")
WEBHOOK_DLQ_SIZE = Gauge(
    "fk_webhook_dlq_size",
    "Dead-lettered deliveries (awaiting replay) of the partitions this worker owns, per sweep.",
)
WEBHOOK_ENDPOINTS_DISABLED = Counter(
    "fk_webhook_endpoints_disabled_total", "Endpoints disabled because they answered 410 Gone."
)
LLM_CALLS = Counter(
    "fk_llm_calls_total",
    "Model requests by outcome: ok, rate_limited, server_error, timeout, connection, client_error.",
    ["outcome"],
)
LLM_TOKENS = Counter("fk_llm_tokens_total", "Model tokens used.", ["kind"])
LLM_LATENCY_SECONDS = Histogram(
    "fk_llm_latency_seconds",
    "Latency of one model request (each attempt).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120),
)
LLM_CACHE = Counter("fk_llm_cache_total", "Brief cache lookups.", ["result"])
BRIEFS = Counter(
    "fk_briefs_total",
    "Brief requests by outcome (ok, cached, ungrounded, refused, invalid, upstream, deadline).",
    ["outcome"],
)
ETL_ROWS = Counter("fk_etl_rows_total", "CSV rows read by batch loads.", ["result"])
ETL_LOAD_SECONDS = Histogram(
    "fk_etl_load_seconds",
    "Wall time of one batch load.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
ROLLUPS_PUBLISHED = Counter(
    "fk_rollups_published_total",
    "Per-minute engagement rollups: sent to engagement-rollups, or dropped as too late.",
    ["result"],
)
INSIGHTS_SENT = Counter(
    "fk_insights_sent_total", "CampaignInsight events sent, by kind and status.", ["kind", "status"]
)

EVENT_LOOP_LAG_SECONDS = Histogram(
    "fk_event_loop_lag_seconds",
    "How late a timer ran on this process's event loop (sampled every 50 ms): what every"
    " await that is ready to go on waits behind.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


async def watch_event_loop(interval: float = 0.05) -> None:
    """Observe `EVENT_LOOP_LAG_SECONDS` until cancelled."""
    while True:
        due = time.perf_counter() + interval
        await asyncio.sleep(interval)
        EVENT_LOOP_LAG_SECONDS.observe(max(time.perf_counter() - due, 0.0))

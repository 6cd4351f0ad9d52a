"""Prometheus metrics of every component, named fk_<subsystem>_<what>; labels are bounded sets."""

from prometheus_client import Counter, Gauge, Histogram

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

API_REQUESTS = Counter(
    "fk_api_requests_total", "HTTP requests by route template.", ["method", "route", "status"]
)
API_REQUEST_SECONDS = Histogram(
    "fk_api_request_seconds",
    "HTTP request latency by route template.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
API_CACHE = Counter("fk_api_cache_total", "Metrics cache lookups.", ["result"])

ETL_ROWS = Counter("fk_etl_rows_total", "CSV rows read by batch loads.", ["result"])
ETL_LOAD_SECONDS = Histogram(
    "fk_etl_load_seconds",
    "Wall time of one batch load.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)

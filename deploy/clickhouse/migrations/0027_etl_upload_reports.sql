-- What a CSV upload leaves for its organisation, readable through any API replica: its report
-- (the answer of POST /etl/uploads) and its rejected rows (GET /etl/uploads/{loadId}/rejected),
-- the rejected CSV in parts of about 1 MiB in file order, so neither keeping nor serving a large
-- one holds it whole in memory. A load's report row is written after all its parts: a load
-- without one is not served. Both are deleted past FK_ETL_RETENTION_DAYS and beyond
-- FK_ETL_MAX_STORED_MB_PER_ORG by the API (settings, so no TTL).
CREATE TABLE IF NOT EXISTS etl_upload_reports
(
    org            LowCardinality(String),
    load_id        String,
    created_at     DateTime64(3, 'UTC'),
    report         String CODEC(ZSTD(3)),
    rejected_bytes UInt64,
    rejected_parts UInt32
)
ENGINE = ReplacingMergeTree
ORDER BY (org, load_id);

CREATE TABLE IF NOT EXISTS etl_upload_rejected
(
    org        LowCardinality(String),
    load_id    String,
    part       UInt32,
    created_at DateTime64(3, 'UTC'),
    body       String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree
ORDER BY (org, load_id, part);

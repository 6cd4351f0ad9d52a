-- The current state of every campaign, one row per accepted version (the campaign-events topic is
-- the source of truth; this table is its durable view and survives broker restarts). The newest
-- version wins: read with FINAL or argMax(..., version).
CREATE TABLE IF NOT EXISTS campaigns
(
    id          String,
    org         LowCardinality(String),
    name        String,
    brand       String,
    status      LowCardinality(String),
    version     UInt64,
    body        String,
    created_at  DateTime64(3, 'UTC'),
    updated_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

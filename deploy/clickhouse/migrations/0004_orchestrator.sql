-- The campaign orchestrator's durable state: what must outlive a broker that forgets its topics.

-- Start and end dates as columns, so the scheduler finds due transitions with one bounded scan.
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS start_date Nullable(DateTime64(3, 'UTC'));
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS end_date Nullable(DateTime64(3, 'UTC'));

-- Idempotency-Key of POST /campaigns: the first request's body hash and the campaign it made.
CREATE TABLE IF NOT EXISTS campaign_idempotency_keys
(
    org          LowCardinality(String),
    key          String,
    body_sha256  String,
    campaign_id  String,
    created_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (org, key);

-- Webhook endpoints per organisation; every change is a new row with a higher version.
CREATE TABLE IF NOT EXISTS webhook_endpoints
(
    id                   String,
    org                  LowCardinality(String),
    url                  String,
    event_types          Array(LowCardinality(String)),
    secret               String,
    previous_secret      String,
    previous_expires_at  DateTime64(3, 'UTC'),
    enabled              UInt8,
    disabled_reason      String,
    version              UInt64,
    created_at           DateTime64(3, 'UTC'),
    updated_at           DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

-- One row per delivery state change (the due-time table of retries and the durable dead-letter
-- queue); the highest seq wins. A (re)created pending delivery has seq 0, so re-reading an event
-- never resurrects a delivery that already moved on.
CREATE TABLE IF NOT EXISTS webhook_deliveries
(
    delivery_id   String,
    webhook_id    String,
    org           LowCardinality(String),
    endpoint_id   String,
    campaign_id   String,
    event_type    LowCardinality(String),
    source_partition Int32,
    payload       String,
    attempt       UInt32,
    state         LowCardinality(String),
    due_at        DateTime64(3, 'UTC'),
    last_error    String,
    seq           UInt64,
    updated_at    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY delivery_id;

-- The audit log: every delivery attempt, newest first per campaign.
CREATE TABLE IF NOT EXISTS webhook_attempts
(
    id            String,
    org           LowCardinality(String),
    webhook_id    String,
    delivery_id   String,
    event_type    LowCardinality(String),
    campaign_id   String,
    endpoint_id   String,
    endpoint_url  String,
    attempt       UInt32,
    status        LowCardinality(String),
    http_status   Nullable(UInt16),
    error         String,
    latency_ms    Float64,
    timestamp     DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (org, campaign_id, timestamp, id);

-- Every valid, first-seen engagement event, from the stream (source 'stream') or a batch load.
-- The worker guarantees one row per event_id (it checks ids it has stored before inserting), so
-- plain sums over this table are exact. Campaign reads use the sort key; creator reads use the
-- projection, which lives in the same parts and so is written atomically with them.
CREATE TABLE IF NOT EXISTS engagement_events
(
    event_id        String,
    event_time      DateTime64(3, 'UTC'),
    influencer_id   String,
    campaign_id     String,
    platform        LowCardinality(String),
    post_id         String,
    views           UInt64,
    likes           UInt64,
    comments        UInt64,
    shares          UInt64,
    saves           UInt64,
    followers       Nullable(UInt64),
    hashtags        Array(String),
    source          LowCardinality(String),
    kafka_partition Int32,
    kafka_offset    Int64,
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3),
    PROJECTION by_influencer
    (
        SELECT * ORDER BY influencer_id, event_time
    )
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (campaign_id, event_time, event_id);

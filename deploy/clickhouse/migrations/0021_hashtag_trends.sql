-- The windowed trending-hashtags view: per platform, hashtag and minute, the events that carried
-- the hashtag and their counts. Maintained by the store as every batch of events is inserted into
-- engagement_events (stream sink and batch loader alike). Both writers insert each event once, so
-- the sums are exact; SummingMergeTree folds rows of the same key on merge, and readers GROUP BY.
CREATE TABLE IF NOT EXISTS hashtag_minute
(
    platform  LowCardinality(String),
    tag       String,
    minute    DateTime('UTC'),
    events    UInt64,
    views     UInt64,
    likes     UInt64,
    comments  UInt64,
    shares    UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (platform, minute, tag);

CREATE MATERIALIZED VIEW IF NOT EXISTS hashtag_minute_mv TO hashtag_minute AS
SELECT
    platform,
    tag,
    toStartOfMinute(event_time) AS minute,
    count() AS events,
    sum(views) AS views,
    sum(likes) AS likes,
    sum(comments) AS comments,
    sum(shares) AS shares
FROM engagement_events
ARRAY JOIN hashtags AS tag
GROUP BY platform, tag, minute;

-- Events stored before this view existed (migrations run before any consumer starts).
INSERT INTO hashtag_minute (platform, tag, minute, events, views, likes, comments, shares)
SELECT
    platform,
    tag,
    toStartOfMinute(event_time) AS minute,
    count(),
    sum(views),
    sum(likes),
    sum(comments),
    sum(shares)
FROM engagement_events
ARRAY JOIN hashtags AS tag
GROUP BY platform, tag, minute;

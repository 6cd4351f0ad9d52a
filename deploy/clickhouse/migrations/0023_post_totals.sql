-- Maintained state behind /top-performers and the engagement score: per post, the sums of its
-- events, kept by the store as every batch of events is inserted into engagement_events (stream
-- sink and batch loader alike). Rankings read posts instead of raw events: a post's events are
-- folded into one row by merges, and readers GROUP BY the key to fold the rest.
--
-- Keyed by organisation first. Events stored before the organisation was carried on every event
-- have org = ''.
ALTER TABLE engagement_events ADD COLUMN IF NOT EXISTS org LowCardinality(String) DEFAULT '';

CREATE TABLE IF NOT EXISTS post_totals
(
    org           LowCardinality(String),
    campaign_id   String,
    influencer_id String,
    platform      LowCardinality(String),
    -- The post's id (the event's id when it names no post), hashed: a collision between two
    -- posts of one creator on one platform (~1e-19 a pair) is the price of a fixed-width key.
    post          UInt64,
    -- Never 0, so a post whose counts are all 0 keeps its row (SummingMergeTree drops rows
    -- whose summed columns are all 0).
    events        UInt64,
    views         UInt64,
    likes         UInt64,
    comments      UInt64,
    shares        UInt64,
    saves         UInt64
)
ENGINE = SummingMergeTree
ORDER BY (org, campaign_id, influencer_id, platform, post);

CREATE MATERIALIZED VIEW IF NOT EXISTS post_totals_mv TO post_totals AS
SELECT
    org,
    campaign_id,
    influencer_id,
    platform,
    cityHash64(if(post_id != '', post_id, event_id)) AS post,
    count() AS events,
    sum(views) AS views,
    sum(likes) AS likes,
    sum(comments) AS comments,
    sum(shares) AS shares,
    sum(saves) AS saves
FROM engagement_events
GROUP BY org, campaign_id, influencer_id, platform, post;

-- The latest follower count a creator's events reported (the newest event time wins; equal
-- times, the larger count).
CREATE TABLE IF NOT EXISTS creator_followers
(
    org           LowCardinality(String),
    influencer_id String,
    latest        AggregateFunction(argMax, UInt64, Tuple(DateTime64(3, 'UTC'), UInt64))
)
ENGINE = AggregatingMergeTree
ORDER BY (org, influencer_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS creator_followers_mv TO creator_followers AS
SELECT
    org,
    influencer_id,
    argMaxState(assumeNotNull(followers), (event_time, assumeNotNull(followers))) AS latest
FROM engagement_events
WHERE followers IS NOT NULL
GROUP BY org, influencer_id;

-- Events stored before these views existed (migrations run before any consumer starts).
INSERT INTO post_totals
SELECT
    org,
    campaign_id,
    influencer_id,
    platform,
    cityHash64(if(post_id != '', post_id, event_id)) AS post,
    count(),
    sum(views),
    sum(likes),
    sum(comments),
    sum(shares),
    sum(saves)
FROM engagement_events
GROUP BY org, campaign_id, influencer_id, platform, post;

INSERT INTO creator_followers
SELECT
    org,
    influencer_id,
    argMaxState(assumeNotNull(followers), (event_time, assumeNotNull(followers)))
FROM engagement_events
WHERE followers IS NOT NULL
GROUP BY org, influencer_id;

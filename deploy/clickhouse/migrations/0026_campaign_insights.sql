-- Live insights (spikes, stalls, rate drops) as the campaign worker read them from
-- `campaign-events`: one row per event (an episode's `raised` and its `cleared`), written once
-- per event id (re-reading an event replaces its row). Sorted for GET /insights: an
-- organisation's newest first, optionally one campaign's or one kind's.
CREATE TABLE IF NOT EXISTS campaign_insights
(
    org            LowCardinality(String),
    event_id       String,
    insight_id     String,
    status         LowCardinality(String),
    kind           LowCardinality(String),
    scope_kind     LowCardinality(String),
    scope_id       String,
    campaign_id    String,
    metric         LowCardinality(String),
    occurred_at    DateTime64(3, 'UTC'),
    body           String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (org, occurred_at, event_id);

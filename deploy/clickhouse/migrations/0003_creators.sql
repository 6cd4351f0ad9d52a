-- Creator attributes known from batch loads (handle, category, country and the latest follower
-- count with its time). One row per load that mentions the creator; the newest load wins (read
-- with FINAL). Blank fields of a load keep the earlier value (the loader merges before writing).
CREATE TABLE IF NOT EXISTS creators
(
    influencer_id String,
    handle        String,
    category      LowCardinality(String),
    country       LowCardinality(String),
    followers     Nullable(UInt64),
    followers_at  Nullable(DateTime64(3, 'UTC')),
    updated_at    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY influencer_id;

-- Generated campaign briefs, one row per brief; read by id within the caller's organisation.
CREATE TABLE IF NOT EXISTS briefs
(
    id          String,
    org         LowCardinality(String),
    request     String,
    brief       String,
    created_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (org, id);

-- The brief answer cache shared by every API replica: key = hash of the normalised request,
-- organisation, model, prompt version and data snapshot. Expired rows are ignored on read and
-- dropped by the TTL.
CREATE TABLE IF NOT EXISTS brief_cache
(
    key         String,
    brief_id    String,
    created_at  DateTime64(3, 'UTC'),
    expires_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY key
TTL toDateTime(expires_at) + INTERVAL 1 DAY;

-- Embeddings of past briefs and campaigns, per organisation, searched with cosineDistance.
-- `model` names the embedder, so vectors of different models are never compared.
CREATE TABLE IF NOT EXISTS brief_embeddings
(
    org         LowCardinality(String),
    kind        LowCardinality(String),
    id          String,
    version     UInt64,
    model       LowCardinality(String),
    text        String,
    embedding   Array(Float32),
    created_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (org, model, kind, id);

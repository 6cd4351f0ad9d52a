-- Campaign ids are unique within an organisation: two organisations may both hold `cmp_launch`.
-- The table is sorted by (organisation, id), so FINAL and merges keep the newest version of each
-- organisation's campaign (sorted by id alone, one organisation's rows replaced the other's).
-- A sorting key cannot be altered: the rows move to a new table, which then takes the name.
-- Safe to apply again after a start that died inside it (the copy is rebuilt from `campaigns`).
DROP TABLE IF EXISTS campaigns_by_organisation;

CREATE TABLE campaigns_by_organisation
(
    id          String,
    org         LowCardinality(String),
    name        String,
    brand       String,
    status      LowCardinality(String),
    version     UInt64,
    body        String,
    created_at  DateTime64(3, 'UTC'),
    updated_at  DateTime64(3, 'UTC'),
    start_date  Nullable(DateTime64(3, 'UTC')),
    end_date    Nullable(DateTime64(3, 'UTC'))
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (org, id);

INSERT INTO campaigns_by_organisation
SELECT id, org, name, brand, status, version, body, created_at, updated_at, start_date, end_date
FROM campaigns;

EXCHANGE TABLES campaigns AND campaigns_by_organisation;

DROP TABLE campaigns_by_organisation;

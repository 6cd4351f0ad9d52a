-- Every event belongs to an organisation, and everything read from events is read within one.
--
-- Events stored before events carried their organisation (org = '') are adopted: by the
-- organisation that created their campaign, else by FK_DEFAULT_ORG (the parameters default_org
-- and owners, the owners' join table by its full name, are bound by the migrating process).
CREATE TABLE IF NOT EXISTS _campaign_owners ENGINE = Join(ANY, LEFT, id)
AS SELECT id, any(org) AS org FROM campaigns GROUP BY id;

ALTER TABLE engagement_events
UPDATE org = if(joinGet({owners:String}, 'org', campaign_id) != '',
                joinGet({owners:String}, 'org', campaign_id), {default_org:String})
WHERE org = ''
SETTINGS mutations_sync = 2, allow_nondeterministic_mutations = 1;

DROP TABLE IF EXISTS _campaign_owners;

-- Creator reads are by organisation and creator: the narrow projection carries the organisation
-- first (until it is materialized in old parts, creator reads scan those parts instead).
ALTER TABLE engagement_events DROP PROJECTION IF EXISTS by_influencer_metrics;

ALTER TABLE engagement_events ADD PROJECTION IF NOT EXISTS by_org_influencer_metrics
(
    SELECT org, influencer_id, event_time, views, likes, comments, shares, saves
    ORDER BY org, influencer_id, event_time
);

ALTER TABLE engagement_events MATERIALIZE PROJECTION by_org_influencer_metrics
SETTINGS mutations_sync = 2;

-- What the store maintains from events, rebuilt with their organisations (migrations run before
-- any consumer starts).
TRUNCATE TABLE post_totals;

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

TRUNCATE TABLE creator_followers;

INSERT INTO creator_followers
SELECT
    org,
    influencer_id,
    argMaxState(assumeNotNull(followers), (event_time, assumeNotNull(followers)))
FROM engagement_events
WHERE followers IS NOT NULL
GROUP BY org, influencer_id;

-- Hashtag trends per organisation.
DROP VIEW IF EXISTS hashtag_minute_mv;

DROP TABLE IF EXISTS hashtag_minute;

CREATE TABLE hashtag_minute
(
    org       LowCardinality(String),
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
ORDER BY (org, platform, minute, tag);

CREATE MATERIALIZED VIEW hashtag_minute_mv TO hashtag_minute AS
SELECT
    org,
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
GROUP BY org, platform, tag, minute;

INSERT INTO hashtag_minute
SELECT
    org,
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
GROUP BY org, platform, tag, minute;

-- Creator attributes (handle, category, country, followers from CSV loads) per organisation:
-- one organisation's load can neither rename nor re-categorise another's creators. Attributes
-- loaded before go to each organisation holding batch-loaded events of the creator, else to
-- FK_DEFAULT_ORG.
RENAME TABLE creators TO creators_before_organisations;

CREATE TABLE creators
(
    org           LowCardinality(String),
    influencer_id String,
    handle        String,
    category      LowCardinality(String),
    country       LowCardinality(String),
    followers     Nullable(UInt64),
    followers_at  Nullable(DateTime64(3, 'UTC')),
    updated_at    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (org, influencer_id);

INSERT INTO creators
SELECT if(o.org != '', o.org, {default_org:String}), c.influencer_id, c.handle, c.category,
       c.country, c.followers, c.followers_at, c.updated_at
FROM creators_before_organisations AS c
LEFT JOIN (
    SELECT DISTINCT org, influencer_id FROM engagement_events WHERE source = 'batch'
) AS o ON o.influencer_id = c.influencer_id
SETTINGS join_use_nulls = 0;

DROP TABLE creators_before_organisations;

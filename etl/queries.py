"""Every store statement of a batch load. ClickHouse parses and validates the CSV itself (far
faster than Python objects per row); the statements are built from our own column slots
(`c0`, `c1`, ...) only, and every value (paths, times) is a bound parameter."""

from etl.columns import Header
from schemas.events import PLATFORMS

# Reasons a row is rejected, exactly as reported.
MISSING = "missing value"
NOT_INTEGER = "not an integer"
NEGATIVE = "negative count"
VIEWS_NOT_POSITIVE = "views not positive"
UNKNOWN_PLATFORM = "unknown platform"
BAD_DATE = "bad date"
WRONG_COLUMN_COUNT = "wrong column count"

# ISO 8601 date or date-time, optional seconds/fraction and offset (no offset = UTC). Calendar
# validity (no 31 February) is checked by parsing.
_DATE_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?"
    r"(Z|z|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])?)?$"
)
_INTEGER_PATTERN = r"^-?[0-9]{1,18}$"

_READ: dict[str, int | str] = {
    # A row with fewer fields than the header leaves the missing slots NULL, one with more fills
    # the sentinel slot: that is how a wrong column count is seen. Empty fields stay ''.
    "input_format_csv_allow_variable_number_of_columns": 1,
    "input_format_csv_empty_as_default": 0,
    # `\N` is ClickHouse's default NULL spelling; a CSV field may legitimately hold it.
    "format_csv_null_representation": "fk-null-3c9e1b7d5a",
    "input_format_csv_skip_trailing_empty_lines": 1,
    # Single-threaded parsing: `_row_number` (hence every reported line) is wrong with the
    # parallel parser (measured: off by one from row 16384 on). The checks and hashes after it
    # still run on two threads (`max_threads = 2`: the read's output is spread over threads),
    # so row numbers come from the one parser and the work on them is shared. pread keeps the
    # file out of the process's resident memory (mmap would count it).
    "input_format_parallel_parsing": 0,
    "storage_file_read_method": "pread",
}
# Small blocks bound the memory of a load regardless of the file's size.
_BLOCKS = (
    "max_block_size = 16384, min_insert_block_size_rows = 65536, "
    "min_insert_block_size_bytes = 16777216"
)
_READ_SETTINGS = ", ".join(
    f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in _READ.items()
)


def _slot(header: Header, column: str) -> str:
    """The trimmed text of a canonical column ('' when the file has no such column)."""
    if not header.has(column):
        return "''"
    return f"trimBoth(ifNull(c{header.positions[column]}, ''))"


def file_structure(header: Header) -> str:
    """One nullable text slot per header column plus a sentinel for surplus fields."""
    return ", ".join(f"c{i} Nullable(String)" for i in range(header.width + 1))


def _count_check(value: str, *, required: bool, positive: bool = False) -> str:
    checks = [
        f"{value} = ''",
        "'" + MISSING + "'" if required else "''",
        f"NOT match({value}, '{_INTEGER_PATTERN}')",
        f"'{NOT_INTEGER}'",
        f"toInt64({value}) < 0",
        f"'{NEGATIVE}'",
    ]
    if positive:
        checks += [f"toInt64({value}) = 0", f"'{VIEWS_NOT_POSITIVE}'"]
    return f"multiIf({', '.join(checks)}, '')"


def _row_checks(header: Header) -> str:
    """Every (column, reason) of a row with the right number of fields, '' reasons dropped."""
    text = {c: _slot(header, c) for c in header.positions}
    platforms = ", ".join(f"'{p}'" for p in PLATFORMS)
    checks = [
        ("campaignId", f"if({text['campaignId']} = '', '{MISSING}', '')"),
        ("influencerId", f"if({text['influencerId']} = '', '{MISSING}', '')"),
        (
            "platform",
            f"multiIf({text['platform']} = '', '{MISSING}', "
            f"lower({text['platform']}) NOT IN ({platforms}), '{UNKNOWN_PLATFORM}', '')",
        ),
        ("views", _count_check(text["views"], required=True, positive=True)),
        ("likes", _count_check(text["likes"], required=True)),
        ("comments", _count_check(text["comments"], required=True)),
        ("shares", _count_check(text["shares"], required=True)),
    ]
    for optional in ("saves", "followers"):
        if header.has(optional):
            checks.append((optional, _count_check(text[optional], required=False)))
    if header.has("postedAt"):
        posted = text["postedAt"]
        checks.append(
            (
                "postedAt",
                f"multiIf({posted} = '', '', NOT match({posted}, '{_DATE_PATTERN}') "
                f"OR posted_at IS NULL OR toYear(posted_at) NOT BETWEEN 2000 AND 2099, "
                f"'{BAD_DATE}', '')",
            )
        )
    items = ", ".join(f"('{column}', {reason})" for column, reason in checks)
    return f"arrayFilter(e -> e.2 != '', [{items}])"


def staged_rows(header: Header, source: str, row_number: str, read: str = "") -> str:
    """The staged rows of a CSV read from `source` (a table function): each row's number
    (`rn`, 0-based, blank lines included) and how many line breaks its quoted fields hold
    (`nl`, to recover physical line numbers), its errors, typed values and content id; raw
    fields for rejected rows only. `read` is the read's own SETTINGS clause, if any.

    Parameters: load_time.
    """
    w = header.width
    text = {c: _slot(header, c) for c in header.positions}
    newlines = " + ".join(f"countSubstrings(ifNull(c{i}, ''), '\\n')" for i in range(w))
    posted = (
        f"if({text['postedAt']} = '', NULL, parseDateTime64BestEffortOrNull("
        f"{text['postedAt']}, 3, 'UTC'))"
        if header.has("postedAt")
        else "CAST(NULL AS Nullable(DateTime64(3, 'UTC')))"
    )
    count = {c: f"toUInt64OrZero({text[c]})" if c in text else "0" for c in ("saves",)}
    followers = (
        f"if({text['followers']} = '', NULL, toUInt64OrNull({text['followers']}))"
        if header.has("followers")
        else "CAST(NULL AS Nullable(UInt64))"
    )
    platform = f"lower({text['platform']})"
    identity = ", '\\x1f', ".join(
        [
            text["campaignId"],
            text["influencerId"],
            platform,
            _slot(header, "postId"),
            "ifNull(toString(toUnixTimestamp64Milli(posted_at)), '')",
            f"toString(toUInt64OrZero({text['views']}))",
            f"toString(toUInt64OrZero({text['likes']}))",
            f"toString(toUInt64OrZero({text['comments']}))",
            f"toString(toUInt64OrZero({text['shares']}))",
            f"toString({count['saves']})",
        ]
    )
    raw = ", ".join(f"c{i}" for i in range(w))
    return f"""
SELECT
    row_number AS rn,
    toUInt32({newlines}) AS nl,
    errors,
    concat('csv:', substring(lower(hex(SHA256(concat({identity})))), 1, 32)) AS event_id,
    ifNull(posted_at, {{load_time:DateTime64(3, 'UTC')}}) AS event_time,
    {text["influencerId"]} AS influencer_id,
    {text["campaignId"]} AS campaign_id,
    {platform} AS platform,
    {_slot(header, "postId")} AS post_id,
    toUInt64OrZero({text["views"]}) AS views,
    toUInt64OrZero({text["likes"]}) AS likes,
    toUInt64OrZero({text["comments"]}) AS comments,
    toUInt64OrZero({text["shares"]}) AS shares,
    {count["saves"]} AS saves,
    {followers} AS followers,
    {_slot(header, "handle")} AS handle,
    {_slot(header, "category")} AS category,
    {_slot(header, "country")} AS country,
    if(empty(errors), [], [{raw}]) AS raw
FROM
(
    SELECT
        *,
        toUInt64({row_number}) AS row_number,
        {posted} AS posted_at,
        if(c{w - 1} IS NULL OR c{w} IS NOT NULL,
           [('', '{WRONG_COLUMN_COUNT}')], {_row_checks(header)}) AS errors
    FROM {source}
    {read}
)
WHERE c0 IS NOT NULL
"""


def stage(header: Header, table: str) -> str:
    """Embedded store: read the file once, where it lies, into a staging table (`StripeLog`:
    appended, nothing sorted or merged; queries that need file order sort by `rn`).

    Parameters: path, structure, skip (header lines), load_time.
    """
    rows = staged_rows(
        header,
        "file({path:String}, 'CSV', {structure:String})",
        "assumeNotNull(_row_number)",
        f"SETTINGS input_format_csv_skip_first_lines = {{skip:UInt64}}, {_READ_SETTINGS}",
    )
    return f"CREATE TABLE {table} ENGINE = StripeLog AS {rows}SETTINGS max_threads = 2, {_BLOCKS}"


def staging_table(header: Header, table: str) -> str:
    """A ClickHouse server: the staging table of `stage`, empty (its columns from the same
    statement over no data), for `stage_from_body` to fill. Parameters: load_time."""
    rows = staged_rows(
        header, f"format(CSV, '{file_structure(header)}', '')", "rowNumberInAllBlocks()"
    )
    return f"CREATE TABLE {table} ENGINE = StripeLog EMPTY AS {rows}"


def stage_from_body(header: Header, table: str) -> str:
    """A ClickHouse server: the same rows as `stage`, the file sent as the request's body and
    parsed by the server (`input()`), one thread, so `rowNumberInAllBlocks()` numbers the rows
    in file order as `_row_number` does. Settings: `body_settings`. Parameters: load_time."""
    rows = staged_rows(header, f"input('{file_structure(header)}')", "rowNumberInAllBlocks()")
    return f"INSERT INTO {table} {rows}FORMAT CSV"


def body_settings(skip: int) -> dict[str, int | str]:
    """The request settings of `stage_from_body`: the file read's settings, for the body."""
    return {
        **_READ,
        "input_format_csv_skip_first_lines": skip,
        "max_threads": 1,
        "max_block_size": 16384,
        "min_insert_block_size_rows": 65536,
        "min_insert_block_size_bytes": 16777216,
    }


def summary(table: str) -> str:
    """rows, valid rows, errors, and distinct hashes of the valid rows' ids: equal to the valid
    rows only when every id is distinct (a hash collision can only lower it, which sends the
    load down the checked path: never a wrong shortcut)."""
    return (
        "SELECT count(), countIf(empty(errors)), sum(length(errors)), "
        f"uniqExactIf(cityHash64(event_id), empty(errors)) FROM {table}"
    )


HAS_CSV_IDS = (
    "SELECT count() FROM (SELECT 1 FROM engagement_events "
    "WHERE org = {org:String} AND startsWith(event_id, 'csv:') LIMIT 1)"
)
"""1 when the store holds any batch-loaded (content id) event of the organisation, else 0.
Parameters: org."""


def _rejected_lines(table: str) -> str:
    """Rejected rows with the physical line each starts on: the header's lines, one per earlier
    row, plus the line breaks inside earlier rows' quoted fields (only rows that have some
    matter, so the window runs over few rows). Parameters: skip."""
    return f"""
SELECT rn, errors, raw, line FROM
(
    SELECT rn, errors, raw,
           {{skip:UInt64}} + 1 + rn + ifNull(sum(nl) OVER (
               ORDER BY rn ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS line
    FROM {table}
    WHERE nl > 0 OR NOT empty(errors)
)
WHERE NOT empty(errors)
"""


def errors(table: str) -> str:
    """The first `limit` errors in file order. Parameters: skip, limit."""
    return f"""
SELECT line, e.1, e.2 FROM ({_rejected_lines(table)}) ARRAY JOIN errors AS e
ORDER BY rn LIMIT {{limit:UInt64}}
"""


def rejected(table: str) -> str:
    """A page of rejected rows in file order: row number, line, columns and reasons, fields.

    Parameters: skip, after (row number of the previous page's last row, -1 at first), limit.
    """
    return f"""
SELECT rn, line, arrayStringConcat(arrayMap(e -> e.1, errors), ';'),
       arrayStringConcat(arrayMap(e -> e.2, errors), ';'), raw
FROM ({_rejected_lines(table)})
WHERE toInt64(rn) > {{after:Int64}}
ORDER BY rn LIMIT {{limit:UInt64}}
"""


def _bucket(table: str) -> str:
    return f"""
SELECT event_id FROM {table}
WHERE empty(errors) AND cityHash64(event_id) % {{buckets:UInt64}} = {{bucket:UInt64}}
"""


def bucket_news(table: str) -> str:
    """How many distinct valid ids of one bucket the store does not hold yet (what
    `insert_events` then writes, loads being serialised). Parameters: org, buckets, bucket."""
    return f"""
SELECT uniqExact(event_id) - (
    SELECT count() FROM engagement_events
    WHERE org = {{org:String}} AND startsWith(event_id, 'csv:')
      AND event_id IN ({_bucket(table)}))
FROM ({_bucket(table)})
"""


STORE_NOW_MS = "SELECT toUnixTimestamp64Milli(now64(3))"
"""The store's clock, in ms: what `ingested_at` is set from."""

STORED_SINCE = (
    "source = 'batch' AND org = {org:String}"
    " AND ingested_at >= fromUnixTimestamp64Milli({stored_since:Int64})"
)
"""The organisation's batch-loaded rows stored since a moment of the store's clock (a condition
on `engagement_events`)."""


_INSERT_VALID_ROWS = """INSERT INTO engagement_events
    (event_id, event_time, influencer_id, campaign_id, platform, post_id, views, likes,
     comments, shares, saves, followers, hashtags, source, kafka_partition, kafka_offset, org)
SELECT event_id, event_time, influencer_id, campaign_id, platform, post_id, views, likes,
       comments, shares, saves, followers, [], 'batch', -1, rn, {{org:String}}
FROM {table}
WHERE empty(errors)"""
"""The valid staged rows as `engagement_events` rows (source 'batch', the row number as offset);
the two insert statements add their own conditions."""


def insert_events(table: str) -> str:
    """Insert each valid row of one hash bucket whose content id the store does not hold yet,
    once (the first row wins). Bucketing bounds the memory of the id sets.

    Parameters: org, buckets, bucket.
    """
    return f"""
{_INSERT_VALID_ROWS.format(table=table)}
  AND cityHash64(event_id) % {{buckets:UInt64}} = {{bucket:UInt64}}
  AND event_id NOT IN (
      SELECT event_id FROM engagement_events
      WHERE org = {{org:String}} AND startsWith(event_id, 'csv:')
        AND event_id IN ({_bucket(table)}))
ORDER BY rn
LIMIT 1 BY event_id
SETTINGS max_partitions_per_insert_block = 0, parallel_view_processing = 1, {_BLOCKS}
"""


def insert_new_events(table: str) -> str:
    """Insert every valid row, for a file whose valid rows all have distinct ids into a store
    that holds no `csv:` id of the organisation (so none can be stored already): no existence
    check, no dedupe, one statement; two threads write the parts (sorted twice, for the
    projection), and each block reaches the materialized views in parallel (one after another,
    the views took 3.9 of the 4.7 s that 1M rows took to insert). Parameters: org."""
    return f"""
{_INSERT_VALID_ROWS.format(table=table)}
SETTINGS max_threads = 2, max_insert_threads = 2, max_partitions_per_insert_block = 0,
    parallel_view_processing = 1, {_BLOCKS}
"""


def upsert_creators(table: str) -> str:
    """Newest known attributes per creator of the organisation; a blank field keeps what the
    store knew.

    Parameters: org, load_time (the row version).
    """
    return f"""
INSERT INTO creators
    (org, influencer_id, handle, category, country, followers, followers_at, updated_at)
SELECT
    {{org:String}},
    n.id,
    if(n.new_handle != '', n.new_handle, o.handle),
    if(n.new_category != '', n.new_category, o.category),
    if(n.new_country != '', n.new_country, o.country),
    if(n.has_followers AND (o.followers_at IS NULL OR n.new_followers_at >= o.followers_at),
       n.new_followers, o.followers),
    if(n.has_followers AND (o.followers_at IS NULL OR n.new_followers_at >= o.followers_at),
       n.new_followers_at, o.followers_at),
    {{load_time:DateTime64(3, 'UTC')}}
FROM
(
    SELECT
        influencer_id AS id,
        argMaxIf(handle, event_time, handle != '') AS new_handle,
        argMaxIf(category, event_time, category != '') AS new_category,
        argMaxIf(country, event_time, country != '') AS new_country,
        argMaxIf(followers, event_time, followers IS NOT NULL) AS new_followers,
        maxIf(event_time, followers IS NOT NULL) AS new_followers_at,
        countIf(followers IS NOT NULL) > 0 AS has_followers
    FROM {table}
    WHERE empty(errors)
    GROUP BY influencer_id
) AS n
LEFT JOIN (SELECT * FROM creators FINAL WHERE org = {{org:String}}) AS o
    ON o.influencer_id = n.id
SETTINGS join_use_nulls = 1
"""


STALE_STAGING = (
    "SELECT name FROM system.tables WHERE database = currentDatabase() "
    "AND startsWith(name, 'etl_stage_') "
    "AND metadata_modification_time < now() - toIntervalSecond({age:UInt32})"
)
"""Staging tables older than `age` seconds: 0 on the embedded store (its loads run one at a
time in its one process), longer on a server, where another API replica may be loading."""

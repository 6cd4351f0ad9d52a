"""Realistic, seeded performance-CSV samples (`fk generate`): creators with log-normal follower
counts across platforms and categories, posts whose views scale with reach and whose engagement
rate depends on platform and creator, a few viral posts, and optionally some invalid rows."""

import csv
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

HEADER = (
    "campaignId",
    "influencerId",
    "platform",
    "postId",
    "postedAt",
    "views",
    "likes",
    "comments",
    "shares",
    "saves",
    "followers",
    "handle",
    "category",
    "country",
)

# Typical engagement rate (likes+comments+shares per view) by platform.
_PLATFORM_RATE = {
    "instagram": 0.045,
    "tiktok": 0.07,
    "youtube": 0.035,
    "x": 0.02,
    "facebook": 0.025,
}
_PLATFORM_SHARE = {"instagram": 0.38, "tiktok": 0.3, "youtube": 0.17, "x": 0.08, "facebook": 0.07}
_CATEGORIES = (
    "Food",
    "Fitness",
    "Beauty",
    "Tech",
    "Travel",
    "Fashion",
    "Gaming",
    "Finance",
    "Parenting",
    "Music",
)
_COUNTRIES = ("IN", "US", "GB", "BR", "ID", "DE", "FR", "MX", "NG", "AE")
_SYLLABLES = ("ka", "ri", "mo", "ta", "zen", "lu", "vi", "ra", "no", "sha", "el", "dev", "fit")
_INVALID = (
    ("views", ""),
    ("views", "12.5"),
    ("likes", "-3"),
    ("views", "0"),
    ("platform", "myspace"),
    ("postedAt", "31/02/2026"),
    ("influencerId", ""),
)


@dataclass(frozen=True, slots=True)
class _Creator:
    influencer_id: str
    handle: str
    platform: str
    followers: int
    rate: float
    category: str
    country: str


def _creators(rng: random.Random, count: int) -> list[_Creator]:
    platforms = list(_PLATFORM_SHARE)
    weights = list(_PLATFORM_SHARE.values())
    out = []
    for n in range(count):
        platform = rng.choices(platforms, weights)[0]
        followers = max(500, int(rng.lognormvariate(math.log(40_000), 1.6)))
        # Larger accounts engage a little less per view; each creator has its own level.
        size_effect = (followers / 40_000) ** -0.08
        rate = _PLATFORM_RATE[platform] * size_effect * rng.lognormvariate(0, 0.35)
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
        out.append(
            _Creator(
                influencer_id=f"inf_{n:06d}",
                handle=f"@{name}{n}",
                platform=platform,
                followers=followers,
                rate=min(rate, 0.5),
                category=rng.choice(_CATEGORIES),
                country=rng.choice(_COUNTRIES),
            )
        )
    return out


def sample_rows(
    rows: int, *, seed: int = 7, invalid_rate: float = 0.0, now: datetime | None = None
) -> Iterator[list[str]]:
    """`rows` data rows (no header). About 25 posts per creator, 40 creators per campaign,
    posts over the last 120 days; `invalid_rate` of them carry one of the rejection reasons."""
    rng = random.Random(seed)
    now = now or datetime(2026, 11, 1, tzinfo=UTC)
    creators = _creators(rng, max(4, rows // 25))
    campaigns = [f"cmp_{n:05d}" for n in range(max(2, rows // 1000))]
    for n in range(rows):
        c = creators[rng.randrange(len(creators))]
        reach = rng.lognormvariate(math.log(0.25), 0.6)
        views = max(1, int(c.followers * reach))
        rate = c.rate * rng.lognormvariate(0, 0.25)
        if rng.random() < 0.01:  # a viral post: far more views, a somewhat higher rate
            views *= rng.randint(5, 30)
            rate *= 1.5
        engagements = int(views * min(rate, 0.9))
        likes = int(engagements * rng.uniform(0.75, 0.92))
        comments = int((engagements - likes) * rng.uniform(0.3, 0.7))
        shares = engagements - likes - comments
        saves = "" if rng.random() < 0.2 else str(int(engagements * rng.uniform(0.02, 0.15)))
        posted = now - timedelta(seconds=rng.randrange(120 * 86_400))
        row = [
            rng.choice(campaigns),
            c.influencer_id,
            c.platform,
            f"{c.platform[:2]}_{n}",
            posted.strftime("%Y-%m-%dT%H:%M:%SZ"),
            str(views),
            str(likes),
            str(comments),
            str(shares),
            saves,
            str(c.followers),
            c.handle,
            c.category,
            c.country,
        ]
        if invalid_rate and rng.random() < invalid_rate:
            column, value = rng.choice(_INVALID)
            row[HEADER.index(column)] = value
        yield row


def write_sample(
    out: Path | TextIO, rows: int, *, seed: int = 7, invalid_rate: float = 0.0
) -> None:
    """Write a header and `rows` rows; streams, so any size fits in constant memory."""
    if isinstance(out, Path):
        with out.open("w", newline="", encoding="utf-8") as fh:
            write_sample(fh, rows, seed=seed, invalid_rate=invalid_rate)
        return
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    batch: list[list[str]] = []
    for row in sample_rows(rows, seed=seed, invalid_rate=invalid_rate):
        batch.append(row)
        if len(batch) >= 10_000:
            writer.writerows(batch)
            batch.clear()
    writer.writerows(batch)

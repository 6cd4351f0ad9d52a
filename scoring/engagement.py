"""engagementScore (0-100): how a creator's typical per-post engagement rate compares with
peers of the same platform and follower tier, robust to viral outliers and to small samples.
Pure functions; the per-creator inputs come from the store (see `scoring/queries.py`).

Steps (see docs/scoring.md for the reasoning):
1. Each post's rate is taken on a log scale, x = ln((engagements + 0.5) / (views + 1)), and
   clipped to its platform's 5th-95th percentile of post rates in scope (this bounds any post of
   a creator with one or two posts).
2. Each post value is then clipped to the creator's own median +- `POST_CLIP` (a post counts as
   at most 1.25x, at least 0.8x, the creator's median rate); the creator's level is the mean of
   these values. Steps 1-2 run in SQL (`scoring/queries.py`); the rest here.
3. Cohort = (primary platform, follower tier); cohorts with fewer than `MIN_COHORT` creators
   pool into the platform, then into the whole scope. Robust z = (level - median) / (1.4826 MAD).
4. Weight B = min(tau^2 / (tau^2 + sigma_w^2 / posts), INFLUENCE * spread / one_post): the
   empirical-Bayes shrinkage toward the cohort, capped so that one post's influence on the level
   (`one_post_influence`) moves B * z by about `INFLUENCE` at most.
5. score = 100 * Phi(B * z): 50 is the cohort's typical creator.
"""

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

MIN_COHORT = 5
_MAD_TO_SD = 1.4826
_MIN_SPREAD = 0.05  # log units (about 5 % relative): cohorts of near-identical creators
_DEFAULT_WITHIN_VAR = 0.25
POST_CLIP = math.log(1.25)  # log units around the creator's median post value
# Largest move of B * z that one post may cause: 100 * Phi'(0) * 0.1 = 4 score points at most.
INFLUENCE = 0.1
TIERS = ((10_000, "nano"), (100_000, "micro"), (500_000, "mid"), (1_000_000, "macro"))


def tier(followers: int | None) -> str:
    """nano < 10k <= micro < 100k <= mid < 500k <= macro < 1M <= mega; unknown without data."""
    if followers is None:
        return "unknown"
    for limit, name in TIERS:
        if followers < limit:
            return name
    return "mega"


@dataclass(frozen=True, slots=True)
class CreatorStats:
    """One creator in scope: posts with views, mean and variance of their clipped log rates,
    and the width of its platform's clip range (step 1; bounds one post of a 1-2 post creator)."""

    influencer_id: str
    platform: str
    followers: int | None
    posts: int
    level: float
    variance: float
    post_range: float


def one_post_influence(posts: int, post_range: float) -> float:
    """How far changing one post moves a level (log units), as used to cap the weight: every
    value lies within the platform clip range, so one value moves a mean by `post_range / posts`.
    The median clip adds the median's shift; that part is checked by the property tests, not
    bounded here (a tighter `3 * POST_CLIP / posts` failed on a 7-post creator)."""
    return post_range / posts


@dataclass(frozen=True, slots=True)
class Score:
    score: float
    cohort: str
    cohort_size: int
    typical_post_rate: float
    cohort_post_rate: float
    robust_z: float
    shrinkage: float


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _cohorts(creators: Sequence[CreatorStats]) -> dict[str, list[CreatorStats]]:
    """Group by (platform, tier); groups smaller than MIN_COHORT pool upwards."""
    by_tier: dict[tuple[str, str], list[CreatorStats]] = defaultdict(list)
    for c in creators:
        by_tier[(c.platform, tier(c.followers))].append(c)
    out: dict[str, list[CreatorStats]] = defaultdict(list)
    small: dict[str, list[CreatorStats]] = defaultdict(list)
    for (platform, name), members in by_tier.items():
        if len(members) >= MIN_COHORT:
            out[f"{platform}/{name}"] = members
        else:
            small[platform].extend(members)
    leftovers: list[CreatorStats] = []
    for platform, members in small.items():
        if len(members) >= MIN_COHORT:
            out[f"{platform}/all"] = members
        else:
            leftovers.extend(members)
    if leftovers:
        out["all"] = leftovers
    return out


def score_creators(creators: Sequence[CreatorStats]) -> dict[str, Score]:
    """Score every creator relative to its cohort within `creators` (the scope of a query).

    Deterministic and independent of input order. Creators without posts get no entry.
    """
    ordered = sorted((c for c in creators if c.posts > 0), key=lambda c: c.influencer_id)
    scores: dict[str, Score] = {}
    for name, members in sorted(_cohorts(ordered).items()):
        levels = [c.level for c in members]
        centre = statistics.median(levels)
        spread = max(_MAD_TO_SD * statistics.median(abs(v - centre) for v in levels), _MIN_SPREAD)
        within = [c.variance for c in members if c.posts >= 2]
        within_var = statistics.median(within) if within else _DEFAULT_WITHIN_VAR
        noise = statistics.median(within_var / c.posts for c in members)
        between = max(spread**2 - noise, (spread / 2) ** 2)
        for c in members:
            z = (c.level - centre) / spread
            weight = between / (between + within_var / c.posts)
            influence = one_post_influence(c.posts, c.post_range)
            if influence > 0:
                weight = min(weight, INFLUENCE * spread / influence)
            scores[c.influencer_id] = Score(
                score=round(100 * _phi(weight * z), 2),
                cohort=name,
                cohort_size=len(members),
                typical_post_rate=round(math.exp(c.level) * 100, 4),
                cohort_post_rate=round(math.exp(centre) * 100, 4),
                robust_z=round(z, 4),
                shrinkage=round(weight, 4),
            )
    return scores

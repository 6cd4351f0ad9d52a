"""engagementScore (0-100): how a creator's typical per-post engagement rate compares with
peers of the same platform and follower tier, robust to viral outliers and to small samples.
Pure functions; the per-creator inputs come from the store (see `api/queries.py`).

Steps (see docs/scoring.md for the reasoning):
1. Each post's rate is taken on a log scale, x = ln((engagements + 0.5) / (views + 1)), and
   clipped to its platform's 5th-95th percentile of post rates in scope (winsorising: one viral
   post can move a creator's mean by at most (p95 - x) / posts).
2. A creator's level is the mean of its clipped post values; its cohort is (primary platform,
   follower tier); cohorts with fewer than `MIN_COHORT` creators pool into the platform, then
   into the whole scope.
3. Robust z-score within the cohort: (level - median) / (1.4826 * MAD).
4. Empirical-Bayes shrinkage toward the cohort: weight B = tau^2 / (tau^2 + sigma_w^2 / posts),
   sigma_w^2 the cohort's typical within-creator variance of post values, tau^2 the spread of
   true levels (cohort variance minus sampling noise). Few posts -> B small -> z near 0.
4. score = 100 * Phi(B * z): 50 is the cohort's typical creator.
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
    """One creator in scope: posts with views, mean and variance of their clipped log rates."""

    influencer_id: str
    platform: str
    followers: int | None
    posts: int
    level: float
    variance: float


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

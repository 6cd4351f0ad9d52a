"""The demo dataset replayed by `fk up --demo`: a fixed, seeded set of creators and campaigns
whose events span the last two days, so every window has data the moment the platform is up.

Event ids are stable (`demo-<n>`), so starting the demo again adds nothing twice.
"""

import random
import time
from collections.abc import Iterator

import orjson

from schemas.events import PLATFORMS
from streams.replay import Message

CAMPAIGNS = [
    "cmp_diwali_24",
    "cmp_monsoon_sale",
    "cmp_winter_glow",
    "cmp_street_eats",
    "cmp_fit_new_year",
    "cmp_tech_unboxed",
]
# What `fk up --demo` creates the demo campaigns as (POST /campaigns with these ids), so the
# dashboard and the API show them by name.
CAMPAIGN_NAMES = {
    "cmp_diwali_24": "Diwali 24",
    "cmp_monsoon_sale": "Monsoon Sale",
    "cmp_winter_glow": "Winter Glow",
    "cmp_street_eats": "Street Eats",
    "cmp_fit_new_year": "Fit New Year",
    "cmp_tech_unboxed": "Tech Unboxed",
}
HASHTAGS = [
    "#diwali",
    "#foodie",
    "#fitness",
    "#skincare",
    "#unboxing",
    "#streetfood",
    "#ootd",
    "#travel",
    "#gadgets",
    "#monsoon",
]


def demo_events(count: int = 20_000, seed: int = 7, now_ms: int | None = None) -> Iterator[Message]:
    rng = random.Random(seed)
    now_ms = now_ms or int(time.time() * 1000)
    creators = [
        (
            f"inf_{i:03d}",
            rng.choice(PLATFORMS),
            rng.randint(2_000, 2_000_000),
            rng.uniform(0.01, 0.12),
        )
        for i in range(60)
    ]
    for n in range(count):
        influencer, platform, followers, rate = rng.choice(creators)
        views = max(1, int(rng.lognormvariate(5, 1)))
        likes = int(views * rate * rng.uniform(0.5, 1.5))
        event = {
            "eventId": f"demo-{n}",
            # Older events first, the last ~15% within the last hour.
            "timestamp": now_ms - int((1 - n / count) ** 2 * 48 * 3_600_000),
            "influencerId": influencer,
            "platform": platform,
            "campaignId": rng.choice(CAMPAIGNS) if rng.random() < 0.85 else None,
            "postId": f"{platform[:2]}_{rng.randint(1, 400)}",
            "views": views,
            "likes": likes,
            "comments": int(likes * rng.uniform(0.02, 0.1)),
            "shares": int(likes * rng.uniform(0.0, 0.15)),
            "saves": int(likes * rng.uniform(0.0, 0.2)),
            "followers": followers,
            "hashtags": rng.sample(HASHTAGS, rng.randint(0, 3)),
        }
        if event["campaignId"] is None:
            del event["campaignId"]
        yield Message(influencer.encode(), orjson.dumps(event), int(event["timestamp"]))  # type: ignore[call-overload]

"""What a campaign pass holds in memory: every campaign scope keeps its creators' candidates, so
one creator's strings are shared by all the scopes it appears in, not copied per scope (the
soak's 200 campaigns x 1,000 creators: 200,000 candidates, ~510 instead of ~810 bytes each)."""

from typing import Any

import pyarrow as pa

from scoring.queries import CampaignRows, CampaignScopes


def campaign_pass(campaigns: int, creators: int) -> pa.Table:
    """A pass's table as the store answers it (sorted by campaign, its id the last column), each
    campaign with the same creators; every string a fresh object, as Arrow makes them."""
    rows: list[dict[str, Any]] = [
        {
            "influencer_id": f"inf_{i}",
            "primary": "instagram",
            "platforms": ["instagram", "tiktok"],
            "views": 1000 + i,
            "likes": 50,
            "comments": 5,
            "shares": 1,
            "saves": 0,
            "posts": 3,
            "rated": 3,
            "sx": -3.0,
            "sxx": 3.5,
            "followers": None,
            "handle": f"@creator{i}",
            "category": "food",
            "post_range": 2.0,
            "campaign_id": f"cmp_{c:03d}",
        }
        for c in range(campaigns)
        for i in range(creators)
    ]
    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("influencer_id", pa.string()),
                ("primary", pa.string()),
                ("platforms", pa.list_(pa.string())),
                *((name, pa.uint64()) for name in ("views", "likes", "comments", "shares")),
                *((name, pa.uint64()) for name in ("saves", "posts", "rated")),
                ("sx", pa.float64()),
                ("sxx", pa.float64()),
                ("followers", pa.uint64()),
                ("handle", pa.string()),
                ("category", pa.string()),
                ("post_range", pa.float64()),
                ("campaign_id", pa.string()),
            ]
        ),
    )


async def test_campaign_scopes_share_their_creators_strings() -> None:
    scopes = CampaignScopes(CampaignRows(campaign_pass(campaigns=3, creators=20)))
    rankings = [await scopes.ranking(f"cmp_{c:03d}") for c in range(3)]
    first, *others = ([*sorted(r.creators, key=lambda c: c.influencer_id)] for r in rankings)
    assert len(first) == 20
    # Within a scope, creators on the same platforms share one tuple of them.
    assert {id(c.platforms) for c in first} == {id(first[0].platforms)}
    assert first[0].platforms == ("instagram", "tiktok")
    for other in others:
        for a, b in zip(first, other, strict=True):
            assert a.influencer_id == b.influencer_id
            assert a.influencer_id is b.influencer_id
            assert a.platform is b.platform
            assert a.handle is b.handle
            assert a.category is b.category

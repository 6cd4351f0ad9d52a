"""The API's metrics reads: point reads gathered per organisation, and which campaigns an
organisation created (cached)."""

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from core.clickhouse import Store
from core.coalesce import Gathered
from core.repositories.engagement import entities_metrics
from schemas.api import METRICS_KINDS, MetricsKind

if TYPE_CHECKING:
    from api.deps import Services


async def warm_up(store: Store, now: datetime) -> None:
    """Run each read once at start-up so the first client request does not pay for loading the
    store's indexes and marks."""
    for kind in METRICS_KINDS:
        await entities_metrics(store, kind, "", [""], now)


def metrics_reads(store: Store, kind: MetricsKind) -> Gathered[tuple[str, str], bytes]:
    """Serialised metrics answers of one kind, read by (organisation, id); keys asked for while
    a read runs are read together by the next one (one query per organisation for many point
    reads under load)."""

    async def fetch(keys: list[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
        now = datetime.now(UTC)
        by_org: dict[str, list[str]] = {}
        for org, entity in keys:
            by_org.setdefault(org, []).append(entity)
        answers: dict[tuple[str, str], bytes] = {}
        for org, ids in by_org.items():
            found = await entities_metrics(store, kind, org, ids, now)
            answers.update(
                ((org, k), m.model_dump_json(by_alias=True).encode()) for k, m in found.items()
            )
        return answers

    return Gathered(fetch)


_MAX_KNOWN_CAMPAIGNS = 1_000_000


async def campaign_created(services: "Services", org: str, campaign_id: str) -> bool:
    """Whether the organisation created a campaign of this id (another organisation's campaign
    of the id does not count). A created campaign stays created, so a yes is remembered; a no
    is cached only as long as metrics answers are."""
    key = (org, campaign_id)
    if key in services.known_campaigns:
        return True
    created = await services.created.get(
        ("created", *key), lambda: services.created_reads.get(key), services.campaigns_version
    )
    if created:
        if len(services.known_campaigns) >= _MAX_KNOWN_CAMPAIGNS:
            services.known_campaigns.clear()
        services.known_campaigns.add(key)
    return bool(created)

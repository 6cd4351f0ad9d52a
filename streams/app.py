"""The Faust app: one per worker process, hosting the engagement consumer (and the publisher of
its per-minute rollups), the insights agent, the campaign agent and its table (the owner of
every campaign: `streams/agents/commands.py`), and the campaign orchestrator (campaign
projection, webhook dispatcher, date clock)."""

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import faust
import mode

from core.clickhouse import Store
from core.kafka import tls_context
from core.ledger import CampaignLedger
from core.rollups import EngagementRollups, MinuteRollups
from core.settings import Settings
from streams.agents.campaigns import CampaignClock, CampaignConsumer
from streams.agents.commands import add_campaign_agent
from streams.agents.engagement import EngagementConsumer
from streams.agents.insights import RollupPublisher, add_insights_agent
from streams.agents.webhooks import Dispatcher
from streams.transport import FkApp


class Orchestrator(mode.Service):
    """The dispatcher starts first: the campaign consumer hands it deliveries."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        ledger: CampaignLedger | None = None,
        **kwargs: Any,
    ) -> None:
        self.dispatcher = Dispatcher(settings, store)
        self.campaigns = CampaignConsumer(settings, store, self.dispatcher)
        self.clock = CampaignClock(settings, store, self.dispatcher, ledger)
        super().__init__(**kwargs)

    def on_init_dependencies(self) -> Iterable[mode.ServiceT]:
        return [self.dispatcher, self.campaigns, self.clock]

    async def on_started(self) -> None:
        # The dispatcher's commands consumer joined its group meanwhile (see JoinedListener).
        await self.dispatcher.joined()


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """The Faust app's clients get the TLS and SASL options of every other client
    (`core.kafka.client_security`); None = plaintext."""
    protocol = settings.kafka_security_protocol
    context = tls_context(settings) if protocol in ("SSL", "SASL_SSL") else None
    if protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_faust_app(
    settings: Settings,
    store: Store,
    *,
    ledger: CampaignLedger | None = None,
    rollups: EngagementRollups | None = None,
) -> faust.App:
    """`ledger` is the API's when both run in one process, so clock-driven and API commands on a
    campaign are serialised by the same locks; so are `rollups`, which the engagement consumer
    keeps and the API answers metrics from."""
    app = FkApp(
        settings.faust_app_id,
        fetch_wait_ms=settings.command_fetch_wait_ms,
        broker=f"kafka://{settings.bootstrap}",
        store="memory://",
        datadir=faust_datadir(settings),
        web_enabled=False,
        topic_partitions=settings.engagement_partitions,
        broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_ms / 1000,
        producer_max_request_size=MAX_REQUEST,
        broker_credentials=broker_credentials(settings),
        # The topics Faust creates itself (the campaign table's changelog, its assignor's
        # leader topic) are replicated as those `fk init` creates.
        topic_replication_factor=settings.kafka_replication_factor,
    )

    # The engagement consumer tells the rollups of every stored row: their per-minute buckets
    # go to `engagement-rollups` once each minute closes (an unloaded EngagementRollups keeps
    # no metrics windows, only those buckets).
    stored = rollups if rollups is not None else EngagementRollups()
    minutes = stored.minutes = stored.minutes or MinuteRollups()

    @app.service
    class Engagement(EngagementConsumer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(settings, store, rollups=stored, **kwargs)

    @app.service
    class Rollups(RollupPublisher):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(settings, minutes, **kwargs)

    app.insights = add_insights_agent(app, settings, store)  # type: ignore[attr-defined]
    # chDB opens its data path in one process only: this worker is then the sole writer.
    add_campaign_agent(app, settings, store, sole_writer=settings.store_url.startswith("chdb:"))

    @app.service
    class Campaigns(Orchestrator):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(settings, store, ledger, **kwargs)

    return app


MAX_REQUEST = 5 * 1024 * 1024


def faust_datadir(settings: Settings) -> Path:
    """Faust's own directory, under the data directory (Faust's default is `<app id>-data` in
    the working directory). Its parents are made here: Faust makes only the last part."""
    path = settings.data_dir / "faust" / settings.faust_app_id
    path.parent.mkdir(parents=True, exist_ok=True)
    return path

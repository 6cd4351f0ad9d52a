"""The Faust app: one per worker process, hosting the engagement consumer service."""

from typing import Any

import faust

from core.clickhouse import Store
from core.settings import Settings
from streams.agents.engagement import EngagementConsumer


def create_faust_app(settings: Settings, store: Store) -> faust.App:
    app = faust.App(
        settings.faust_app_id,
        broker=f"kafka://{settings.bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_partitions=settings.engagement_partitions,
        broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_ms / 1000,
        producer_max_request_size=MAX_REQUEST,
    )

    @app.service
    class Engagement(EngagementConsumer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(settings, store, **kwargs)

    return app


MAX_REQUEST = 5 * 1024 * 1024

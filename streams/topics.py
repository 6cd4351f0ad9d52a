"""The topics the platform owns, with explicit partition counts, replication factors and
`min.insync.replicas` (never auto-created)."""

from core.kafka import TopicSpec
from core.settings import Settings


def platform_topics(settings: Settings) -> list[TopicSpec]:
    def spec(name: str, partitions: int) -> TopicSpec:
        return TopicSpec(
            name,
            partitions,
            replication=settings.kafka_replication_factor,
            min_insync_replicas=settings.kafka_min_insync_replicas,
        )

    return [
        spec(settings.engagement_topic, settings.engagement_partitions),
        spec(settings.engagement_dlq_topic, 1),
        spec(settings.campaign_topic, settings.campaign_partitions),
        spec(settings.rollup_topic, settings.engagement_partitions),
        spec(settings.webhook_commands_topic, 1),
        spec(settings.webhook_dlq_topic, 1),
    ]

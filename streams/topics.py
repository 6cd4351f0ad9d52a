"""The topics the platform owns, with explicit partition counts, replication factors,
`min.insync.replicas` and, where it matters, retention (never auto-created)."""

from core.kafka import TopicSpec
from core.settings import Settings


def platform_topics(settings: Settings) -> list[TopicSpec]:
    def spec(name: str, partitions: int, retention_ms: int | None = None) -> TopicSpec:
        return TopicSpec(
            name,
            partitions,
            replication=settings.kafka_replication_factor,
            min_insync_replicas=settings.kafka_min_insync_replicas,
            retention_ms=retention_ms,
        )

    return [
        spec(settings.engagement_topic, settings.engagement_partitions),
        spec(settings.engagement_dlq_topic, 1),
        # Every campaign version and insight, kept forever: `fk rebuild` replays them all.
        spec(settings.campaign_topic, settings.campaign_partitions, retention_ms=-1),
        spec(settings.campaign_commands_topic, settings.campaign_partitions),
        # Answers spread by command: one partition would hold every answer, and each fetch of
        # the embedded broker lists all a partition holds (BENCHMARKS.md).
        spec(settings.campaign_replies_topic, settings.campaign_partitions),
        spec(settings.rollup_topic, settings.engagement_partitions),
        spec(settings.webhook_commands_topic, 1),
        spec(settings.webhook_dlq_topic, 1),
    ]

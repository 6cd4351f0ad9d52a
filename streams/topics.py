"""The topics the platform owns, with explicit partition counts (never auto-created)."""

from core.kafka import TopicSpec
from core.settings import Settings


def platform_topics(settings: Settings) -> list[TopicSpec]:
    return [
        TopicSpec(settings.engagement_topic, settings.engagement_partitions),
        TopicSpec(settings.engagement_dlq_topic, 1),
        TopicSpec(settings.campaign_topic, settings.campaign_partitions),
        TopicSpec(settings.rollup_topic, settings.engagement_partitions),
        TopicSpec(settings.webhook_commands_topic, 1),
        TopicSpec(settings.webhook_dlq_topic, 1),
    ]

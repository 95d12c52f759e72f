"""SMS through MessageBird's REST API (package ``messagebird``)."""

from connectors.messagebird.channel import MessageBirdChannel, MessageBirdSettings

__all__ = ["MessageBirdChannel", "MessageBirdSettings"]

"""The ``outbox`` channel of the embedded default: rendered messages written as files.

It fits the same ``Channel`` port and the same exactly-once outbox states as SendGrid,
MessageBird and letters: ``send`` writes each message atomically under its message id,
``lookup`` answers whether a message id was already delivered (for ambiguous sends).
"""

from connectors.outbox.channel import OutboxChannel, OutboxSettings

__all__ = ["OutboxChannel", "OutboxSettings"]

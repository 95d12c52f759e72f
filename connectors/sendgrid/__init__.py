"""E-mail through SendGrid's v3 Mail Send API (package ``sendgrid``)."""

from connectors.sendgrid.channel import SendGridChannel, SendGridSettings

__all__ = ["SendGridChannel", "SendGridSettings"]

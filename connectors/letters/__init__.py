"""Letters: a PDF per letter, a daily batch to a print-and-mail provider over SFTP."""

from connectors.letters.channel import LetterChannel, LetterSettings

__all__ = ["LetterChannel", "LetterSettings"]

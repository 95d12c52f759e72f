"""SFTP connector (paramiko): statement drops in, files out; host keys always pinned.

Docs: https://docs.paramiko.org/en/latest/api/sftp.html . See docs/connectors/sftp.md.
"""

from connectors.sftp.client import SftpClient, fingerprint_of
from connectors.sftp.settings import SftpSettings

__all__ = ["SftpClient", "SftpSettings", "fingerprint_of"]

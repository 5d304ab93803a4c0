"""File transports for the X12 kinds: a mailbox as a local directory or over SFTP."""
from payer_adapters.transports.filedrop import DirectoryDrop, FileDrop
from payer_adapters.transports.sftp import SftpDrop

__all__ = ["FileDrop", "DirectoryDrop", "SftpDrop"]

"""msnp6: an MSN Messenger protocol (MSNP6) server on Twisted."""

__version__ = "0.1.0"

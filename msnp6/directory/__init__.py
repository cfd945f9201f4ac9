"""Who is online where: plain presence records behind an interface whose lookups may be asynchronous."""
from .interface import Directory
from .memory import MemoryDirectory
from .record import PresenceRecord

__all__ = ["Directory", "MemoryDirectory", "PresenceRecord"]

"""Cross-node events: the interface, and the in-memory bus for one process."""
from .interface import Bus, Subscriber
from .memory import MemoryBus

__all__ = ["Bus", "MemoryBus", "Subscriber"]

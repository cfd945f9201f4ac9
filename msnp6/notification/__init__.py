"""Notification server: login, lists, presence, challenges and the service commands."""
from .protocol import NotificationProtocol

__all__ = ["NotificationProtocol"]

"""Notification server: login, lists, presence, challenges and the service commands."""
from .protocol import NotificationFactory, NotificationProtocol

__all__ = ["NotificationFactory", "NotificationProtocol"]

"""Outgoing e-mail (``--smtp-relay``, ``--mail-from``): the options' values and the sender that
hands a plain-text mail to the operator's relay."""
from .mailer import Mailer
from .settings import MailSettings, SettingError, parse_mail_from, parse_relay

__all__ = ["MailSettings", "Mailer", "SettingError", "parse_mail_from", "parse_relay"]

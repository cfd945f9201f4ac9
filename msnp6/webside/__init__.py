"""The web side (``--web``): what the ``URL`` replies point at. ``ppsecure/md5auth.srf`` signs
a client's browser in (md5auth), the PROFILE page edits the member-directory entry, and every
other service the server hands out gets an honest page (pages); ``/signup`` makes accounts
(``--signup``). Not the admin port (msnp6.web)."""
from .site import web_site

__all__ = ["web_site"]

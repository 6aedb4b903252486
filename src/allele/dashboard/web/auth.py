"""Who may look: the dashboard's token rules.

* Bound to loopback (127.0.0.0/8, ``::1``, ``localhost``) the dashboard needs no token; bound to
  anything else it refuses to start without one (:func:`check_bind`).
* With a token, every request but the login page and the static assets must carry it: an
  ``Authorization: Bearer <token>`` or ``X-Allele-Token`` header (scripts, Prometheus), or the
  session cookie that the login page sets for browsers (an ``EventSource`` cannot send
  headers). Without it an API request gets 401 and a page redirects to the login page.
* The cookie holds an HMAC of the token, not the token; it is ``HttpOnly`` and
  ``SameSite=Strict``, so another site cannot make a browser send it; write endpoints also take
  JSON bodies only, which a cross-site form cannot send.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

from allele.errors import ConfigError
from allele.observe.export import check_token_length, is_loopback

COOKIE = "allele_session"
PUBLIC_PREFIXES = ("/static/", "/login", "/favicon.ico")


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback bind without a token (one line for the CLI)."""
    if not is_loopback(host) and not token:
        raise ConfigError(f"--host {host} exposes the dashboard beyond this machine: give a "
                          "token (ALLELE_DASHBOARD_TOKEN, or --token) or bind to 127.0.0.1")
    check_token_length(token, "dashboard")  # the rule `allele observe serve` applies too


def session_value(token: str) -> str:
    """The session cookie's value for ``token``."""
    return hmac.new(token.encode(), b"allele-dashboard-session", hashlib.sha256).hexdigest()


def authorized(token: str | None, headers: dict[str, str], cookies: dict[str, str]) -> bool:
    """Whether a request with these headers and cookies may pass."""
    if not token:
        return True
    given = headers.get("x-allele-token")
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if given is not None and hmac.compare_digest(given.encode(), token.encode()):
        return True
    cookie = cookies.get(COOKIE)
    return cookie is not None and hmac.compare_digest(cookie, session_value(token))


def safe_next(path: str | None) -> str:
    """Where to go after logging in: a local path only (never another site)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def login_redirect(path: str) -> str:
    return "/login?next=" + quote(path, safe="")

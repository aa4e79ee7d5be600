"""Keep credentials out of log records.

httpx logs every request line at INFO (``HTTP Request: GET <url> "HTTP/1.1 200 OK"``), and a
signed Storage URL carries its token in the query string: whoever reads the logs could
download the export while the URL lives. The filter here rewrites such records before any
handler sees them: every URL loses its query string (``?[redacted]``), and any configured
secret (worker JWT, webhook secret, API keys) is replaced by ``[redacted]``. Method, path and
status stay, so the line is still useful.

``install()`` attaches it to the HTTP client loggers; it is idempotent and called where
signed URLs are made (pipeline/storage.py) and by the long-running commands with their
settings' secrets.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.settings import Settings

# Loggers that print request URLs. A logger's filters apply only to records created on that
# very logger (not to its children), hence every httpcore logger by name.
HTTP_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "urllib3.connectionpool",
)

# scheme://host/path?query -> scheme://host/path?[redacted]; stops at whitespace and quotes.
_URL_QUERY = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>?]*)\?[^\s\"'<>]*")
MASK = "[redacted]"
# Shorter strings would redact ordinary words; no real secret is this short.
MIN_SECRET_LENGTH = 8

_lock = threading.Lock()
_secrets: set[str] = set()


def redact(text: str) -> str:
    """``text`` without URL query strings and without any registered secret."""
    text = _URL_QUERY.sub(r"\1?" + MASK, text)
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message in place when it holds a URL query or a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's problem, not ours
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


_FILTER = RedactingFilter()


def install(secrets: Iterable[str | None] = ()) -> None:
    """Attach the filter to the HTTP client loggers (once) and register ``secrets``."""
    with _lock:
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_LENGTH:
                _secrets.add(secret)
        for name in HTTP_LOGGERS:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)


def install_for(settings: Settings) -> None:
    """``install()`` with every secret of ``settings``: the fields kept out of its repr, and
    the password of DATABASE_URL if it carries one."""
    import contextlib
    from urllib.parse import urlsplit

    secrets: list[str | None] = [
        value
        for name, info in type(settings).model_fields.items()
        if not info.repr and isinstance(value := getattr(settings, name), str)
    ]
    database_url = getattr(settings, "database_url", None)
    if isinstance(database_url, str) and "://" in database_url:
        with contextlib.suppress(ValueError):  # not a URL after all: nothing to register
            secrets.append(urlsplit(database_url).password)
    install(secrets)

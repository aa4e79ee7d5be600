"""What in a message is machinery rather than the person's life: identifiers, stack traces,
pasted logs, URLs and paths.

A soulprint built from a 2023 export once opened with "you keep returning to uid, name and
node": words of pasted code. Topic candidates therefore come only from messages that are not
about machinery (`is_technical`), with what little of it remains cut out first
(`strip_machinery`), so a phrase never bridges a removed identifier.
"""

from __future__ import annotations

import re

# snake_case, camelCase / PascalCase with an inner capital, dotted names (os.path, a.b.c),
# calls (f(), obj.run(x)), `::` paths, and words glued to digits (utf8, x86, v2beta).
_IDENTIFIER = re.compile(
    r"""(?x)
      \b[A-Za-z]+_[A-Za-z0-9_]*\b          # snake_case, _private, CONSTANT_NAME
    | \b[a-z]+[A-Z][A-Za-z0-9]*\b          # camelCase
    | \b[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*\b  # PascalCase with an inner capital
    | \b[A-Za-z_]\w+(?:\.[A-Za-z_]\w+)+\b  # dotted.names (file.py, os.path; not e.g.)
    | \b[A-Za-z_]\w*\([^)\n]{0,40}\)       # calls: run(), get(x)
    | \b\w+::\w+                           # Rust/C++ paths
    | \b(?=\w*[A-Za-z])(?=\w*\d)\w{2,}\b   # letters glued to digits
    """
)
_URL = re.compile(r"(?:https?://|www\.|file://)\S+", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_PATH = re.compile(r"(?:~|\.{1,2})?(?:/[\w.@-]+){2,}/?|[A-Za-z]:\\[\w\\. -]+")
# A line of a stack trace or a log: "Traceback", "  File ...", "at com.x.Y(Y.java:1)",
# "ERROR 2024-01-01 ...", "[INFO] ...", "12:00:01.123 WARN ...", "KeyError: 'x'".
_TRACE_OR_LOG = re.compile(
    r"""(?xm)
      ^\s*Traceback\b
    | ^\s*File\s+"[^"]+",\s+line\s+\d+
    | ^\s*at\s+[\w.$<>]+\(.*\)\s*$
    | ^\s*\[?(?:DEBUG|INFO|WARN|WARNING|ERROR|FATAL|TRACE|CRITICAL)\]?[\s:]
    | ^\s*\d{4}-\d{2}-\d{2}[T\s]\d{2}:\d{2}
    | ^\s*\d{2}:\d{2}:\d{2}
    | \b[A-Z]\w*(?:Error|Exception|Warning):\s
    | \b(?:Error|Exception)\s+in\b
    """
)


# One pass for all of it; URLs and e-mails first, so their dots are not read as names.
_MACHINERY = re.compile(
    r"(?i:https?://|www\.|file://)\S+|"
    + "|".join(f"(?:{p.pattern})" for p in (_EMAIL, _PATH))
    + "|"
    + _IDENTIFIER.pattern.replace("(?x)", ""),
    re.VERBOSE,
)


def is_technical(prose: str) -> bool:
    """True when a message (code blocks already removed) is about machinery: it carries a
    stack trace or log lines, or two or more identifiers. One stray identifier or URL in a
    chatty message is cut out instead (`strip_machinery`)."""
    if _TRACE_OR_LOG.search(prose):
        return True
    found = _IDENTIFIER.finditer(prose)
    return next(found, None) is not None and next(found, None) is not None


def strip_machinery(prose: str) -> str:
    """The prose with URLs, e-mails, paths and identifiers replaced by a clause break, so no
    topic phrase spans the hole they leave."""
    return _MACHINERY.sub(" | ", prose)


def is_identifier(token: str) -> bool:
    """True for a token shaped like a code name (snake_case, camelCase, dotted, a call)."""
    return bool(_IDENTIFIER.fullmatch(token.strip("`'\"")))

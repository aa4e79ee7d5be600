"""Text that PostgreSQL and UTF-8 accept, whatever an export contains.

Two layers: :class:`SafeJSONStream` repairs the raw bytes before the JSON parser sees
them (yajl rejects invalid UTF-8 and mangles escaped lone surrogates, which would end
the whole stream), and :func:`clean_text` makes a decoded string safe to store.
"""

from __future__ import annotations

import codecs
import re
from typing import BinaryIO

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# An escape is real only after an even run of backslashes; a high surrogate escape
# followed by a low one is a valid pair and is kept as is.
_SURROGATE_ESCAPE = re.compile(
    rb"(?<!\\)((?:\\\\)*)\\u(?:(d[89ab][0-9a-f]{2})(\\ud[c-f][0-9a-f]{2})?|(d[c-f][0-9a-f]{2}))",
    re.IGNORECASE,
)
_HIGH_ESCAPE = re.compile(rb"\\ud[89ab][0-9a-f]{2}", re.IGNORECASE)
_BOM = codecs.BOM_UTF8
_TAIL = 12  # longest escape we must see whole: a surrogate pair "\\ud83d\\ude00"


def clean_text(text: str) -> str:
    """Drop NUL characters and replace lone surrogates by U+FFFD; never raises."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii():  # isascii is O(1) in CPython, so ASCII text costs nothing here
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = _LONE_SURROGATE.sub("\ufffd", text)
    return text


def _fix_escape(match: re.Match[bytes]) -> bytes:
    if match.group(2) is not None and match.group(3) is not None:
        return match.group(0)
    run = match.group(1) if match.group(1) is not None else b""
    return run + b"\\ufffd"


class SafeJSONStream:
    """A read-only binary stream over ``raw`` whose bytes are valid UTF-8 JSON text.

    Invalid UTF-8 bytes become U+FFFD, escaped lone surrogates (``\\udc00``) become
    ``\\ufffd``, and a leading byte-order mark is dropped. ``bytes_read`` counts raw
    bytes consumed, to say where a broken file broke.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._carry = b""
        self._started = False
        self._eof = False
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        while True:
            if self._eof:
                out, self._carry = self._carry, b""
                return out
            chunk = self._raw.read(size if size > 0 else 1 << 16)
            self.bytes_read += len(chunk)
            if not self._started:
                while chunk and len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                    more = self._raw.read(len(_BOM) - len(chunk))  # a tiny read split the BOM
                    if not more:
                        break
                    chunk += more
                self.bytes_read = len(chunk)
                self._started = True
                if chunk.startswith(_BOM):
                    chunk = chunk[len(_BOM):]
                    if not chunk:
                        continue  # the BOM was all of this read, not the end of the file
            if not chunk:
                self._eof = True
                tail = self._decoder.decode(b"", final=True).encode("utf-8")
                self._carry = self._repair_escapes(self._carry + tail)
                continue
            out = self._carry + self._repair_utf8(chunk)
            cut = self._safe_cut(out)
            out, self._carry = out[:cut], out[cut:]
            out = self._repair_escapes(out)
            if out:
                return out

    def _repair_utf8(self, chunk: bytes) -> bytes:
        if chunk.isascii() and not self._decoder.getstate()[0]:
            return chunk
        return self._decoder.decode(chunk).encode("utf-8")

    @staticmethod
    def _repair_escapes(data: bytes) -> bytes:
        if b"\\u" not in data and b"\\U" not in data:
            return data
        return _SURROGATE_ESCAPE.sub(_fix_escape, data)

    @staticmethod
    def _safe_cut(data: bytes) -> int:
        """Where to stop so that no escape (nor its backslash run) straddles two reads."""
        start = max(0, len(data) - _TAIL)
        pos = data.find(b"\\", start)
        if pos < 0:
            return len(data)
        if _HIGH_ESCAPE.fullmatch(data, max(0, pos - 6), pos):
            pos -= 6  # never part a high surrogate from the low one that follows it
        while pos > 0 and data[pos - 1] == 0x5C:  # walk back to the start of the run
            pos -= 1
        return pos

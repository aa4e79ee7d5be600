"""Text that PostgreSQL and UTF-8 accept, whatever an export contains.

Two layers: :class:`SafeJSONStream` repairs the raw bytes before the JSON parser sees
them (yajl rejects invalid UTF-8 and mangles escaped lone surrogates, which would end
the whole stream), and :func:`clean_text` makes a decoded string safe to store.

Some exports hold characters beyond U+FFFF as CESU-8: each UTF-16 surrogate half encoded
as its own 3-byte sequence (``ED A0 BD ED B8 82`` for U+1F602). Strict UTF-8 calls every
one of those bytes invalid; the stream decodes a pair to the real character and a lone
half to one U+FFFD.
"""

from __future__ import annotations

import codecs
import re
from typing import BinaryIO

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# An escape is real only after an even run of backslashes; a high surrogate escape
# followed by a low one is a valid pair and is kept as is.
_SURROGATE_ESCAPE = re.compile(
    rb"(?<!\\)((?:\\\\)*)\\u(?:([dD][89abAB][0-9a-fA-F]{2})(\\u[dD][c-fC-F][0-9a-fA-F]{2})?"
    rb"|([dD][c-fC-F][0-9a-fA-F]{2}))",
)
_HIGH_ESCAPE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")
# A regex finds this faster than `in` (which crawls on the frequent "u").
_SURROGATE_HINT = re.compile(rb"\\u[dD]")
_BOM = codecs.BOM_UTF8
# The end of a block that may be the start of a CESU-8 surrogate pair: held back until
# the next block says how it goes on.
_CESU_OPEN_TAIL = re.compile(rb"\xed(?:[\xa0-\xbf]|[\xa0-\xaf][\x80-\xbf](?:\xed[\xb0-\xbf]?)?)?\Z")
_CESU_ERRORS = "soulprint-cesu8"
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


def _cesu8_or_replace(exc: UnicodeError) -> tuple[str, int]:
    """Decode error handler: a surrogate half encoded as 3 bytes becomes that half (paired
    up afterwards by :func:`_pair_surrogates`); any other invalid byte run one U+FFFD."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    b = exc.object[exc.start : exc.start + 3]
    if len(b) == 3 and b[0] == 0xED and 0xA0 <= b[1] <= 0xBF and 0x80 <= b[2] <= 0xBF:
        return chr(0xD000 | ((b[1] & 0x3F) << 6) | (b[2] & 0x3F)), exc.start + 3
    return "\ufffd", exc.end


codecs.register_error(_CESU_ERRORS, _cesu8_or_replace)


def _pair_surrogates(text: str) -> str:
    """Surrogate pairs joined into their character; a lone half becomes one U+FFFD."""
    if not _LONE_SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def decode_lenient(data: bytes) -> str:
    """``data`` decoded as UTF-8, CESU-8 pairs included; never raises."""
    return _pair_surrogates(codecs.utf_8_decode(data, _CESU_ERRORS, True)[0])


def _fix_escape(match: re.Match[bytes]) -> bytes:
    if match.group(2) is not None and match.group(3) is not None:
        return match.group(0)
    run = match.group(1) if match.group(1) is not None else b""
    return run + b"\\ufffd"


class SafeJSONStream:
    """A read-only binary stream over ``raw`` whose bytes are valid UTF-8 JSON text.

    Invalid UTF-8 bytes become U+FFFD, escaped lone surrogates (``\\udc00``) become
    ``\\ufffd``, and a leading byte-order mark is dropped. ``bytes_read`` counts raw
    bytes consumed, to say where a broken file broke. Clean blocks (the usual case) pass
    through without a copy.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._utf8_tail = b""  # an incomplete UTF-8 sequence at the end of the last block
        self._carry = b""  # bytes held back so that no escape straddles two blocks
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
                    chunk = chunk[len(_BOM) :]
                    if not chunk:
                        continue  # the BOM was all of this read, not the end of the file
            if not chunk:
                self._eof = True
                tail = decode_lenient(self._utf8_tail).encode("utf-8")
                self._carry = self._repair_escapes(self._carry + tail)
                continue
            chunk = self._repair_utf8(chunk)
            if not self._carry and (
                b"\\" not in chunk
                or (b"\\" not in chunk[-_TAIL:] and not _SURROGATE_HINT.search(chunk))
            ):
                if chunk:
                    return chunk  # nothing to repair and nothing can straddle: no copy
                continue
            out = self._carry + chunk
            cut = self._safe_cut(out)
            out, self._carry = out[:cut], out[cut:]
            out = self._repair_escapes(out)
            if out:
                return out

    def _repair_utf8(self, chunk: bytes) -> bytes:
        if self._utf8_tail:
            chunk, self._utf8_tail = self._utf8_tail + chunk, b""
        if chunk.isascii():
            return chunk
        try:
            # Strict decoding only validates; valid bytes are passed on unchanged.
            consumed = codecs.utf_8_decode(chunk, "strict", False)[1]
        except UnicodeDecodeError:
            held = _CESU_OPEN_TAIL.search(chunk, max(0, len(chunk) - 5))
            body = chunk[: held.start()] if held else chunk
            text, consumed = codecs.utf_8_decode(body, _CESU_ERRORS, False)
            self._utf8_tail = chunk[consumed:]
            return _pair_surrogates(text).encode("utf-8")
        if consumed < len(chunk):
            self._utf8_tail = chunk[consumed:]
            return chunk[:consumed]
        return chunk

    @staticmethod
    def _repair_escapes(data: bytes) -> bytes:
        if not _SURROGATE_HINT.search(data):
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

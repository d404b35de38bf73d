"""Go's text rules, which the work protocol's replies and stored fields
follow: invalid UTF-8 becomes U+FFFD per byte, ``strings.TrimSpace``'s idea
of white space, and strings cut at a byte count.  ``faktory.wire`` hands them
on (``wire.text``, ``wire.trim``, ``wire.cut``)."""

from __future__ import annotations

import codecs

GO_REPLACE = "faktory-go-replace"


def _go_replace(exc: UnicodeError) -> tuple[str, int]:
    """Each byte of an invalid UTF-8 sequence becomes one U+FFFD, as Go does."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "\ufffd" * (exc.end - exc.start), exc.end


codecs.register_error(GO_REPLACE, _go_replace)


def text(raw: bytes) -> str:
    """A command's bytes as text, invalid UTF-8 replaced the way Go replaces it."""
    return raw.decode("utf-8", GO_REPLACE)


# Go's unicode.IsSpace, which strings.TrimSpace strips (Python's strip() also
# takes \x1c-\x1f, which Go keeps).
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + ("\u2028\u2029\u202f\u205f\u3000")
)


def trim(s: str) -> str:
    """Go's ``strings.TrimSpace``."""
    return s.strip(_GO_SPACE)


def cut(s: str, limit: int) -> str:
    """The first ``limit`` bytes of ``s`` in UTF-8, as Go slices a string: a
    character cut in two becomes U+FFFD per byte left (Go's JSON encoder does that)."""
    if len(s) * 4 <= limit:
        return s
    b = s.encode("utf-8", "surrogatepass")
    return s if len(b) <= limit else text(b[:limit])

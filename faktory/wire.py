"""Decoding the work protocol's JSON by the rules of the Go server.

Faktory is written in Go and decodes every command's JSON with
``encoding/json`` into typed structs; clients are written against what that
accepts and hands back.  This module is the one place that reproduces those
rules, so that no handler needs its own checks:

- an integer field takes only an integer literal in its Go type's range
  (``1.0``, ``1e2`` and ``9223372036854775808`` are refused for ``int``);
  numbers in free-form values (``args``, ``custom``) must fit a float64,
- struct keys match exactly first, else case-insensitively (Go's folding:
  ``JID`` is ``jid``, ``ſ`` is ``s``, ``K`` is ``k``); the last key that maps
  to a field wins; unknown keys are ignored,
- ``null`` leaves a string or integer field alone and clears anything else,
- lone UTF-16 surrogate escapes and invalid UTF-8 bytes become U+FFFD,
- nesting deeper than 10 000 levels is refused (Go's limit); ``NaN`` and
  ``Infinity`` are not JSON.

PUSH is the hot path: the common line (no surrogate escape, no huge number,
keys as written by every client, shallow) is decoded by the C decoder into
plain values and checked field by field; anything unusual makes that fast
path give up (``_Fallback``) and the careful decoder, which keeps each
object's key order and walks every value, decides.  Both give the same result.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from typing import Any

from .gotext import cut as cut  # Go's text rules, handed on as wire.cut/text/trim
from .gotext import text as text
from .gotext import trim as trim

MAX_DEPTH = 10000  # Go's encoding/json scanner limit, counting the outermost value

# Values nested 10 000 deep are decoded, stored and re-encoded by Python's
# json module, which recurses once per level (on the C stack, checked against
# the recursion limit): every later decode of a stored job must manage too.
if sys.getrecursionlimit() < MAX_DEPTH + 5000:
    sys.setrecursionlimit(MAX_DEPTH + 5000)


class WireError(ValueError):
    """JSON that the Go server's decoder refuses; the text names the field."""


class _Fallback(Exception):
    """The fast path met something only the careful decoder may judge."""


class _Big:
    """A number literal beyond float64 (``1e400``): an error wherever it is used."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _Obj(dict):
    """A JSON object from the careful decoder: a dict that remembers its pairs
    in order (Go resolves ``{"jid":..,"JID":..}`` by order)."""

    __slots__ = ("pairs",)


def _pairs(pairs: list[tuple[str, Any]]) -> _Obj:
    obj = _Obj(pairs)
    obj.pairs = pairs
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def _careful_float(s: str) -> Any:
    f = float(s)
    return _Big(s) if f in (_INF, -_INF) else f


def _careful_int(s: str) -> Any:
    # 310 characters (a sign and 309 digits, or 310 digits) are at least 1e309.
    return _Big(s) if len(s) >= 310 else int(s)


def _fast_float(s: str) -> float:
    f = float(s)
    if f in (_INF, -_INF):
        raise _Fallback
    return f


def _fast_int(s: str) -> int:
    if len(s) > 20:  # past int64: let the careful decoder say where it is used
        raise _Fallback
    return int(s)


def _fast_object(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):  # a repeated key: Go may report the first's type error
        raise _Fallback
    return obj


class _PairList(list):
    """A JSON object as the list of its pairs (built in C, no Python hook):
    the fast decoder's form of a struct when it is the document's only object."""

    __slots__ = ()


_INF = float("inf")
# The fast decoders: objects as pair lists (_flat) or plain dicts (_fast); the
# _long ones check integers too (parse_int None is Python's own int, in C).
_flat, _flat_long, _fast, _fast_long = (
    json.JSONDecoder(
        parse_constant=_no_constant, parse_float=_fast_float, parse_int=ints, object_pairs_hook=hook
    )
    for hook in (_PairList, _fast_object)
    for ints in (None, _fast_int)
)
_careful = json.JSONDecoder(
    parse_constant=_no_constant,
    parse_float=_careful_float,
    parse_int=_careful_int,
    object_pairs_hook=_pairs,
)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _too_deep(doc: str) -> bool:
    """Whether ``doc`` nests beyond MAX_DEPTH (only called when it has that many brackets)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", doc))
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH


def _parse(doc: str) -> Any:
    """The careful parse: ordered objects, ``_Big`` for huge numbers."""
    if doc.count("[") + doc.count("{") > MAX_DEPTH and _too_deep(doc):
        raise WireError(f"exceeded max depth ({MAX_DEPTH} levels of nesting)")
    try:
        return _careful.decode(doc)
    except RecursionError:
        raise WireError(f"exceeded max depth ({MAX_DEPTH} levels of nesting)") from None
    except ValueError as e:
        raise WireError(str(e)) from None


def _fix(s: str) -> str:
    """Lone surrogates (from ``\\ud800`` escapes) become U+FFFD, as in Go."""
    if s.isascii():
        return s
    return _SURROGATE.sub("\ufffd", s)


def _what(value: Any) -> str:
    """How Go's error names a JSON value: ``number 1e400``, ``string``..."""
    if isinstance(value, _Big):
        return f"number {value.text[:40]}{'...' if len(value.text) > 40 else ''}"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return f"number {json.dumps(value)}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


# -- types -------------------------------------------------------------------------
ANYTHING = object()  # ``Type.fast``: any value is taken as it is


class Type:
    """A Go type: ``conv`` checks and converts one decoded JSON value.

    ``careful`` is False on the fast path, where strings hold no surrogates,
    numbers are finite and objects are plain dicts."""

    go = "?"
    scalar = False  # null leaves the field as it was (else null clears it)
    zero: Any = None  # what null becomes as an element of a list or map
    # On the fast path a struct takes a field's value as it is when its
    # Python type is ``fast[0]`` (and, for integers, in ``fast[1]..fast[2]``),
    # or always when ``fast`` is ANYTHING; None: call ``conv``.
    fast: Any = None

    def conv(self, value: Any, path: str, careful: bool) -> Any:
        raise NotImplementedError

    def refuse(self, value: Any, path: str) -> WireError:
        return WireError(
            f"json: cannot unmarshal {_what(value)} into Go struct field {path} of type {self.go}"
        )


class Str(Type):
    go = "string"
    scalar = True
    zero = ""
    fast = (str, None, None)

    def conv(self, value, path, careful):
        if type(value) is str:
            return _fix(value) if careful else value
        raise self.refuse(value, path)


class Int(Type):
    scalar = True
    zero = 0

    def __init__(self, go: str, lo: int, hi: int) -> None:
        self.go, self.lo, self.hi = go, lo, hi
        self.fast = (int, lo, hi)

    def conv(self, value, path, careful):
        if type(value) is int and self.lo <= value <= self.hi:
            return value
        raise self.refuse(value, path)


class AnyValue(Type):
    """Go's ``any``: every JSON value, numbers as float64."""

    go = "float64"
    fast = ANYTHING

    def conv(self, value, path, careful):
        if not careful:
            return value
        # Iterative, with the path built only for an error: values may nest
        # 10 000 deep, and a path string per level would cost O(depth²).
        top: list[Any] = [None]
        stack: list[tuple[Any, Any, Any, Any]] = [(value, top, 0, None)]
        while stack:
            v, parent, slot, node = stack.pop()
            t = type(v)
            if t is str:
                v = _fix(v)
            elif t is list:
                out: Any = [None] * len(v)
                stack.extend((x, out, i, (node, i)) for i, x in enumerate(v))
                v = out
            elif t is _Obj or t is dict:
                fields = {_fix(k): x for k, x in (v.pairs if t is _Obj else v.items())}
                out = dict.fromkeys(fields)
                stack.extend((x, out, k, (node, k)) for k, x in fields.items())
                v = out
            elif t is int:
                try:
                    float(v)
                except OverflowError:
                    raise self.refuse(v, _path(path, node)) from None
            elif t is _Big or (t is float and (v - v) != 0):  # not finite
                raise self.refuse(v, _path(path, node))
            parent[slot] = v
        return top[0]


def _path(path: str, node: Any) -> str:
    keys = []
    while node is not None:
        node, key = node
        keys.append(str(key))
    return ".".join([path, *reversed(keys)])


class _Of(Type):
    """A Go container of ``elem``: named ``<kind><elem>``; of ``interface {}``
    it takes its Python type as it is on the fast path."""

    kind = ""
    pytype: type = object

    def __init__(self, elem: Type) -> None:
        self.elem = elem
        self.go = self.kind + ("interface {}" if isinstance(elem, AnyValue) else elem.go)
        if isinstance(elem, AnyValue):
            self.fast = (self.pytype, None, None)


class List(_Of):
    """A Go slice: a JSON array whose elements are all ``elem``."""

    kind, pytype = "[]", list

    def conv(self, value, path, careful):
        if type(value) is not list:
            raise self.refuse(value, path)
        elem = self.elem
        if isinstance(elem, AnyValue):
            return elem.conv(value, path, careful) if careful else value
        return [
            (elem.zero if v is None else elem.conv(v, f"{path}.{i}", careful))
            for i, v in enumerate(value)
        ]


class Map(_Of):
    """``map[string]X``: keys as they are (case matters), the last of equal keys wins."""

    kind, pytype = "map[string]", dict

    def conv(self, value, path, careful):
        if not isinstance(value, dict):
            raise self.refuse(value, path)
        elem = self.elem
        if isinstance(elem, AnyValue):
            return elem.conv(value, path, careful) if careful else value
        items = value.pairs if isinstance(value, _Obj) else value.items()
        return {
            (_fix(k) if careful else k): (
                elem.zero if v is None else elem.conv(v, f"{path}.{k}", careful)
            )
            for k, v in items
        }


def _fold(key: str) -> str | None:
    """Go's case folding of a key, for ASCII field names; None if it cannot match one."""
    if not key.isascii():
        key = key.replace("\u017f", "s").replace("\u212a", "k")
        if not key.isascii():
            return None
    return key.lower()


class Struct(Type):
    """A Go struct: fields by JSON name; keys matched exactly, else folded."""

    @property
    def zero(self) -> dict:
        return {}

    def __init__(self, go: str, fields: dict[str, Type]) -> None:
        self.go = go
        self.fields = fields
        self.folded = {_fold(k): k for k in fields}
        # For the fast path: exact name -> (Python type or None for any, lo, hi).
        self.quick = {
            k: (None, None, None) if t.fast is ANYTHING else t.fast
            for k, t in fields.items()
            if t.fast is not None
        }

    def conv(self, value, path, careful=True):
        if value is None:
            return {}
        t = type(value)
        if t is _Obj:
            items = value.pairs
        elif t is _PairList:
            items = value
        elif t is dict:
            items = value.items()
        else:
            raise WireError(
                f"json: cannot unmarshal {_what(value)} into Go value of type {self.go}"
                if path == self.go
                else f"json: cannot unmarshal {_what(value)} into Go struct field {path} "
                f"of type {self.go}"
            )
        # Keys in document order: the fast decoder refuses repeated keys, so a
        # plain dict's order is the document's too (the last key wins).
        fields = self.fields
        out: dict[str, Any] = {}
        quick = self.quick if not careful else {}
        for key, v in items:
            q = quick.get(key)
            if q is not None:
                pytype, lo, hi = q
                if pytype is None or (type(v) is pytype and (lo is None or lo <= v <= hi)):
                    out[key] = v
                    continue
            typ = fields.get(key)
            name = key
            if typ is None:
                name = self.folded.get(_fold(key))
                if name is None:
                    continue  # unknown keys are ignored, whatever they hold
                typ = fields[name]
            if v is None:
                if not typ.scalar:
                    out.pop(name, None)
                continue
            # The quick check again, for a folded key: written out twice rather
            # than called, as this loop runs for every field of every PUSH.
            if not careful and name != key and (q := self.quick.get(name)) is not None:
                pytype, lo, hi = q
                if pytype is None or (type(v) is pytype and (lo is None or lo <= v <= hi)):
                    out[name] = v
                    continue
            if type(v) is list and name in out and getattr(typ, "elem", ANY).scalar:
                # A repeated key: Go decodes into the slice it already has, so a
                # null element keeps the value the earlier array had there.
                before = out[name]
                v = [before[i] if x is None and i < len(before) else x for i, x in enumerate(v)]
            out[name] = typ.conv(v, f"{path}.{name}", careful)
        return out


class Lenient(Type):
    """A field only this server reads (``priority``): any JSON, never an error."""

    fast = ANYTHING

    def conv(self, value, path, careful):
        return value


INT = Int("int", -(2**63), 2**63 - 1)
INT64 = Int("int64", -(2**63), 2**63 - 1)
UINT8 = Int("uint8", 0, 255)
STR = Str()
ANY = AnyValue()

FAILURE = Struct(
    "Failure",
    {
        "failed_at": STR,
        "next_at": STR,
        "message": STR,
        "errtype": STR,
        "backtrace": List(STR),
        "retry_count": INT,
        "remaining": INT,
    },
)
JOB = Struct(
    "Job",
    {
        "retry": INT,
        "failure": FAILURE,
        "custom": Map(ANY),
        "jid": STR,
        "queue": STR,
        "jobtype": STR,
        "created_at": STR,
        "enqueued_at": STR,
        "at": STR,
        "args": List(ANY),
        "reserve_for": INT,
        "backtrace": INT,
        "priority": Lenient(),  # not in Go's Job: honoured here (docs/protocol.md)
    },
)
JOBS = List(JOB)
FAIL = Struct("FailPayload", {"jid": STR, "message": STR, "errtype": STR, "backtrace": List(STR)})
BEAT = Struct("ClientBeat", {"current_state": STR, "wid": STR, "rss_kb": INT64})
HELLO = Struct(
    "ClientData",
    {
        "hostname": STR,
        "wid": STR,
        "pwdhash": STR,
        "username": STR,
        "labels": List(STR),
        "pid": INT,
        "rss_kb": INT64,
        "v": UINT8,
    },
)
FILTER = Struct("JobFilter", {"regexp": STR, "jobtype": STR, "jids": List(STR)})
OPERATION = Struct(
    "Operation",
    {
        "filter": FILTER,
        "cmd": STR,
        "target": STR,
        "count": Lenient(),  # not in Go's Operation: faktory-cli's (opcommands)
    },
)
STRINGS = Map(STR)  # ACK's map[string]string


def decode(doc: str, typ: Type) -> Any:
    """Decode one command's JSON into ``typ`` as Go would; WireError if refused."""
    if ("\\u" not in doc or not _SURROGATE_ESCAPE.search(doc)) and (
        len(doc) <= 2 * MAX_DEPTH or doc.count("[") + doc.count("{") <= MAX_DEPTH
    ):
        long = len(doc) > 300
        if isinstance(typ, Struct) and doc.count("{") == 1:
            # The only object is the struct itself: its pairs in order are all
            # we need, and a C-built list is cheaper than a Python hook.
            decoder = _flat_long if long else _flat
        else:
            decoder = _fast_long if long else _fast
        try:
            try:
                # scan_once: what decode() does, without its two whitespace scans
                value, end = decoder.scan_once(doc, 0)
            except StopIteration:
                end = -1
            if end != len(doc):  # leading or trailing space, extra data, not JSON
                value = decoder.decode(doc)
            return _top(typ, value, False)
        except (_Fallback, RecursionError):
            pass
        except WireError:
            raise
        except ValueError as e:
            raise WireError(str(e)) from None
    return _top(typ, _parse(doc), True)


def plain_struct(doc: str, typ: Struct, names: frozenset[str]) -> dict | None:
    """``decode(doc, typ)`` for the plainest documents, or None.

    Plain means: one JSON object, no backslash (so no escape at all), no
    space around it, shallow, no key repeated in any object, every key of
    the top object written with its exact name from ``names`` and every
    value of its field's type.  Such a document is already what the server
    would store (PUSH keeps its text and only adds fields: ``job.parse_plain``);
    for anything else the caller uses ``decode``, which judges it."""
    objects = doc.count("{")
    if "\\" in doc or objects + doc.count("[") > PLAIN_DEPTH:
        return None
    found = plain_at(doc, 0, typ, names, objects == 1)
    return found[0] if found is not None and found[1] == len(doc) else None


def plain_at(
    doc: str, start: int, typ: Struct, names: frozenset[str], flat: bool = False
) -> tuple[dict, int] | None:
    """The plain object (``plain_struct``) at ``doc[start:]`` and where it
    ends, or None; the caller checks for backslashes and depth.  ``flat``:
    it holds no other object (its pairs come as a list built in C)."""
    long = len(doc) > 300
    decoder = (_flat_long if long else _flat) if flat else (_fast_long if long else _fast)
    try:  # dicts refuse a repeated key in any object (_Fallback)
        pairs, end = decoder.scan_once(doc, start)
    except (StopIteration, ValueError, _Fallback, RecursionError):
        return None
    if type(pairs) is dict:
        pairs = pairs.items()
    elif type(pairs) is not _PairList:
        return None
    quick = typ.quick
    out: dict[str, Any] = {}
    for key, v in pairs:
        q = quick.get(key)
        if q is None or key not in names:
            return None
        pytype, lo, hi = q
        if pytype is not None and not (type(v) is pytype and (lo is None or lo <= v <= hi)):
            return None
        out[key] = v
    return (out, end) if len(out) == len(pairs) else None


# A plain document nests less than Redis' cjson decodes (1 000 levels), so the
# Lua scripts read it whatever the order of its keys (``lua/job.lua``).
PLAIN_DEPTH = 500


def _top(typ: Type, value: Any, careful: bool) -> Any:
    if isinstance(typ, Struct):
        return typ.conv(value, typ.go, careful)
    if value is None:
        return None
    return typ.conv(value, _top_name(typ), careful)


def _top_name(typ: Type) -> str:
    return typ.elem.go if isinstance(typ, List) and isinstance(typ.elem, Struct) else typ.go


def is_big(value: Any) -> bool:
    """Whether ``value`` is a number literal beyond float64 (only a ``Lenient``
    field can hold one)."""
    return isinstance(value, _Big)


def loads(doc: str) -> Any:
    """Decode a free-form JSON value (Go's ``any``) by the same rules."""
    return decode(doc, ANY)


def convert(value: Any, typ: Type) -> Any:
    """Check a value that is already Python data (a job from a config file or
    a batch template) against ``typ``; WireError if Go would refuse it."""
    return _top(typ, value, True)

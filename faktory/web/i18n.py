"""The web UI's languages: gettext catalogs (``locale/<ll>/LC_MESSAGES/
messages.po``, read with Babel at first use, so a plain ``pip install``
needs no build step), ``Accept-Language`` negotiation with a cookie
override, and locale-aware numbers, dates and relative times.

Code marks what people read with ``_("...")`` (or ``ngettext``/``pgettext``)
on a ``Translator``; module-level labels are marked with ``N_`` and
translated when drawn.  The English text is the message id, so a string
without a translation still reads correctly, in English."""

from __future__ import annotations

import datetime
import functools
import io
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from babel import Locale
from babel.dates import format_datetime, format_time, format_timedelta
from babel.messages.extract import extract
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations
from babel.units import format_unit

LOCALE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "locale")
STATIC_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static", "faktory.js")
COOKIE = b"faktory_locale"
DEFAULT = "en"

# Known locales: BCP 47 tag (what ``<html lang>`` says) -> name in itself.
# A catalog directory uses the gettext spelling (pt_BR, zh_CN).
NAMES: dict[str, str] = {
    "en": "English",
    "ar": "العربية",
    "de": "Deutsch",
    "es": "Español",
    "fr": "Français",
    "he": "עברית",
    "it": "Italiano",
    "ja": "日本語",
    "ko": "한국어",
    "nl": "Nederlands",
    "pl": "Polski",
    "pt-BR": "Português (Brasil)",
    "ru": "Русский",
    "sv": "Svenska",
    "tr": "Türkçe",
    "uk": "Українська",
    "zh-CN": "简体中文",
}


def catalog_path(tag: str) -> str:
    return os.path.join(LOCALE_DIR, tag.replace("-", "_"), "LC_MESSAGES", "messages.po")


# Served: English and every known locale whose catalog is installed.
LANGUAGES = {t: n for t, n in NAMES.items() if t == DEFAULT or os.path.isfile(catalog_path(t))}
_LANGUAGE_RANGE = re.compile(r"\A(?:[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*|\*)\Z")


def N_(message: str) -> str:  # noqa: N802 - the gettext convention extractors know
    """Marks a module-level string for extraction; translate it when drawn."""
    return message


def catalog_name(tag: str) -> str:
    """``pt-BR`` -> ``pt_BR``: the directory name under ``locale/``."""
    return tag.replace("-", "_")


def match(tag: str, served: Iterable[str] | None = None) -> str | None:
    """The served locale for one language tag: exact (``pt-BR``), else its
    language (``pt-PT`` -> ``pt`` -> ``pt-BR``: a bare language is served its
    one regional catalog), else None."""
    tags_ = list(LANGUAGES if served is None else served)
    tag = tag.strip().replace("_", "-").lower()
    if not tag or tag == "*":
        return None
    for known in tags_:
        if known.lower() == tag:
            return known
    language = tag.split("-")[0]
    return next((k for k in tags_ if k.split("-")[0].lower() == language), None)


def negotiate(
    accept_language: str | None, cookie: str | None = None, served: Iterable[str] | None = None
) -> str:
    """The locale to serve: the cookie's choice if it names a served locale,
    else the best ``Accept-Language`` entry we have, else English."""
    if cookie:
        chosen = match(cookie, served)
        if chosen:
            return chosen
    ranked: list[tuple[float, int, str]] = []
    for i, item in enumerate((accept_language or "")[:1000].split(",")[:50]):
        tag, *params = (p.strip() for p in item.split(";"))
        if not _LANGUAGE_RANGE.match(tag):
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = -1.0  # a broken weight: skip the entry
        if q > 0:
            ranked.append((-q, i, tag))
    for _q, _i, tag in sorted(ranked):
        chosen = match(tag, served)
        if chosen:
            return chosen
    return DEFAULT


@functools.cache
def translations(tag: str) -> NullTranslations:
    """The compiled catalog of one locale (English: none, ids are English).
    Fuzzy or empty entries are left out, so they show in English."""
    if tag == DEFAULT:
        return NullTranslations()
    try:
        with open(catalog_path(tag), "rb") as f:
            catalog = read_po(f, locale=catalog_name(tag))
    except OSError:
        return NullTranslations()
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf)


@functools.cache
def js_messages() -> tuple[str, ...]:
    """The message ids faktory.js asks for with ``_("...")``: extracted from
    the script itself, so the server sends exactly what the script uses."""
    try:
        with open(STATIC_JS, "rb") as f:
            found = extract("javascript", f, keywords={"_": None})
            return tuple(dict.fromkeys(m[1] for m in found if isinstance(m[1], str)))
    except OSError:
        return ()


_UTC = datetime.UTC


@dataclass
class Translator:
    """One locale's words and formats; every page draws through one."""

    tag: str

    def __post_init__(self) -> None:
        self.locale = Locale.parse(catalog_name(self.tag))
        self.rtl = self.locale.text_direction == "rtl"
        self._t = translations(self.tag)

    @property
    def dir(self) -> str:
        return "rtl" if self.rtl else "ltr"

    # -- words ---------------------------------------------------------------
    def _(self, message: str, **values: Any) -> str:
        """Translate; ``{name}`` placeholders are filled from ``values``."""
        text = self._t.gettext(message)
        return text.format(**values) if values else text

    gettext = _

    def ngettext(self, singular: str, plural: str, n: int, **values: Any) -> str:
        """The plural form for ``n``; ``{n}`` is ``n`` written in the locale."""
        text = self._t.ngettext(singular, plural, n)
        return text.format(n=self.number(n), **values)

    def pgettext(self, context: str, message: str, **values: Any) -> str:
        text = self._t.pgettext(context, message)
        return text.format(**values) if values else text

    # -- numbers, times ------------------------------------------------------
    def number(self, n: int | float | None) -> str:
        """1234567 -> '1,234,567' / '1.234.567' / '1 234 567'."""
        if n is None:
            return "-"
        try:
            if isinstance(n, float):
                return format_decimal(n, format="#,##0.##", locale=self.locale)
            return format_decimal(n, locale=self.locale)
        except (ArithmeticError, ValueError, TypeError):
            return str(n)  # an odd stored value (NaN, 1e300, text): shown as it is

    def datetime(self, ts: float) -> str:
        """An exact UTC time, as the locale writes dates."""
        when = datetime.datetime.fromtimestamp(ts, _UTC)
        return format_datetime(when, "medium", tzinfo=_UTC, locale=self.locale) + " UTC"

    def clock(self, ts: float) -> str:
        """The footer's clock: time of day in UTC."""
        when = datetime.datetime.fromtimestamp(ts, _UTC)
        return format_time(when, "medium", tzinfo=_UTC, locale=self.locale) + " UTC"

    def span(self, seconds: float) -> str:
        """A length of time in words: '3 minutes', '2 hours'."""
        return format_timedelta(seconds, threshold=1.0, locale=self.locale)

    def time_ago(self, ts: float | None, now: float) -> str:
        """'3 minutes ago' for the past, 'in 5 minutes' for the future."""
        if ts is None:
            return self._("never")
        delta = ts - now
        if -5 < delta <= 0:
            return self._("just now")
        return format_timedelta(delta, add_direction=True, threshold=1.0, locale=self.locale)

    def duration(self, seconds: float) -> str:
        """Uptime and latency, short: '3 d 4 h', '12 min', '1.5 s', '250 ms'."""
        if not isinstance(seconds, int | float) or not abs(seconds) < 1e12:
            return str(seconds)  # from an odd stored time (NaN, far future)
        if seconds < 1:
            return self._unit(round(seconds * 1000), "millisecond")
        if seconds < 60:
            return self._unit(round(seconds, 1), "second")
        if seconds < 3600:
            return self._unit(round(seconds / 60), "minute")
        if seconds < 86400:
            h, rest = divmod(int(seconds), 3600)
            return f"{self._unit(h, 'hour')} {self._unit(rest // 60, 'minute')}"
        d, rest = divmod(int(seconds), 86400)
        return f"{self._unit(d, 'day')} {self._unit(rest // 3600, 'hour')}"

    def _unit(self, value: float, unit: str) -> str:
        return format_unit(value, "duration-" + unit, length="short", locale=self.locale)

    def size_kb(self, kb: Any) -> str:
        """Resident memory of a worker, as reported in BEAT (kilobytes)."""
        try:
            kb = int(kb)
        except (TypeError, ValueError):
            return "-"
        if kb < 100_000:
            return self._("{n} KB", n=self.number(kb))
        if kb < 10_000_000:
            return self._("{n} MB", n=self.number(round(kb / 1024, 1)))
        return self._("{n} GB", n=self.number(round(kb / 1024 / 1024, 1)))

    # -- the script's share --------------------------------------------------
    def js_blob(self) -> str:
        """What faktory.js needs to speak the locale: its messages, the tag
        for ``Intl`` and the direction, as JSON for a ``data-`` attribute
        (data, not a script: the Content-Security-Policy allows no inline
        script)."""
        data = {
            "locale": self.tag,
            "dir": self.dir,
            "messages": {m: self._t.gettext(m) for m in js_messages()},
        }
        # "</" cannot end the data block early; JSON reads "<\/" as "</".
        return json.dumps(data, ensure_ascii=False)


@functools.cache
def translator(tag: str) -> Translator:
    return Translator(tag if tag in NAMES else DEFAULT)


def for_request(request) -> Translator:
    """The request's translator, negotiated once per request."""
    found = getattr(request, "_faktory_translator", None)
    if found is None:
        header = request.getHeader(b"accept-language")
        cookie = request.getCookie(COOKIE)
        tag = negotiate(
            header.decode("latin-1") if header else None,
            cookie.decode("latin-1") if cookie else None,
        )
        found = translator(tag)
        request._faktory_translator = found
    return found

"""Secrets from the setup file: resolved late, never printed, masked in every form a cart may echo."""

from __future__ import annotations

import base64
import html
import html.entities
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

if TYPE_CHECKING:
    from .config import Config

from .textfile import TextFileError, read_text

MASK = "********"
#: A secret file holds a password, a token or a key: never more than this.
SECRET_FILE_BYTES = 64 * 1024


class Secret:
    """A secret value. ``str``, ``repr`` and formatting show only a mask; use ``reveal()``."""

    __slots__ = ("_source", "_value")

    def __init__(self, value: str, source: str = "inline") -> None:
        self._value = value
        self._source = source

    def reveal(self) -> str:
        return self._value

    @property
    def source(self) -> str:
        """Where the secret came from (``env:NAME``, ``file:PATH``), safe to show."""
        return self._source

    def __repr__(self) -> str:
        return f"Secret({MASK}, source={self._source!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        # Pickling would write the value out in the clear; refuse.
        raise TypeError("a Secret cannot be pickled")


class SecretError(ValueError):
    """A secret reference that cannot be resolved; ``data_path``: where it stands in the settings, when known."""

    def __init__(self, message: str, data_path: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.data_path = list(data_path)


def resolve_secret(spec: Any, *, base_dir: Path | None = None) -> Secret:
    """Turn ``"value"``, ``{"$env": NAME}`` or ``{"$file": PATH}`` into a :class:`Secret`."""
    if isinstance(spec, Secret):
        return spec
    if isinstance(spec, str):
        return Secret(spec, "inline")
    for key, word in (("$env", "NAME"), ("$file", "PATH")):
        if isinstance(spec, dict) and set(spec) == {key} and not (isinstance(spec[key], str) and spec[key]):
            # {$env: 123}: the value is not echoed (it may be the secret itself, written in the wrong place).
            raise SecretError(f"{key} needs a {word} written as text: {{{key}: {word}}}")
    if isinstance(spec, dict) and set(spec) == {"$env"}:
        name = spec["$env"]
        if name not in os.environ:
            raise SecretError(f"environment variable {name} is not set; export it or use $file")
        return Secret(os.environ[name], f"env:{name}")
    if isinstance(spec, dict) and set(spec) == {"$file"}:
        path = Path(spec["$file"]).expanduser()
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            return Secret(read_text(path, max_bytes=SECRET_FILE_BYTES, kind="secret file").strip(), f"file:{path}")
        except OSError as exc:
            raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from None
        except TextFileError as exc:
            raise SecretError(f"secret file {path} is {exc.message}") from None
    raise SecretError("a secret must be a string, {$env: NAME} or {$file: PATH}")


def wrap_secrets(settings: Any, schema: Mapping[str, Any], base_dir: Path | None = None,
                 at: tuple[Any, ...] = ()) -> Any:
    """Settings as a connector gets them: ``{$env: NAME}`` and ``{$file: PATH}`` resolved anywhere, and
    every field the schema marks ``"secret": true`` a :class:`Secret`.

    A reference that cannot be resolved raises :class:`SecretError` with its ``data_path``.
    """
    if isinstance(settings, Mapping) and len(settings) == 1 and set(settings) <= {"$env", "$file"}:
        try:
            return resolve_secret(dict(settings), base_dir=base_dir)
        except SecretError as exc:
            raise SecretError(str(exc), at) from None
    if isinstance(settings, Mapping):
        props = schema.get("properties", {}) if isinstance(schema, Mapping) else {}
        out = {}
        for key, value in settings.items():
            sub = props.get(key, {})
            if isinstance(sub, Mapping) and sub.get("secret") and isinstance(value, str):
                out[key] = Secret(value, "inline")
            else:
                out[key] = wrap_secrets(value, sub, base_dir, (*at, key))
        return out
    return settings


def reveal(value: Any) -> Any:
    """A secret's value; anything else as it is."""
    return value.reveal() if isinstance(value, Secret) else value


def _replace_secrets(settings: Any, replace: Callable[[Secret], Any]) -> Any:
    if isinstance(settings, Secret):
        return replace(settings)
    if isinstance(settings, Mapping):
        return {k: _replace_secrets(v, replace) for k, v in settings.items()}
    if isinstance(settings, list):
        return [_replace_secrets(v, replace) for v in settings]
    return settings


def mask_secrets(settings: Any) -> Any:
    """A copy of settings with every secret replaced by the mask, for display."""
    return _replace_secrets(settings, lambda _: MASK)


def reveal_secrets(settings: Any) -> Any:
    """A copy of settings with every secret revealed: only to validate them against their schema."""
    return _replace_secrets(settings, Secret.reveal)


def _leaves(settings: Any) -> Iterator[Any]:
    """Every value in ``settings`` that is not a mapping or a list."""
    if isinstance(settings, Mapping):
        for item in settings.values():
            yield from _leaves(item)
    elif isinstance(settings, list | tuple):
        for item in settings:
            yield from _leaves(item)
    else:
        yield settings


def secret_values(settings: Any) -> list[str]:
    """Every secret's value anywhere in ``settings`` (mappings, lists)."""
    return [v.reveal() for v in _leaves(settings) if isinstance(v, Secret)]


def _plain_strings(settings: Any) -> list[str]:
    """Every string in ``settings`` that is not a secret: the user names a basic-auth header may pair it with."""
    return [v for v in _leaves(settings) if isinstance(v, str)]


#: The password of a ``scheme://user:password@host`` URL.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def mask_url_passwords(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` URL in it masked (an echoed
    database URL, before the setup file's secrets are known)."""
    return _URL_PASSWORD.sub(rf"\1{MASK}@", text)


# -- masking a text ----------------------------------------------------------
#
# A cart's error page may echo what it was posted in any encoding, and a
# reason may have been cut. Each secret becomes a regex that reads it one
# character at a time, each character in any of its spellings (raw, %-encoded,
# an HTML entity, a JSON or Python escape, or two of these stacked), so every
# mix of encodings is found, and so is its base64 (alone and as the
# ``user:secret`` of a basic-auth header).

#: Secrets shorter than this are masked only where they stand as a whole token:
#: masking every "a" of a reason would make it unreadable and hide nothing.
SHORT_SECRET = 3
#: A text ending with this many characters of a secret (a cut may have left
#: them) has that tail masked.
TAIL_CHARS = 3
#: What may follow a cut tail: a closing quote or bracket, an ellipsis, spaces.
_AFTER_CUT = r"(?=[\s'\"….)\]}]{0,4}\Z)"
_WORD = "A-Za-z0-9"

#: Whole-text encoders a cart may apply; applied to one character here.
_ENCODERS: tuple[Callable[[str], str], ...] = (
    lambda s: quote(s, safe=""),       # quote(s) keeps "/", which the raw spelling covers
    lambda s: quote_plus(s, safe=""),
    html.escape,                       # with quote=False a subset of these
    lambda s: json.dumps(s)[1:-1],     # ensure_ascii=False leaves the character raw
    lambda s: repr(s)[1:-1],
)
_EXTRA = {"/": ("\\/",), "'": ("\\'",)}  # PHP's json_encode, Python's repr of a text with both quotes
_HEX_ESCAPE = re.compile(r"(%|\\u|\\U|\\x|&#[xX])([0-9A-Fa-f]*)")


@lru_cache(maxsize=1)
def _entity_names() -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    for name, char in html.entities.html5.items():
        if name.endswith(";") and len(char) == 1:
            names.setdefault(char, []).append("&" + name)
    return names


@lru_cache(maxsize=4096)
def _spellings(c: str) -> frozenset[str]:
    """Every way one character may be echoed: raw, through one encoder, or through two."""
    if c.isascii() and c.isalnum():
        return frozenset(c)  # no encoder touches a letter or digit
    code = ord(c)
    units = c.encode("utf-16-be")
    first = {c, *(encode(c) for encode in _ENCODERS), *_EXTRA.get(c, ()), *_entity_names().get(c, ()),
             "".join(f"%{b:02X}" for b in c.encode()), f"&#{code};", f"&#x{code:x};",
             "".join(f"\\u{int.from_bytes(units[i:i + 2], 'big'):04x}" for i in range(0, len(units), 2))}
    if code < 256:
        first |= {f"%{code:02X}", f"\\x{code:02x}"}  # a Latin-1 page's form; Python's escape
    elif code > 0xFFFF:
        first.add(f"\\U{code:08x}")
    return frozenset(first | {encode(s) for s in first for encode in _ENCODERS})


def _pattern(spelling: str) -> str:
    """A spelling as a regex, the hex digits of its escapes in either case (``%2b`` is ``%2B``)."""
    out, pos = [], 0
    for m in _HEX_ESCAPE.finditer(spelling):
        lead, digits = m.groups()
        out += [re.escape(spelling[pos:m.start()]), r"&\#[xX]" if lead in ("&#x", "&#X") else re.escape(lead),
                "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in digits)]
        pos = m.end()
    return "".join(out) + re.escape(spelling[pos:])


def _alternatives(items: Iterable[tuple[str, str]]) -> str:
    """``(?:a|b)`` of (spelling, regex) pairs, the longest spelling first so none stops short."""
    ordered = sorted(set(items), key=lambda item: (-len(item[0]), item[0]))
    return ordered[0][1] if len(ordered) == 1 else "(?:" + "|".join(p for _, p in ordered) + ")"


@lru_cache(maxsize=4096)
def _char(c: str) -> str:
    return _alternatives((s, _pattern(s)) for s in _spellings(c))


@lru_cache(maxsize=4096)
def _char_or_cut(c: str) -> str:
    """One character, or the start of one of its spellings where the text ends (``%2`` of ``%26``)."""
    spellings = _spellings(c)
    cuts = {s[:i] for s in spellings for i in range(1, len(s))} - spellings
    if not cuts:
        return _char(c)
    # The cut first: where the text ends inside "&amp;", "&" alone must not be taken (the steps are possessive).
    return f"(?:{_alternatives((s, _pattern(s)) for s in cuts)}{_AFTER_CUT}|{_char(c)})"


def _forms(secret: str, users: Iterable[str]) -> dict[str, int]:
    """Each text form of ``secret`` to look for, with how many characters a cut tail must keep of it."""
    keep = min(TAIL_CHARS, len(secret))
    forms = {secret: keep}
    data, kept = secret.encode(), len(secret[:keep].encode())
    for lead in [b"", *(f"{user}:".encode() for user in sorted({"", *users}))]:  # alone, then as user:secret
        tail = -(-(len(lead) + kept) * 4 // 3)  # the base64 characters that carry the kept bytes
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            full = encode(lead + data).decode("ascii")
            forms.setdefault(full, tail)
            forms.setdefault(full.rstrip("="), tail)
    return forms


class _Finder:
    """One secret's regexes: its heads (a quick test), then all its forms (built when a head is seen)."""

    def __init__(self, secret: str, users: Iterable[str]) -> None:
        # The longest form first, so none stops short of the whole.
        self.forms = sorted(_forms(secret, users).items(), key=lambda item: (-len(item[0]), item[0]))
        self.short = len(secret) < SHORT_SECRET
        if self.short:
            self.forms = [(form, len(form)) for form, _ in self.forms]
        #: Every match starts with a head: a form's first characters, all that a cut tail must keep.
        self.heads = "|".join(dict.fromkeys(self._bounded(form[:keep], keep == len(form)) for form, keep in self.forms))
        self.head = re.compile(self.heads)

    def _bounded(self, form: str, whole: bool) -> str:
        pattern = "".join(map(_char, form))
        return f"(?<![{_WORD}]){pattern}(?![{_WORD}])" if self.short and whole else pattern

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        whole = [self._bounded(form, True) for form, _ in self.forms]
        # A cut tail: the head exactly, then whatever follows of the form up to the end. The
        # steps are possessive ((?:...)?+ never backtracks), so the cost stays linear in the form.
        cut = ["".join(map(_char, form[:keep])) + "".join(f"(?:{_char_or_cut(c)})?+" for c in form[keep:])
               + _AFTER_CUT for form, keep in self.forms
               if keep < len(form) and not any(o != form and o.startswith(form) for o, _ in self.forms)]
        return re.compile("|".join(whole + cut))


class SecretMask:
    """Masks secrets in a text, in every form a cart may echo them (see above).

    ``users`` are the names a basic-auth header may pair a secret with. A text
    costs one regex search for the secrets' first characters; a secret's full
    regex is built (once) when its first characters are seen.
    """

    def __init__(self, values: Iterable[str | Secret] = (), users: Iterable[str] = ()) -> None:
        self._users: dict[str, set[str]] = {}
        self._add(values, users)

    @classmethod
    def of_settings(cls, *settings: Any) -> SecretMask:
        """A mask over the secrets of each settings mapping, each paired with that mapping's own strings as users."""
        mask = cls()
        for group in settings:
            mask._add(secret_values(group), _plain_strings(group))
        return mask

    def _add(self, values: Iterable[str | Secret], users: Iterable[str]) -> None:
        names = set(users)
        for value in values:
            text = reveal(value)
            if text:  # an empty secret hides nothing
                self._users.setdefault(text, set()).update(names)

    @cached_property
    def _finders(self) -> list[_Finder]:
        return [_Finder(secret, users) for secret, users in self._users.items()]

    @cached_property
    def _any(self) -> re.Pattern[str] | None:
        if not self._users:
            return None
        # One alternation of plain heads: re skips, by their first characters, the positions that start none.
        return re.compile("|".join(f.heads for f in self._finders))

    def __call__(self, text: str) -> str:
        if self._any is None or self._any.search(text) is None:
            return text
        spans = sorted(m.span() for f in self._finders if f.head.search(text) for m in f.pattern.finditer(text))
        out, pos = [], 0
        for start, end in spans:  # overlapping finds (of several secrets) become one mask
            if end <= pos:
                continue
            if start >= pos:
                out += [text[pos:start], MASK]
            pos = end
        return "".join(out) + text[pos:]

    def __bool__(self) -> bool:
        return bool(self._users)

    def __repr__(self) -> str:
        return f"SecretMask({len(self._users)} secrets)"

    def __reduce__(self) -> Any:
        # Pickling would write the secrets out in the clear; refuse (as Secret does).
        raise TypeError("a SecretMask cannot be pickled")


def config_secret_mask(config: Config) -> SecretMask:
    """A mask over every secret a setup file holds: each store's connector and OSS settings, the stack's password."""
    groups: list[Any] = [store.connector for store in config.stores.values()]
    groups += [{"url": s.oss.url, "merchant": s.oss.merchant, "token": s.oss.token}
               for s in config.stores.values() if s.oss is not None]
    url = urlsplit(config.stack_url)
    if url.password:
        groups.append({"user": unquote(url.username or ""), "password": Secret(unquote(url.password))})
    return SecretMask.of_settings(*groups)


class MaskingFilter(logging.Filter):
    """Masks a log record's message and traceback before any handler sees it."""

    def __init__(self, mask: Callable[[str], str]) -> None:
        super().__init__()
        self.mask = mask

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: the handler would print them raw
            message = f"{record.msg} (log arguments that do not fit: {record.args!r})"
        record.msg, record.args = self.mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


@contextmanager
def masked_logs(mask: Callable[[str], str], prefix: str = "cartstatus") -> Iterator[None]:
    """While the block runs, mask every record of the ``prefix`` loggers (a filter on each: children do not
    inherit a parent's filters, and a logger's filter runs before any handler, its own or an ancestor's)."""
    names = [prefix, *(n for n in logging.root.manager.loggerDict if n.startswith(prefix + "."))]
    loggers = [logging.getLogger(n) for n in names]
    masking = MaskingFilter(mask)
    for logger in loggers:
        logger.addFilter(masking)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(masking)

"""Secrets from the setup file: resolved late, never printed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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
    """A secret reference that cannot be resolved."""


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


def mask_secrets(value: Any) -> Any:
    """A copy of settings with every secret replaced by the mask, for display."""
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, dict):
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value

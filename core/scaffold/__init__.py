"""The ``cartstatus new-connector`` scaffold: a plugin package that installs and passes the kit.

The templates in ``templates/`` are ``string.Template`` files (``${key}``,
``${Class}``, ...); ``templates/package`` becomes the plugin's import package.
``templates/_auth/<style>.tmpl`` holds, for each authentication style, the
sections (``## name`` lines, each followed by its text) that fill the
placeholders of the same names; a placeholder alone on its line whose section
is empty takes its line away.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

#: A matrix key (matrix/schema.json) that also makes a Python name.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: How the cart authenticates: ``--auth``'s choices, one ``templates/_auth`` file each.
AUTH_STYLES = ("api-key", "basic", "login")
DEFAULT_AUTH = "api-key"
#: The HTTP status the generated cart refuses a change with, by default.
DEFAULT_REFUSAL_STATUS = 422
_SECTION = re.compile(r"^## (\w+)\n", re.MULTILINE)


class ScaffoldError(ValueError):
    """The scaffold cannot be made (bad name, target exists)."""


@dataclass(frozen=True)
class Names:
    """Every name the package uses, from the connector's key."""

    key: str  # connector name, matrix row key, entry-point name
    dist: str  # the distribution: cartstatus-<key>
    module: str  # the import package: cartstatus_<key>
    Class: str  # the class-name stem, spelt as in the templates
    title: str  # the cart's display name

    @classmethod
    def from_key(cls, key: str) -> Names:
        if not NAME_PATTERN.match(key):
            raise ScaffoldError(
                f"connector name {key!r} must be the cart's matrix key: lowercase letters, digits and '_', "
                "starting with a letter, at most 64 (for example 'mycart' or 'my_cart')")
        parts = [p for p in key.split("_") if p]
        return cls(key=key, dist="cartstatus-" + key.replace("_", "-"), module="cartstatus_" + key,
                   Class="".join(p.capitalize() for p in parts), title=" ".join(p.capitalize() for p in parts))

    def values(self) -> dict[str, str]:
        return {"key": self.key, "dist": self.dist, "module": self.module, "Class": self.Class, "title": self.title,
                "env": self.key.upper(), "today": dt.date.today().isoformat()}


def _walk(node: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Traversable]]:
    found: list[tuple[tuple[str, ...], Traversable]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.is_dir():
            found.extend(_walk(child, (*prefix, child.name)))
        elif child.name.endswith(".tmpl"):
            found.append(((*prefix, child.name.removesuffix(".tmpl")), child))
    return found


def _sections(text: str, values: dict[str, str], where: str) -> dict[str, str]:
    """The ``## name`` sections of an auth style's file, each substituted and stripped of its last newline."""
    pieces = _SECTION.split(text)
    try:
        return {name: Template(body).substitute(values).rstrip("\n")
                for name, body in zip(pieces[1::2], pieces[2::2], strict=True)}
    except (KeyError, ValueError) as exc:  # a broken template is our bug, said plainly
        raise ScaffoldError(f"scaffold template {where} is broken: {exc}") from exc


def generate(key: str, directory: str | Path = ".", *, auth: str = DEFAULT_AUTH,
             refusal_status: int = DEFAULT_REFUSAL_STATUS) -> Path:
    """Write the plugin package for connector ``key`` into ``directory``/cartstatus-<key>; return its path.

    ``auth``: how the cart authenticates (one of :data:`AUTH_STYLES`);
    ``refusal_status``: the HTTP status (4xx or 5xx) its simulator refuses a change with.
    """
    names = Names.from_key(key)
    if auth not in AUTH_STYLES:
        raise ScaffoldError(f"--auth {auth!r} is not an authentication style: use one of {', '.join(AUTH_STYLES)}")
    if isinstance(refusal_status, bool) or not isinstance(refusal_status, int) or not 400 <= refusal_status <= 599:
        raise ScaffoldError(f"--refusal-status {refusal_status!r} must be an HTTP error status, 400 to 599")
    target = Path(directory) / names.dist
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another --dir or remove it")
    values = {**names.values(), "auth": auth, "refusal_status": str(refusal_status)}
    templates = resources.files(__name__) / "templates"
    values.update(_sections((templates / "_auth" / f"{auth}.tmpl").read_text(encoding="utf-8"), values,
                            f"_auth/{auth}.tmpl"))
    files: dict[Path, str] = {}
    for parts, template in _walk(templates):
        if parts[0] == "_auth":
            continue
        if parts[0] == "package":
            parts = (names.module, *parts[1:])
        text = template.read_text(encoding="utf-8")
        for name, value in values.items():  # an empty section takes its placeholder's line away
            if not value:
                text = text.replace(f"${{{name}}}\n", "")
        try:
            files[target.joinpath(*parts)] = Template(text).substitute(values)
        except (KeyError, ValueError) as exc:  # a broken template is our bug, said plainly
            raise ScaffoldError(f"scaffold template {'/'.join(parts)} is broken: {exc}") from exc
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target

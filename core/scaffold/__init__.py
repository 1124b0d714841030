"""The ``cartstatus new-connector`` scaffold: a plugin package that installs and passes the kit.

The templates in ``templates/`` are ``string.Template`` files (``${key}``,
``${Class}``, ...); ``templates/package`` becomes the plugin's import package.
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


def generate(key: str, directory: str | Path = ".") -> Path:
    """Write the plugin package for connector ``key`` into ``directory``/cartstatus-<key>; return its path."""
    names = Names.from_key(key)
    target = Path(directory) / names.dist
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another --dir or remove it")
    values = names.values()
    files: dict[Path, str] = {}
    for parts, template in _walk(resources.files(__name__) / "templates"):
        if parts[0] == "package":
            parts = (names.module, *parts[1:])
        try:
            files[target.joinpath(*parts)] = Template(template.read_text(encoding="utf-8")).substitute(values)
        except (KeyError, ValueError) as exc:  # a broken template is our bug, said plainly
            raise ScaffoldError(f"scaffold template {'/'.join(parts)} is broken: {exc}") from exc
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target

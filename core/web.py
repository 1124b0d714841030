"""The HTML of the OSS shopper pages and the matrix export: Jinja2 templates over one base and one stylesheet.

A package's templates live in its ``templates`` folder; the shared ``base.html``
and ``cartstatus.css`` in this package's. Every value is escaped (autoescape);
only what is marked safe (the stylesheet, a sanitised merchant header) is not.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import jinja2
from markupsafe import Markup

STYLESHEET = "cartstatus.css"


@cache
def environment(package: str) -> jinja2.Environment:
    """The templates of ``package`` and the shared ones; a name undefined in a template is an error."""
    loader = jinja2.ChoiceLoader([jinja2.PackageLoader(package), jinja2.PackageLoader("cartstatus")])
    return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


@cache
def stylesheet() -> Markup:
    """The shared stylesheet's text (ours, so safe to put in a ``<style>`` element as it is)."""
    return Markup(resources.files("cartstatus").joinpath("templates", STYLESHEET).read_text(encoding="utf-8"))

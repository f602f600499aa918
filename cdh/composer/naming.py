"""Zip names from the filename template; nothing a crashing process chooses can escape CORE_DIR.

A process picks its own comm (``%e``), hostname and path, so it can call
itself ``../../etc/x``. Every substituted value is reduced to
``[A-Za-z0-9._-]``, and so is the whole result (the template's own text
included), which then never contains ``/`` or ``..``, never starts with ``.``,
is never empty, and is at most MAX_NAME characters so that
``.<name>.zip.part`` and every ``<name>-...`` entry fit in NAME_MAX (255).
"""

from __future__ import annotations

import re

from cdh.config.table import DEFAULT_FILENAME_TEMPLATE, FILENAME_VARIABLES
from cdh.config.values import render_template, template_fields

MAX_NAME = 200  # + ".zip.part", "-<i>-image-info.json" or a "-<uuid8>" clash suffix stays < 255
POD_VARIABLES = frozenset({"namespace", "podname", "container"})
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_DOT_BEFORE_DOT = re.compile(r"\.(?=\.)")


def sanitize(value: object) -> str:
    """One value: None → "", anything outside ``[A-Za-z0-9._-]`` → ``_``."""
    if value is None:
        return ""
    return _UNSAFE.sub("_", str(value))


def safe_name(name: str) -> str:
    """The final guard on a whole name: no separators, no ``..``, no leading or trailing dot, not empty."""
    name = _DOT_BEFORE_DOT.sub("_", sanitize(name))
    if name.startswith("."):
        name = "_" + name[1:]
    name = name[:MAX_NAME]
    if name.endswith("."):
        name = name[:-1] + "_"  # "<name>.core" must not hold ".." either
    return name or "core"


def template_error(template: str) -> str | None:
    """Why ``template`` cannot be used, or None."""
    fields = template_fields(template)
    if fields is None:
        return "unbalanced braces"
    unknown = sorted(set(fields) - FILENAME_VARIABLES)
    if unknown:
        return "unknown variable(s) " + ", ".join(unknown)
    return None


def needs_pod(template: str) -> bool:
    """Whether the template names pod facts (known only from the container runtime)."""
    return bool(POD_VARIABLES.intersection(template_fields(template) or ()))


def render(template: str, values: dict[str, object]) -> tuple[str, str | None]:
    """(name, error). An unusable template falls back to the default; the error says why."""
    error = template_error(template)
    if error is not None:
        error = f"filename template {template!r} not usable ({error}); using the default"
        template = DEFAULT_FILENAME_TEMPLATE
    rendered = render_template(template, lambda field: sanitize(values.get(field)))
    return safe_name(rendered), error

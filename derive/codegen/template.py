"""Fill the kernel templates of ``derive/codegen/templates/`` (valid Python files).

A template is a Python module that ``ast.parse`` accepts and ruff lints.  Four constructs
make it a template (see ``softsym.derive.codegen.templates`` for how they keep it valid):

* **Inline values.**  ``__UPPER_CASE__`` tokens anywhere (code, strings, comments) are
  replaced by the string value of that name.
* **Blocks.**  A line ending in the comment ``# <<name>>`` is replaced, as a whole, by the
  string value ``name``: one line per line of the value, each non-empty line indented like the
  replaced line (the value is written without indentation; ``""`` gives one empty line).
  The statement in front of the comment is a stand-in naming what the block reads and defines,
  e.g. ``alpha_i = derived(ui)  # <<phi_code>>``.
* **Sections.**  Lines between ``# <<if name>>`` and ``# <<end name>>`` are kept when the
  boolean value ``name`` is true and dropped otherwise; the two marker lines are always dropped.
* **Template-only lines.**  Lines between ``# <<template only>>`` and ``# <<end template only>>``
  are never emitted: what the template needs to lint (the import of the stand-in ``derived``,
  stand-ins for inline values used in code) and notes on the template itself.

:func:`render` fails loudly (:class:`TemplateError`) on a placeholder without a value, a
value without a placeholder, a value of the wrong type, unbalanced sections, and on output
that still contains a placeholder, a marker or a stand-in.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

__all__ = ["TemplateError", "render", "template_names", "template_source"]

TEMPLATE_PACKAGE = "softsym.derive.codegen.templates"
TEMPLATE_ONLY = "template only"

_INLINE = re.compile(r"__([A-Z][A-Z0-9_]*)__")
_BLOCK = re.compile(r"^(?P<indent>[ ]*)(?P<standin>\S.*?)?[ ]*# <<(?P<name>[a-z][a-z0-9_]*)>>$")
_SECTION = re.compile(r"^[ ]*# <<(?:(?P<kind>if|end) (?P<name>[a-z][a-z0-9_]*)|(?P<tkind>end )?template only)>>$")
_LEFTOVER = (re.compile(r"# <<"), _INLINE, re.compile(r"\bderived\("))


class TemplateError(ValueError):
    """A template and the values given to fill it do not match."""


def template_names() -> list[str]:
    """Names of the shipped templates (file names without ``.py``), sorted."""
    root = resources.files(TEMPLATE_PACKAGE)
    return sorted(p.name[:-3] for p in root.iterdir() if p.name.endswith(".py") and p.name != "__init__.py")


@cache
def template_source(name: str) -> str:
    """The text of template ``name`` as shipped."""
    if name not in template_names():
        raise TemplateError(f"no template {name!r}; known: {template_names()}")
    return (resources.files(TEMPLATE_PACKAGE) / f"{name}.py").read_text(encoding="utf-8")


def _placeholders(line: str) -> list[str]:
    block = _BLOCK.match(line)
    return [block["name"]] if block else [mt[0][2:-2] for mt in _INLINE.finditer(line)]


def render(name: str, **values: str | bool) -> str:
    """Template ``name`` filled with ``values`` (strings for inline values and blocks, booleans for sections)."""
    return render_text(name, template_source(name), **values)


def render_text(name: str, text: str, **values: str | bool) -> str:
    """:func:`render` of the template text ``text`` (``name`` only labels errors)."""
    used: set[str] = set()

    def value(key: str, kind: type) -> str | bool:
        if key not in values:
            raise TemplateError(f"template {name!r}: no value for placeholder {key!r}")
        v = values[key]
        if type(v) is not kind:
            raise TemplateError(f"template {name!r}: value {key!r} must be a {kind.__name__}, not {type(v).__name__}")
        used.add(key)
        return v

    out: list[str] = []
    open_sections: list[tuple[str, bool]] = []
    for line in text.split("\n"):
        sec = _SECTION.match(line)
        if sec:
            key = sec["name"] or TEMPLATE_ONLY
            if sec["kind"] == "if" or (key == TEMPLATE_ONLY and not sec["tkind"]):
                keep = False if key == TEMPLATE_ONLY else bool(value(key, bool))
                open_sections.append((key, keep))
            elif not open_sections or open_sections[-1][0] != key:
                raise TemplateError(f"template {name!r}: {line.strip()!r} does not close the innermost section")
            else:
                open_sections.pop()
            continue
        if not all(keep for _, keep in open_sections):
            # a dropped line's placeholders belong to the template: their values are not unused
            used.update(k for k in _placeholders(line) if k in values)
            continue
        block = _BLOCK.match(line)
        if block:
            pad = block["indent"]
            out += [pad + s if s else s for s in str(value(block["name"], str)).split("\n")]
            continue
        out.append(_INLINE.sub(lambda mt: str(value(mt[0][2:-2], str)), line))
    if open_sections:
        raise TemplateError(f"template {name!r}: section {open_sections[-1][0]!r} is never closed")
    unused = sorted(set(values) - used)
    if unused:
        raise TemplateError(f"template {name!r}: values {unused} fill no placeholder")
    result = "\n".join(out)
    for pattern in _LEFTOVER:
        hit = pattern.search(result)
        if hit:
            line = result.count("\n", 0, hit.start()) + 1
            raise TemplateError(f"template {name!r}: output line {line} still holds {hit[0]!r}")
    return result

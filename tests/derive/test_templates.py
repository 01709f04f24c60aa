"""Kernel templates (derive/codegen/templates): valid Python, filled strictly, nothing left over,
shared helpers from one file."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from softsym.derive import codegen
from softsym.derive.catalogue import CATALOGUE
from softsym.derive.codegen.template import TemplateError, render_text
from softsym.derive.families import attention, mixture_score, normalized, two_layer

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "generated"
DERIVE = ROOT / "derive"
TEMPLATES = DERIVE / "codegen" / "templates"
FAMILIES = {"normalized": normalized, "attention": attention, "two_layer": two_layer, "mixture_score": mixture_score}
LEFTOVERS = re.compile(r"__[A-Z][A-Z0-9_]*__|# <<|\bderived\(")


def test_the_templates_are_shipped_and_found():
    assert codegen.template_names() == ["attention", "bounds_helpers", "fast_exp", "mixture_score", "normalized",
                                        "two_layer"]
    assert sorted(p.stem for p in TEMPLATES.glob("*.py") if p.name != "__init__.py") == codegen.template_names()


@pytest.mark.parametrize("name", ["attention", "bounds_helpers", "fast_exp", "mixture_score", "normalized",
                                  "two_layer"])
def test_every_template_is_valid_python(name):
    text = codegen.template_source(name)
    assert text == (TEMPLATES / f"{name}.py").read_text(encoding="utf-8")
    ast.parse(text, filename=f"{name}.py")


def _emitted(spec) -> str:
    family = FAMILIES[spec.family]
    return family.emit_module(family.derive(spec), spec.fingerprint())


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda s: s.name)
def test_every_rendered_module_is_valid_python_without_leftovers(spec):
    text = _emitted(spec)
    ast.parse(text)
    assert LEFTOVERS.search(text) is None
    assert text == (GENERATED / f"{spec.name}.py").read_text(encoding="utf-8")  # the committed module


def test_no_placeholder_survives_in_any_generated_file():
    files = sorted(GENERATED.glob("*.py"))
    assert len(files) > 10
    for path in files:
        hit = LEFTOVERS.search(path.read_text(encoding="utf-8"))
        assert hit is None, f"{path.name}: {hit[0]!r}"


def _files_under(root: Path, needle: str) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if needle in p.read_text(encoding="utf-8"))


def test_fast_exp_comes_from_one_file_and_is_pasted_where_used():
    source = codegen.fast_exp_source()
    assert source.startswith("@intrinsic\ndef _as_float(") and "def _exp(x):" in source
    # the hand-written part exists once in derive/: in the template, not in any emitter
    for line in ("def _as_float(typingctx, i):", "6755399441055744.0", "Cody-Waite r"):
        assert _files_under(DERIVE, line) == ["codegen/templates/fast_exp.py"], line
    users = [p for p in sorted(GENERATED.glob("*.py")) if "_exp(" in p.read_text(encoding="utf-8")
             and "@njit" in p.read_text(encoding="utf-8")]
    assert {p.stem for p in users} >= {"softmax", "exp", "rescaled_cosh", "attention"}
    for path in users:
        text = path.read_text(encoding="utf-8")
        assert text.count(source) == 1, path.name
        assert text.count("def _exp(") == 1, path.name


def test_bounds_helpers_come_from_one_file_and_are_pasted_in_every_bounds_module():
    helpers = codegen.render("bounds_helpers").strip("\n")
    assert helpers.startswith("def _guard(f, x):")
    assert _files_under(DERIVE, "def _guard(f, x):") == ["codegen/templates/bounds_helpers.py"]
    modules = [GENERATED / f"{s.name}_bounds.py" for s in CATALOGUE if s.family == "normalized"]
    for path in modules:
        assert path.read_text(encoding="utf-8").count(helpers) == 1, path.name


def test_rendering_with_a_missing_value_raises():
    spec = CATALOGUE[0]
    f = normalized.derive(spec)
    with pytest.raises(TemplateError, match="no value for placeholder 'NAME'"):
        codegen.render("mixture_score", HEADER="h", DOC="d", PAPER="p", SPEC_HASH="0", q_code="q = 0", qx_code="qx = 0")
    with pytest.raises(TemplateError, match="no value for placeholder 'taylor'"):
        codegen.render("fast_exp", DEGREE="13")
    assert "def _exp(x):" in normalized.emit_module(f, "0")


def test_rendering_with_an_unused_or_mistyped_value_raises():
    values = dict(HEADER="h", NAME="n", DOC="d", PAPER="p", SPEC_HASH="0", q_code="q = 0", qx_code="qx = 0")
    assert "def score(" in codegen.render("mixture_score", **values)
    with pytest.raises(TemplateError, match=r"values \['extra'\] fill no placeholder"):
        codegen.render("mixture_score", **values, extra="x")
    with pytest.raises(TemplateError, match="'q_code' must be a str"):
        codegen.render("mixture_score", **{**values, "q_code": True})
    with pytest.raises(TemplateError, match="no template 'nope'"):
        codegen.render("nope")


TOY = """\
# <<template only>>
from softsym.derive.codegen.templates import derived
# <<end template only>>
def f(x):
    \"\"\"__DOC__\"\"\"
    y = derived(x)  # <<body>>
    # <<if twice>>
    y = y + y
    # <<end twice>>
    return y
"""


def test_blocks_are_indented_sections_kept_or_dropped_and_template_lines_never_emitted():
    out = render_text("toy", TOY, DOC="doubles", body="t = x * x\ny = t + 1", twice=True)
    assert out == 'def f(x):\n    """doubles"""\n    t = x * x\n    y = t + 1\n    y = y + y\n    return y\n'
    out = render_text("toy", TOY, DOC="d", body="y = x", twice=False)
    assert out == 'def f(x):\n    """d"""\n    y = x\n    return y\n'
    # an empty block leaves one empty line
    assert render_text("toy", TOY, DOC="d", body="", twice=False) == 'def f(x):\n    """d"""\n\n    return y\n'


def test_malformed_templates_are_refused():
    with pytest.raises(TemplateError, match="never closed"):
        render_text("toy", "# <<if a>>\nx = 1\n", a=True)
    with pytest.raises(TemplateError, match="does not close the innermost section"):
        render_text("toy", "# <<if a>>\n# <<if b>>\n# <<end a>>\n# <<end b>>\n", a=True, b=True)
    with pytest.raises(TemplateError, match="must be a bool"):
        render_text("toy", "# <<if a>>\n# <<end a>>\n", a="yes")
    # a stand-in without its block marker would be emitted: refused
    with pytest.raises(TemplateError, match=r"output line 1 still holds 'derived\('"):
        render_text("toy", "y = derived(x)\n")
    # values are not rescanned, but a value that reintroduces a marker is caught in the output
    with pytest.raises(TemplateError, match="still holds '# <<'"):
        render_text("toy", "x = 1  # <<b>>\n", b="y = 2  # <<c>>")

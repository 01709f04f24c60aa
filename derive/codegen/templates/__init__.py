"""Templates of the emitted kernel modules, one valid Python file per template.

``softsym.derive.codegen.template.render`` fills them (the syntax is described there).  Each
file is real Python so that it can be read, linted (``ruff check derive``) and parsed:

* its header (up to the line ``# <<emit>>``) imports :func:`derived` and binds each inline
  value used in code (``__SHIFT__``, ...) to a stand-in, so every name the body uses is defined;
* a block line carries a stand-in statement, ``outputs = derived(inputs)  # <<block>>``, that
  names what the derived code reads and defines, so the names around it are used and defined;
* sections are comments.

Helpers that several emitted modules need (the vectorizing exponential of ``fast_exp.py``) are
one template rendered into each module that uses them: an emitted module imports nothing from
softsym, so Numba's ``cache=True`` never depends on another file.

The templates are not meant to be imported or run; :func:`derived` only marks stand-ins.
"""

from __future__ import annotations

__all__ = ["derived"]


def derived(*inputs: object) -> object:
    """Stand-in for code that the renderer puts in place of the whole template line."""
    raise RuntimeError("a kernel template is not executable: render it with softsym.derive.codegen.render")

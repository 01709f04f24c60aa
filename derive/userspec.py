"""Loading user spec files for ``softsym generate SPEC.py --out DIR``.

A spec file is ordinary Python that builds spec objects, e.g.::

    from sympy import exp
    from softsym.derive.spec import NormalizedSpec, alpha, b, u

    SPECS = [NormalizedSpec(name="softmax_l4", doc="softmax with a quartic loss", paper="-",
                            phi=exp(u), ell=(exp(u) / alpha - b) ** 4 / 4, shift_invariant=True)]

``SPECS`` (a list or tuple) is used when present; otherwise every spec object defined at
module level, in definition order.

A spec file is executed as Python with the full rights of the process that runs
``softsym generate``: only generate from spec files you trust.
"""

from __future__ import annotations

import runpy
from pathlib import Path

from .spec import NormalizedSpec, SpecError

SPEC_TYPES: tuple[type, ...] = (NormalizedSpec,)


def load_spec_file(path: str | Path) -> list:
    """The specs defined by the Python file ``path`` (``SpecError`` if there are none)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file {path} does not exist")
    try:
        namespace = runpy.run_path(str(path))
    except SpecError:
        raise
    except SystemExit as exc:  # sys.exit() in a spec file must not end the generator with its code
        raise SpecError(f"spec file {path} called sys.exit({exc.code!r}); a spec file must define SPECS") from None
    except Exception as exc:  # noqa: BLE001 - report any error in user code as a spec error
        raise SpecError(f"spec file {path} failed to run: {type(exc).__name__}: {exc}") from exc
    specs = namespace.get("SPECS")
    if specs is None:
        specs = [v for v in namespace.values() if isinstance(v, SPEC_TYPES)]
    if not isinstance(specs, (list, tuple)):
        raise SpecError(f"spec file {path}: SPECS must be a list or tuple of specs, got {type(specs).__name__}")
    specs = list(specs)
    bad = [s for s in specs if not isinstance(s, SPEC_TYPES)]
    if bad:
        raise SpecError(f"spec file {path}: SPECS holds non-spec objects {bad!r}")
    if not specs:
        raise SpecError(f"spec file {path} defines no spec (set SPECS = [NormalizedSpec(...), ...])")
    return specs

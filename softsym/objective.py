"""Objectives: data bound to a catalogue member's generated kernels.

One object owns how derivatives are obtained and memoizes them at the last ``x`` (as
scipy's ``ScalarFunction`` does), so solvers stay derivative-agnostic and
``scipy.optimize.minimize(obj.fun, x0, jac=obj.jac, hess=obj.hess)`` works as is.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from types import ModuleType

import numpy as np

from . import _rows
from ._validate import as_array
from .errors import OverflowDetected, UnknownObjectiveError, ValidationError


@dataclass(frozen=True)
class MemberInfo:
    """One catalogue member, as recorded in a generated manifest."""

    name: str
    family: str
    doc: str
    seed: str
    spec_hash: str
    proof: tuple[str, ...]
    shift_invariant: bool
    package: str = "softsym.kernels"


# Kernel packages: the built-in one plus directories loaded with load_kernels().
_PACKAGES: dict[str, Path] = {}


def _builtin_dir() -> Path:
    return Path(str(resources.files("softsym.kernels")))


@cache
def _manifest(package: str) -> dict:
    directory = _builtin_dir() if package == "softsym.kernels" else _PACKAGES[package]
    return json.loads((directory / "manifest.json").read_text("utf-8"))


def _members() -> dict[str, MemberInfo]:
    out: dict[str, MemberInfo] = {}
    for package in ("softsym.kernels", *_PACKAGES):
        for name, m in _manifest(package)["members"].items():
            out[name] = MemberInfo(name=name, family=m["family"], doc=m["doc"], seed=m["seed"],
                                   spec_hash=m["spec_hash"], proof=tuple(m["proof"]),
                                   shift_invariant=bool(m.get("shift_invariant", False)), package=package)
    return out


def catalogue(family: str | None = None) -> list[MemberInfo]:
    """All catalogue members (optionally of one family), sorted by name.

    Includes members from directories loaded with :func:`load_kernels`.
    """
    return [m for _, m in sorted(_members().items()) if family is None or m.family == family]


def member(name: str, family: str | None = None) -> MemberInfo:
    """The catalogue entry called ``name``; ``UnknownObjectiveError`` listing the choices otherwise."""
    members = {m.name: m for m in catalogue(family)}
    if not isinstance(name, str) or name not in members:
        other = {m.name: m.family for m in catalogue()}.get(name) if isinstance(name, str) else None
        if other is not None:
            raise UnknownObjectiveError(f"{name!r} belongs to the {other} family; this needs a {family} member: "
                                        f"{', '.join(sorted(members))}")
        raise UnknownObjectiveError(f"unknown objective {name!r}; catalogue members: {', '.join(sorted(members))}")
    return members[name]


def load_kernels(directory: str | Path) -> list[MemberInfo]:
    """Make the members generated into ``directory`` (``softsym generate SPEC.py --out DIR``) usable.

    Afterwards ``softsym.objective(name, ...)`` and ``softsym.catalogue()`` know them.  A name
    that clashes with an already known member is an error.
    """
    directory = Path(directory).resolve()
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise ValidationError(f"{directory} has no manifest.json: not a softsym kernel directory "
                              "(create one with `softsym generate SPEC.py --out DIR`)")
    package = "softsym_user_kernels_" + hashlib.sha256(str(directory).encode()).hexdigest()[:12]
    if package not in _PACKAGES:
        names = json.loads(manifest_path.read_text("utf-8"))["members"]
        clash = sorted(set(names) & set(_members()))
        if clash:
            raise ValidationError(f"{directory}: member names {clash} are already in the catalogue")
        spec = importlib.util.spec_from_file_location(package, directory / "__init__.py",
                                                      submodule_search_locations=[str(directory)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[package] = module
        spec.loader.exec_module(module)
        _PACKAGES[package] = directory
    return [m for m in catalogue() if m.package == package]


def generated_module(info: MemberInfo, suffix: str = "") -> ModuleType:
    """The generated module ``<member><suffix>`` of ``info``, checked against the manifest's spec hash."""
    mod = importlib.import_module(f"{info.package}.{info.name}{suffix}")
    if mod.SPEC_HASH != info.spec_hash:
        raise RuntimeError(f"generated module {info.name}{suffix} does not match the manifest; run `make generate`")
    return mod


@cache
def kernels(name: str) -> ModuleType:
    """The generated kernel module of member ``name``."""
    return generated_module(member(name))


@dataclass(frozen=True)
class Pieces:
    """Structured derivatives at one x: dL/du = g, d2L/du2 = diag(beta) + p q^T + q p^T + T q q^T."""

    u: np.ndarray
    loss: float
    g: np.ndarray
    beta: np.ndarray
    p: np.ndarray
    q: np.ndarray
    T: float


class Objective:
    """A normalized-family objective ``L(x)`` on data ``A, b, w``.

    Methods ``fun, jac, hess, hessp`` follow ``scipy.optimize`` conventions.  Results are
    memoized at the last ``x``; counters ``nfev, njev, nhev`` count kernel evaluations.
    Arrays are not copied when already float64 and C-contiguous: do not modify them while
    the objective is in use.

    Raises ``ValidationError`` for bad input and ``OverflowDetected`` instead of returning
    non-finite values.
    """

    def __init__(self, name: str, A, b, w=None):
        self.info = member(name, family="normalized")
        self.name = self.info.name
        self.A = as_array("A", A, 2)
        self.n, self.d = self.A.shape
        self.b = as_array("b", b, 1, (self.n,))
        self.w = np.zeros(self.n) if w is None else as_array("w", w, 1, (self.n,))
        self._k = kernels(self.name)
        self.nfev = self.njev = self.nhev = 0
        self._x: np.ndarray | None = None
        self._cache: dict[str, object] = {}

    def __repr__(self) -> str:
        return f"Objective({self.name!r}, n={self.n}, d={self.d})"

    # -- evaluation at x ------------------------------------------------------------------
    def _point(self, x) -> dict[str, object]:
        x = as_array("x", x, 1, (self.d,))
        if self._x is None or not np.array_equal(x, self._x):
            self._x = x.copy()
            self._cache = {"u": _rows.matvec(self.A, x)}
        return self._cache

    def _check(self, what: str, *values) -> None:
        for v in values:
            if not (_rows.all_finite(v.ravel()) if isinstance(v, np.ndarray) else np.isfinite(v)):
                u = self._cache.get("u")
                umax = float(np.max(np.abs(u))) if isinstance(u, np.ndarray) else float("nan")
                hint = "" if self.info.shift_invariant else (
                    "; this member is not shift invariant, so exp/cosh/sinh overflow once |Ax| exceeds ~709:"
                    " rescale A or start closer to 0")
                raise OverflowDetected(f"{self.name}: non-finite {what} at this x (max |Ax| = {umax:.4g}){hint}")

    def fun(self, x) -> float:
        """L(x)."""
        c = self._point(x)
        if "loss" not in c:
            c["loss"] = float(self._k.loss_u(c["u"], self.b, self.w))
            self.nfev += 1
            self._check("loss", c["loss"])
        return c["loss"]

    def _grad_u(self, x) -> np.ndarray:
        c = self._point(x)
        if "g" not in c:
            loss, g = self._k.grad_u(c["u"], self.b, self.w)
            self._check("gradient", loss, g)
            c["loss"], c["g"] = float(loss), g
            self.njev += 1
        return c["g"]

    def jac(self, x) -> np.ndarray:
        """grad L(x) = A^T g (a new array)."""
        c = self._point(x)
        if "jac" not in c:
            c["jac"] = _rows.rmatvec(self.A, self._grad_u(x))
        return c["jac"].copy()

    def fun_and_jac(self, x) -> tuple[float, np.ndarray]:
        """(L(x), grad L(x)), one fused kernel pass."""
        g = self.jac(x)
        return self.fun(x), g

    def pieces(self, x) -> Pieces:
        """The structured derivatives in u-space (for Newton-type and sketching solvers)."""
        c = self._point(x)
        if "pieces" not in c:
            loss, g, beta, p, q, T = self._k.pieces_u(c["u"], self.b, self.w)
            self._check("Hessian pieces", loss, g, beta, p, q, T)
            c["pieces"] = Pieces(u=c["u"], loss=float(loss), g=g, beta=beta, p=p, q=q, T=float(T))
            c.setdefault("loss", float(loss))
            c.setdefault("g", g)
            self.nhev += 1
        return c["pieces"]

    def hess(self, x) -> np.ndarray:
        """hess L(x), a new symmetric (d, d) array."""
        c = self._point(x)
        if "hess" not in c:
            pc = self.pieces(x)
            c["hess"] = self._k.hess_assemble(self.A, pc.beta, pc.p, pc.q, pc.T)
        return c["hess"].copy()

    def hessp(self, x, p) -> np.ndarray:
        """hess L(x) @ p in two matrix-vector products."""
        v = as_array("p", p, 1, (self.d,))
        pc = self.pieces(x)
        return self._k.hessp_assemble(self.A, pc.beta, pc.p, pc.q, pc.T, v)

    __call__ = fun


def objective(name: str, A, b, w=None) -> Objective:
    """Bind data to catalogue member ``name`` (see :func:`catalogue`).

    ``A`` is (n, d), ``b`` and ``w`` are (n,); ``w`` defaults to zero (no regularizer
    1/2 ||W A x||^2).  When ``A`` is a Dask array the result is a
    :class:`softsym.dask.DaskObjective` with the same interface (chunked evaluation).
    """
    dask_array = sys.modules.get("dask.array")  # a Dask array implies dask.array is imported
    if dask_array is not None and isinstance(A, dask_array.Array):
        from .dask import DaskObjective

        return DaskObjective(name, A, b, w)
    return Objective(name, A, b, w)

"""Derived constants of the two-layer family: evaluation, GD guarantees, run checks, certification.

The constants are derived symbolically by ``softsym.derive.bounds.two_layer`` and emitted into
``generated/<member>_bounds.py`` (see that member's formulas page for the statements):

* ``g_inf, G, L_g``: size and Lipschitz constant of the per-neuron gradient ``dF/du``;
* ``L_H``: ``||H(W) - H(W0)||_2 <= L_H D`` with ``D = max_{r,i} |<w_r - w_r(0), x_i>|``;
* ``radius = lam0 / (2 L_H)``: ``D <= radius`` keeps ``lambda_min(H(W)) >= lam0 / 2``;
* ``smooth`` and ``lr = 1/smooth``: the certified gradient-descent step;
* ``drift``: how far certified GD can move a neuron; ``B0 + drift <= B`` and
  ``drift <= radius`` is the over-parametrization condition under which GD provably stays in
  the region and contracts the loss by ``1 - lr lam0 / 2`` per step.

With ``c`` outputs (``a in R^{m x c}``, score networks) every ``n`` of ``lam_max, L_H, smooth,
drift`` becomes ``n c`` (argument ``c`` of :func:`bounds`; :func:`guarantee` reads it from the
network).  ReLU has no deterministic ``L_H`` (its derivative jumps); its module holds
margin-count bounds instead (``c = 1``), evaluated by :func:`relu_perturbation`.  Every number in
the certification search comes from the members' generated kernels.

Training: :func:`training_report` turns a ``softsym.minimize`` result (whose ``gd`` solver
tracked the run's displacement maxima) into ``guarantee`` / ``certificate`` / ``region``;
:func:`certified_step` is the guarantee behind ``lr="certified"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType

import numpy as np
from scipy.optimize import minimize as _scipy_minimize

from .._validate import as_array, count, positive
from ..errors import ValidationError
from ..problems.two_layer import TwoLayerNetwork, TwoLayerRegression, activations
from ..registry import generated_module, kernels, member
from .evaluate import evaluate

ARG_ORDER = ("B", "m", "kappa", "n", "lam0", "rho0", "c")


def member_name(name_or_activation: str) -> str:
    """``"softmax"`` or ``"two_layer_softmax"`` -> ``"two_layer_softmax"``."""
    acts = activations()
    if isinstance(name_or_activation, str) and name_or_activation in acts:
        return acts[name_or_activation]
    return member(name_or_activation, family="two_layer").name


@cache
def bounds_module(name: str) -> ModuleType:
    """The generated bounds module of two-layer member ``name`` (or activation)."""
    return generated_module(member(member_name(name), family="two_layer"), "_bounds")


@dataclass(frozen=True)
class TwoLayerConstants:
    """The derived constants of one member at given region parameters (``values[q]``; inf = too large)."""

    name: str
    activation: str
    kind: str
    deterministic: bool
    params: dict
    values: dict
    assumptions: str

    def __getitem__(self, q: str) -> float:
        return self.values[q]

    def as_dict(self) -> dict[str, float]:
        return dict(self.values)


def bounds(name: str, B: float = 1.0, m: int = 64, n: int = 16, kappa: float | None = None,
           lam0: float = 1.0, rho0: float = 1.0, D: float = 0.0, s0: float = 1.0, delta: float = 0.1,
           N: int = 0, c: int = 1) -> TwoLayerConstants:
    """Evaluate the derived constants of two-layer member ``name`` (or activation name).

    Region: ``||x_i|| <= 1``, ``|<w_r, x_i>| <= B``, ``||a||_inf <= 1``; ``lam0 = lambda_min(H(W0))``,
    ``rho0 = ||F(W0, X) - y||``; ``kappa`` defaults to the member's output scale at width ``m``.
    ReLU (margin-count bounds) also uses ``D`` (displacement), ``s0`` (init std), ``delta``
    (failure probability) and ``N`` (margin count ``sum_i #{r : |<w_r(0), x_i>| <= D}``).
    ``c`` is the number of outputs (``a in R^{m x c}``; the NTK is ``(n c) x (n c)``); the
    margin-count bounds exist for ``c = 1`` only.
    """
    mod = bounds_module(name)
    B = positive("B", B, allow_zero=True)
    m = count("m", m, 1)
    n = count("n", n, 1)
    kappa = kernels(mod.NAME).default_kappa(m) if kappa is None else positive("kappa", kappa)
    args = {"B": B, "m": m, "kappa": kappa, "n": n, "lam0": positive("lam0", lam0), "rho0": positive("rho0", rho0),
            "D": positive("D", D, allow_zero=True), "s0": positive("s0", s0), "delta": positive("delta", delta),
            "N": count("N", N), "c": count("c", c, 1)}
    if not mod.DETERMINISTIC and args["c"] != 1:
        raise ValidationError(f"{mod.NAME}: the margin-count bounds are derived for one output (c=1), got c={c}")
    values = {q: evaluate(mod.FUNCTIONS[q], *(args[p] for p in mod.ARGS[q])) for q in mod.QUANTITIES}
    used = sorted({p for q in mod.QUANTITIES for p in mod.ARGS[q]}, key=list(args).index)
    return TwoLayerConstants(name=mod.NAME, activation=mod.ACTIVATION, kind=mod.KIND,
                             deterministic=bool(mod.DETERMINISTIC), params={p: args[p] for p in used},
                             values=values, assumptions=mod.ASSUMPTIONS)


# ----------------------------------------------------------------------------------------
# Gradient-descent guarantee and run checks


def _unit_rows(X: np.ndarray) -> None:
    if float(np.max(np.linalg.norm(X, axis=1))) > 1 + 1e-12:
        raise ValidationError("X rows must satisfy ||x_i||_2 <= 1 (the bounds' assumption)")


#: above this many NTK rows (n * c) :func:`guarantee` first screens with an upper bound on lam0
SCREEN_ROWS = 1024


@dataclass(frozen=True)
class Guarantee:
    """The certified gradient-descent statement for one (network, data) pair.

    ``holds`` is the over-parametrization condition ``B0 + drift <= B`` and ``drift <= radius``
    at the smallest consistent ``B`` (fixed point of ``B = B0 + drift(B)``).  When it holds, GD
    with any ``lr <= lr_certified`` never moves a neuron farther than ``drift``, keeps
    ``lambda_min(H) >= lam0/2`` and has ``L_t <= (1 - lr lam0/2)^t L_0``.  ``margin = radius/drift``.
    ``c`` is the number of outputs (the NTK is ``(n c) x (n c)``).  ``lam0_exact=False``: ``lam0``
    is only an upper bound (the smallest NTK diagonal entry), used when even that bound shows the
    condition fails, so ``radius`` is then an upper bound and ``drift`` a lower bound.
    """

    name: str
    n: int
    m: int
    kappa: float
    B0: float
    B: float
    lam0: float
    rho0: float
    lr: float
    radius: float
    drift: float
    smooth: float
    L_H: float
    holds: bool
    message: str
    c: int = 1
    lam0_exact: bool = True

    @property
    def margin(self) -> float:
        return self.radius / self.drift if self.drift > 0 else math.inf

    @property
    def rate(self) -> float:
        """The certified per-step loss contraction ``1 - lr lam0 / 2`` at the certified step."""
        return 1.0 - self.lr * self.lam0 / 2

    def steps_bound(self, eps: float, lr: float | None = None) -> float:
        """Steps after which the guarantee gives ``L_t <= eps L_0`` (inf when it does not hold)."""
        eps = positive("eps", eps)
        lr = self.lr if lr is None else positive("lr", lr)
        if not self.holds or lr > self.lr * (1 + 1e-12):
            return math.inf
        q = 1.0 - lr * self.lam0 / 2
        return 0.0 if eps >= 1 else math.ceil(math.log(eps) / math.log(q))

    def as_dict(self) -> dict:
        """The numbers a training result carries as ``certificate``."""
        return {"member": self.name, "n": self.n, "m": self.m, "c": self.c, "kappa": self.kappa,
                "lam0": self.lam0, "lam0_exact": self.lam0_exact, "rho0": self.rho0, "B0": self.B0, "B": self.B,
                "radius": self.radius, "drift": self.drift, "margin": self.margin, "L_H": self.L_H,
                "smooth": self.smooth, "lr_certified": self.lr, "holds": self.holds, "message": self.message}


def guarantee(net: TwoLayerNetwork, X, y, W0=None, iterations: int = 60, screen: bool = True) -> Guarantee:
    """The certified region, step and GD statement for training ``net`` on ``(X, y)`` from ``W0``.

    ``y`` is ``(n,)`` for a scalar network, ``(n, c)`` for ``c = net.d_out`` outputs.  ``lam0``
    and ``rho0`` are measured at ``W0`` (default ``net.W``); ``B`` solves ``B = B0 + drift(B)``
    by monotone fixed-point iteration (no fixed point: ``holds=False``).  With ``screen`` and more
    than ``SCREEN_ROWS`` NTK rows, the condition is first evaluated with the upper bound
    ``lam0 <= min_k H_kk`` at ``B = B0`` (the constants grow with ``B``, the ratio drift/radius
    falls with ``lam0``): when it fails there, it fails for the exact ``lam0`` too and the
    ``(n c)``-sized eigendecomposition is skipped (``lam0_exact=False``).
    """
    X = as_array("X", X, 2, (None, net.d))
    _unit_rows(X)
    W0 = net.W if W0 is None else as_array("W0", W0, 2, (net.d, net.m))
    n, c = X.shape[0], net.d_out
    y = as_array("y", y, 1, (n,)) if net.scalar else as_array("y", y, 2, (n, c))
    mod = bounds_module(net.activation)
    if not mod.DETERMINISTIC:
        raise ValidationError(f"activation {net.activation!r} has no deterministic GD guarantee "
                              "(its derivative jumps); see relu_perturbation")
    rho0 = float(np.linalg.norm(net.forward(X, W0) - y))
    B0 = float(np.max(np.abs(X @ W0)))
    rho = max(rho0, 1e-300)

    def cst(B, lam):
        return bounds(mod.NAME, B=B, m=net.m, n=n, kappa=net.kappa, lam0=lam, rho0=rho, c=c)

    def degenerate(lam, msg):  # no lam0 > 0: no region, but the step 1/smooth (free of lam0) is still derived
        cc = cst(B0, 1.0)
        return Guarantee(mod.NAME, n, net.m, net.kappa, B0, math.inf, lam, rho0, cc["lr"], 0.0, math.inf,
                         cc["smooth"], cc["L_H"], False, msg, c)

    if n * c > net.d * net.m:
        return degenerate(0.0, f"lambda_min(H(W0)) = 0: the NTK is ({n * c} x {n * c}) but has rank <= "
                               f"d m = {net.d * net.m} (more targets than trained weights): no guarantee")
    if screen and n * c > SCREEN_ROWS:
        Gr = net.jac_rows(X, W0)
        diag = np.repeat(np.sum(X * X, axis=1), c) * np.sum(Gr * Gr, axis=1)
        lam_ub = float(np.min(diag))
        if lam_ub > 0:
            cc = cst(B0, lam_ub)
            if cc["drift"] > cc["radius"]:
                return Guarantee(mod.NAME, n, net.m, net.kappa, B0, math.inf, lam_ub, rho0, cc["lr"], cc["radius"],
                                 cc["drift"], cc["smooth"], cc["L_H"], False,
                                 f"not certified: even with lambda_min(H(W0)) <= {lam_ub:.3g} (smallest NTK diagonal) "
                                 f"the drift bound {cc['drift']:.3g} > radius {cc['radius']:.3g} at B = B0 "
                                 f"(needs >= {cc['drift'] / cc['radius']:.3g}x more margin)", c, False)
    lam0 = float(np.linalg.eigvalsh(net.ntk(X, W0))[0])
    if lam0 <= 0:
        return degenerate(lam0, f"lambda_min(H(W0)) = {lam0:.3g} <= 0: no guarantee")

    def cb(B):
        return cst(B, lam0)

    B = B0
    for _ in range(iterations):
        Bn = B0 + cb(B)["drift"]
        if not math.isfinite(Bn) or Bn > B0 + 50:
            B = math.inf
            break
        if Bn <= B * (1 + 1e-12):
            B = Bn
            break
        B = Bn
    if not math.isfinite(B):
        cc = cb(B0)
        return Guarantee(mod.NAME, n, net.m, net.kappa, B0, math.inf, lam0, rho0, cc["lr"], cc["radius"], cc["drift"],
                         cc["smooth"], cc["L_H"], False,
                         f"not certified: B = B0 + drift(B) has no fixed point (drift bound {cc['drift']:.3g} at "
                         f"B = B0 = {B0:.3g}, radius {cc['radius']:.3g}: needs >= {cc['drift'] / cc['radius']:.3g}x "
                         "more margin)", c)
    cc = cb(B)
    holds = cc["drift"] <= cc["radius"] and B0 + cc["drift"] <= B * (1 + 1e-12)
    msg = (f"certified: drift {cc['drift']:.3g} <= radius {cc['radius']:.3g}" if holds else
           f"not certified: drift bound {cc['drift']:.3g} > radius {cc['radius']:.3g} "
           f"(needs {cc['drift'] / cc['radius']:.3g}x more margin)")
    return Guarantee(mod.NAME, n, net.m, net.kappa, B0, B, lam0, rho0, cc["lr"], cc["radius"], cc["drift"],
                     cc["smooth"], cc["L_H"], holds, msg, c)


@dataclass(frozen=True)
class RegionReport:
    """Whether a training run's weights stayed in the certified region.

    ``D[t] = max_{r,i} |<w_r(t) - w_r(0), x_i>|`` (the displacement the bound uses),
    ``w_drift[t] = max_r ||w_r(t) - w_r(0)||``; ``inside_radius`` / ``inside_box``: every step had
    ``D <= radius`` and ``max |<w_r, x_i>| <= B``.  ``lam_min_certified = lam0 - L_H max D``.
    """

    D: np.ndarray
    w_drift: np.ndarray
    max_abs_u: np.ndarray
    radius: float
    B: float
    inside_radius: bool
    inside_box: bool
    lam_min_certified: float
    extra: dict = field(default_factory=dict)

    @property
    def inside(self) -> bool:
        return self.inside_radius and self.inside_box


def check_run(net: TwoLayerNetwork, X, weights, guarantee_: Guarantee) -> RegionReport:
    """Check a run's weights path ``weights`` (sequence of ``W_t``, ``W_0`` first) against ``guarantee_``."""
    X = as_array("X", X, 2, (None, net.d))
    Ws = [as_array("weights[t]", W, 2, (net.d, net.m)) for W in weights]
    if not Ws:
        raise ValidationError("weights must hold at least W_0")
    W0 = Ws[0]
    U0 = X @ W0
    D = np.array([float(np.max(np.abs(X @ W - U0))) for W in Ws])
    wd = np.array([float(np.max(np.linalg.norm(W - W0, axis=0))) for W in Ws])
    mu = np.array([float(np.max(np.abs(X @ W))) for W in Ws])
    rad, B = guarantee_.radius, guarantee_.B
    return RegionReport(D=D, w_drift=wd, max_abs_u=mu, radius=rad, B=B, inside_radius=bool(np.all(D <= rad)),
                        inside_box=bool(np.all(mu <= B)),
                        lam_min_certified=guarantee_.lam0 - guarantee_.L_H * float(D.max()))


def certified_step(problem, x0=None) -> Guarantee:
    """The guarantee behind ``lr="certified"`` for a two-layer problem started at ``x0``.

    ``ValidationError`` saying why when there is no certified step (rows with ``||x_i|| > 1``,
    an activation whose derivative jumps, ``lambda_min(H(W0)) <= 0``).  The step ``1/smooth`` is
    certified inside the region whether or not the over-parametrization condition holds; the
    guarantee says whether the run provably stays there.
    """
    net = problem.net
    W0 = problem.start(x0).reshape(net.d, net.m)
    try:
        g = guarantee(net, problem.X, problem.y, W0, screen=False)
    except ValidationError as exc:
        raise ValidationError(f"lr='certified' is unavailable: {exc}") from None
    if not (g.lr > 0 and math.isfinite(g.lr)):
        raise ValidationError(f"lr='certified' is unavailable: {g.message}")
    return g


def training_report(problem, res, x0=None, guarantee_: Guarantee | None = None) -> dict:
    """What is known about a training result ``res`` of two-layer ``problem`` from ``x0``.

    ``guarantee`` is ``"global"`` when the GD theorem's condition holds for (net, data, ``W0``)
    (:func:`guarantee`), the run's step is at most the certified ``1/smooth`` and the run stayed
    in the region (``D <= radius`` and ``max |u| <= B`` at every step, from the solver's running
    maxima ``res.region``): the loss then contracts by ``rate`` per step towards a global
    minimizer (zero loss).  ``"none"`` otherwise; ``guarantee_message`` says why.  Returns
    ``guarantee``, ``guarantee_message``, ``certificate`` (:meth:`Guarantee.as_dict`, or
    ``{"holds": False, "message": ...}`` when the assumptions fail) and ``region`` (the run's
    maxima ``D``, ``max_abs_u``, ``w_drift`` with ``radius``, ``B``, ``inside_radius``,
    ``inside_box``, ``inside`` and ``lam_min_certified = lam0 - L_H D``).  Never raises on
    unmet assumptions.
    """
    if not isinstance(problem, TwoLayerRegression):
        return {"guarantee": "none", "guarantee_message": f"no derived guarantee for {type(problem).__name__}",
                "certificate": {"holds": False, "message": "not a TwoLayerRegression"}}
    region = dict(res.get("region") or {})
    if not region:
        return {"guarantee": "none", "guarantee_message": "run not tracked (certify=False)",
                "certificate": {"holds": False, "message": "not computed (certify=False)"}}
    g = guarantee_
    if g is None:
        net = problem.net
        try:
            g = guarantee(net, problem.X, problem.y, problem.start(x0).reshape(net.d, net.m))
        except ValidationError as exc:
            region.update(radius=math.nan, B=math.nan, inside_radius=False, inside_box=False, inside=False,
                          lam_min_certified=math.nan)
            return {"guarantee": "none", "guarantee_message": f"assumptions not met: {exc}",
                    "certificate": {"holds": False, "message": f"no certificate: {exc}"}, "region": region}
    inside_r = bool(region["D"] <= g.radius)
    inside_b = bool(region["max_abs_u"] <= g.B)
    region.update(radius=g.radius, B=g.B, inside_radius=inside_r, inside_box=inside_b, inside=inside_r and inside_b,
                  lam_min_certified=g.lam0 - g.L_H * region["D"] if g.lam0_exact else math.nan)
    lr = float(res.get("lr", math.nan))
    step_ok = bool(lr <= g.lr * (1 + 1e-12))
    why = []
    if not g.holds:
        why.append(g.message)
    if not step_ok:
        why.append(f"step {lr:.3g} > certified {g.lr:.3g}")
    if not inside_r:
        why.append(f"left the radius (D = {region['D']:.3g} > {g.radius:.3g})")
    if not inside_b:
        why.append(f"left the box (max |u| = {region['max_abs_u']:.3g} > B = {g.B:.3g})")
    if why:
        return {"guarantee": "none", "guarantee_message": "; ".join(why), "certificate": g.as_dict(),
                "region": region}
    msg = (f"certified: step {lr:.3g} <= {g.lr:.3g}, D = {region['D']:.3g} <= radius {g.radius:.3g}, "
           f"max |u| = {region['max_abs_u']:.3g} <= B = {g.B:.3g}; loss contracts by {1 - lr * g.lam0 / 2:.6g} per step")
    return {"guarantee": "global", "guarantee_message": msg, "certificate": g.as_dict(), "region": region}


def relu_perturbation(net: TwoLayerNetwork, X, W, W0=None) -> dict:
    """Margin-count bound vs measured ``||H(W) - H(W0)||`` for a ReLU network (any activation works)."""
    X = as_array("X", X, 2, (None, net.d))
    W0 = net.W if W0 is None else as_array("W0", W0, 2, (net.d, net.m))
    W = as_array("W", W, 2, (net.d, net.m))
    U0 = X @ W0
    Dm = float(np.max(np.abs(X @ W - U0)))
    N = int(np.sum(np.abs(U0) <= Dm))
    dH = float(np.linalg.norm(net.ntk(X, W) - net.ntk(X, W0), 2))
    bound = bounds("relu", m=net.m, n=X.shape[0], kappa=net.kappa, D=Dm, N=N)["dH_count"]
    return {"D": Dm, "N": N, "dH": dH, "bound": bound, "ratio": dH / bound if bound > 0 else 0.0}


# ----------------------------------------------------------------------------------------
# Adversarial certification


def _g(k, U: np.ndarray, a: np.ndarray, kappa: float) -> np.ndarray:
    return k.jac_rows(np.ascontiguousarray(U), a, kappa)


def _unit(Z: np.ndarray) -> np.ndarray:
    return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-300)


def _hess_norm(k, W, X, Y, a, kappa, rng, iters: int = 12) -> float:
    """||hess_W L|| by power iteration on finite-difference Hessian-vector products of the kernel gradient."""
    def grad(Wx):
        return k.loss_grad(np.ascontiguousarray(Wx), X, Y, a, kappa)[1]
    g0 = grad(W)
    V = rng.standard_normal(W.shape)
    V /= np.linalg.norm(V)
    lam = 0.0
    h = 1e-6 * max(1.0, float(np.linalg.norm(W)))
    for _ in range(iters):
        HV = (grad(W + h * V) - grad(W - h * V)) / (2 * h)
        lam = float(np.linalg.norm(HV))
        if lam == 0:
            return 0.0
        V = HV / lam
    return lam * (1 + 1e-6) - 1e-9 * (1 + float(np.linalg.norm(g0)))


class _Search:
    """Ratio functions measured/bound over unconstrained parameter vectors (B taken as the sample's max |u|).

    ``outputs`` outputs with random sign output weights ``a`` (m, outputs).
    """

    def __init__(self, name: str, n: int, d: int, m: int, seed: int, outputs: int = 1):
        self.name, self.n, self.d, self.m, self.outputs = name, n, d, m, outputs
        self.k = kernels(name)
        self.kappa = self.k.default_kappa(m)
        rng = np.random.default_rng(seed)
        self.a = rng.choice(np.array([-1.0, 1.0]), size=(m, outputs))
        self.rng = rng

    def c(self, B, **kw):
        if self.outputs > 1:
            kw["c"] = self.outputs
        return bounds(self.name, B=B, m=self.m, n=self.n, kappa=self.kappa, **kw)

    def split(self, z, *shapes):
        out, i = [], 0
        for s in shapes:
            size = int(np.prod(s))
            out.append(z[i:i + size].reshape(s))
            i += size
        return out

    def ratio_g(self, z, q):
        (U,) = self.split(z, (1, self.m))
        B = float(np.max(np.abs(U)))
        g = _g(self.k, U, self.a, self.kappa)
        meas = float(np.max(np.abs(g))) if q == "g_inf" else float(np.max(np.linalg.norm(g, axis=1)))
        return meas / self.c(B)[q]

    def ratio_Lg(self, z):
        U1, dU = self.split(z, (1, self.m), (1, self.m))
        U2 = U1 + dU
        B = float(max(np.max(np.abs(U1)), np.max(np.abs(U2))))
        num = float(np.max(np.linalg.norm(_g(self.k, U1, self.a, self.kappa) - _g(self.k, U2, self.a, self.kappa),
                                          axis=1)))
        den = float(np.max(np.abs(dU)))
        return 0.0 if den < 1e-12 else num / (self.c(B)["L_g"] * den)

    def net_parts(self, z, extra: bool):
        shapes = [(self.n, self.d), (self.d, self.m)] + ([(self.d, self.m)] if extra else [])
        parts = self.split(z, *shapes)
        parts[0] = np.ascontiguousarray(_unit(parts[0]))
        return parts

    def ratio_lam_max(self, z):
        X, W = self.net_parts(z, False)
        B = float(np.max(np.abs(X @ W)))
        lm = float(np.linalg.eigvalsh(self.k.ntk(np.ascontiguousarray(W), X, self.a, self.kappa))[-1])
        return lm / self.c(B)["lam_max"]

    def ratio_LH(self, z):
        X, W0, dW = self.net_parts(z, True)
        W = W0 + dW
        B = float(max(np.max(np.abs(X @ W0)), np.max(np.abs(X @ W))))
        Dm = float(np.max(np.abs(X @ dW)))
        if Dm < 1e-12:
            return 0.0
        dH = np.linalg.norm(self.k.ntk(np.ascontiguousarray(W), X, self.a, self.kappa)
                            - self.k.ntk(np.ascontiguousarray(W0), X, self.a, self.kappa), 2)
        return float(dH) / (self.c(B)["L_H"] * Dm)

    def ratio_dH_count(self, z):
        X, W0, dW = self.net_parts(z, True)
        W = W0 + dW
        U0 = X @ W0
        Dm = float(np.max(np.abs(X @ dW)))
        N = int(np.sum(np.abs(U0) <= Dm))
        if N == 0:
            return 0.0
        dH = np.linalg.norm(self.k.ntk(np.ascontiguousarray(W), X, self.a, self.kappa)
                            - self.k.ntk(np.ascontiguousarray(W0), X, self.a, self.kappa), 2)
        return float(dH) / self.c(1.0, D=Dm, N=N)["dH_count"]

    def ratio_smooth(self, z):
        """||hess L|| on the GD segment from W (residual of norm rho0 = 1) over ``smooth``."""
        X, W, zr = self.split(z, (self.n, self.d), (self.d, self.m), (self.n * self.outputs,))
        X = np.ascontiguousarray(_unit(X))
        W = np.ascontiguousarray(W)
        rho0 = 1.0
        F = self.k.forward(W, X, self.a, self.kappa)
        Y = F - rho0 * (zr / max(np.linalg.norm(zr), 1e-300)).reshape(self.n, self.outputs)
        lg = self.k.loss_grad(W, X, Y, self.a, self.kappa)[1]
        W1 = W - self.c(float(np.max(np.abs(X @ W))), rho0=rho0)["lr"] * lg
        B = float(max(np.max(np.abs(X @ W)), np.max(np.abs(X @ W1))))
        lr = self.c(B, rho0=rho0)["lr"]
        W1 = W - lr * lg
        B = float(max(B, np.max(np.abs(X @ W1))))
        hn = max(_hess_norm(self.k, W + s * (W1 - W), X, Y, self.a, self.kappa, self.rng) for s in (0.0, 0.5, 1.0))
        return hn / self.c(B, rho0=rho0)["smooth"]


@dataclass(frozen=True)
class CertRow:
    quantity: str
    draws: int
    max_ratio: float
    violations: int


@dataclass(frozen=True)
class TwoLayerCertification:
    """Largest measured/bound ratio per constant (``> 1`` is a violation)."""

    name: str
    rows: tuple[CertRow, ...]
    gd: dict = field(default_factory=dict)
    outputs: int = 1

    @property
    def violations(self) -> list[str]:
        out = [r.quantity for r in self.rows if r.violations]
        return out + (["gd"] if self.gd and not self.gd.get("ok", True) else [])

    def table(self) -> str:
        lines = [f"{self.name} (c = {self.outputs}): quantity, draws, max measured/bound (tightness), violations"]
        lines += [f"  {r.quantity:10s} {r.draws:6d}  {r.max_ratio:10.4g}  {r.violations}" for r in self.rows]
        if self.gd:
            lines.append("  gd theorem: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                       for k, v in self.gd.items()))
        return "\n".join(lines)


def _maximize(fn, x0s, maxiter: int) -> tuple[float, int]:
    best, draws = 0.0, 0
    for x0 in x0s:
        draws += 1
        best = max(best, fn(x0))
        res = _scipy_minimize(lambda z: -fn(z), x0, method="Nelder-Mead",
                              options={"maxfev": maxiter, "xatol": 1e-9, "fatol": 1e-12})
        draws += int(res.nfev)
        best = max(best, -float(res.fun))
    return best, draws


def gd_theorem_check(name: str, n: int = 4, d: int = 3, m: int = 8, seed: int = 0, steps: int = 200,
                     outputs: int = 1) -> dict:
    """Run certified GD where the over-parametrization condition holds and test its three conclusions.

    Targets ``y = F(W0) + rho z`` with ``rho`` halved until :func:`guarantee` holds; returns the
    ratios measured/bound of drift, ``(lam0/2) / min_t lambda_min`` and ``max_t L_t / bound_t``.
    """
    act = bounds_module(name).ACTIVATION
    rng = np.random.default_rng(seed)
    X = _unit(rng.standard_normal((n, d)))
    net = TwoLayerNetwork(d, m, activation=act, seed=seed, init_scale=0.5, symmetric=False,
                          d_out=None if outputs == 1 else outputs)
    z = rng.standard_normal(n) if outputs == 1 else rng.standard_normal((n, outputs))
    z /= np.linalg.norm(z)
    F0 = net.forward(X)
    rho, g = 1.0, None
    for _ in range(80):
        g = guarantee(net, X, F0 + rho * z)
        if g.holds:
            break
        rho /= 2
    if g is None or not g.holds:
        return {"ok": True, "certified": False, "note": "condition never held"}
    y = F0 + rho * z
    W = net.W.copy()
    W0 = W.copy()
    a, kap, Y = net.a, net.kappa, y.reshape(n, outputs)
    k = kernels(g.name)
    L0 = None
    drift_ratio = lam_ratio = loss_ratio = 0.0
    for t in range(steps + 1):
        L, grad, _ = k.loss_grad(W, X, Y, a, kap)
        L0 = L if L0 is None else L0
        if L0 > 0 and L > 0:
            loss_ratio = max(loss_ratio, L / (L0 * (1 - g.lr * g.lam0 / 2) ** t))
        drift_ratio = max(drift_ratio, float(np.max(np.linalg.norm(W - W0, axis=0))) / g.drift)
        lmin = float(np.linalg.eigvalsh(k.ntk(W, X, a, kap))[0])
        lam_ratio = max(lam_ratio, (g.lam0 / 2) / lmin if lmin > 0 else math.inf)
        W = W - g.lr * grad
    ok = drift_ratio <= 1 and lam_ratio <= 1 and loss_ratio <= 1 + 1e-9
    return {"ok": ok, "certified": True, "rho0": rho, "margin": g.margin, "drift_ratio": drift_ratio,
            "lam_ratio": lam_ratio, "loss_ratio": loss_ratio}


def certify(name: str, n: int = 3, d: int = 2, m: int = 6, seed: int = 0, restarts: int = 3,
            maxiter: int = 300, scale: float = 1.5, gd: bool = True, outputs: int = 1) -> TwoLayerCertification:
    """Adversarial search (random starts + Nelder-Mead) for violations of every derived constant.

    Searches at ``(n, d, m)`` and at ``(1, 1, 4)``; a row reports the largest measured/bound found.
    ``outputs = c > 1`` certifies the vector-output constants (random sign ``a`` in ``R^{m x c}``,
    ``(n c) x (n c)`` NTK, vector residuals); deterministic members only.
    """
    name = member_name(name)
    n, d, m = count("n", n, 1), count("d", d, 1), count("m", m, 1)
    outputs = count("outputs", outputs, 1)
    restarts, maxiter = count("restarts", restarts, 1), count("maxiter", maxiter, 1)
    rng = np.random.default_rng(seed + 1)
    mod = bounds_module(name)
    if outputs > 1 and not mod.DETERMINISTIC:
        raise ValidationError(f"{name}: the margin-count bounds are derived for one output (outputs=1)")
    best: dict[str, tuple[float, int]] = {}
    # The given size, and one input in one dimension with 4 neurons (where the products are tightest).
    for nn, dd, mm in ((n, d, m), (1, 1, 4)):
        s = _Search(name, nn, dd, mm, seed, outputs)
        nm, nw = nn * dd, dd * mm
        checks = {"g_inf": (lambda z, s=s: s.ratio_g(z, "g_inf"), mm), "G": (lambda z, s=s: s.ratio_g(z, "G"), mm),
                  "lam_max": (s.ratio_lam_max, nm + nw)}
        if mod.DETERMINISTIC:
            checks["L_g"] = (s.ratio_Lg, 2 * mm)
            checks["L_H"] = (s.ratio_LH, nm + 2 * nw)
            checks["smooth"] = (s.ratio_smooth, nm + nw + nn * outputs)
        else:
            checks["dH_count"] = (s.ratio_dH_count, nm + 2 * nw)
        for q, (fn, size) in checks.items():
            x0s = [scale * rng.standard_normal(size) for _ in range(restarts)]
            r, k = _maximize(fn, x0s, maxiter if q != "smooth" else max(40, maxiter // 5))
            r0, k0 = best.get(q, (0.0, 0))
            best[q] = (max(r, r0), k + k0)
    rows = [CertRow(q, k, r, int(r > 1 + 1e-9)) for q, (r, k) in best.items()]
    gd_res = gd_theorem_check(name, seed=seed, outputs=outputs) if gd and mod.DETERMINISTIC else {}
    return TwoLayerCertification(name, tuple(rows), gd_res, outputs)


@dataclass(frozen=True)
class WidthRequirement:
    """Smallest width at which the over-parametrization condition holds under a model of ``lam0(m)``, ``B(m)``."""

    name: str
    n: int
    rho0: float
    lam_bar: float
    m: float
    B: float
    margin: float
    rule: str


def width_requirement(name: str, n: int, rho0: float, lam_bar: float, kappa_rule, s0: float = 1.0,
                      delta: float = 0.1, max_log2_m: int = 200) -> WidthRequirement:
    """Smallest ``m = 2^k`` with ``radius / drift >= 1`` when ``lam0(m) = lam_bar * G(0; m, kappa)^2``
    (the NTK's natural scale: ``kappa^2/m`` for softmax, ``kappa^2 m`` for exp) and ``B(m)`` is the
    Gaussian-initialization bound ``s0 sqrt(2 ln(2 n m / delta))`` on ``max |<w_r(0), x_i>|`` plus the
    drift bound (holds with probability ``>= 1 - delta``).  ``m = inf`` when no ``k <= max_log2_m`` works.

    ``lam_bar`` is ``lambda_min(H(W0)) / G(0; m, kappa)^2`` measured at some width (it converges as
    ``m`` grows, the infinite-width NTK's smallest eigenvalue in these units).
    """
    mod = bounds_module(name)
    if not mod.DETERMINISTIC:
        raise ValidationError(f"{mod.NAME} has no deterministic GD guarantee")
    n = count("n", n, 1)
    rho0, lam_bar, s0 = positive("rho0", rho0), positive("lam_bar", lam_bar), positive("s0", s0)
    delta = positive("delta", delta)
    best = None
    for k in range(1, count("max_log2_m", max_log2_m, 1) + 1):
        m = 2.0**k
        kap = float(kappa_rule(m))
        lam0 = lam_bar * evaluate(mod.FUNCTIONS["G"], 0.0, m, kap, n, 1.0, 1.0) ** 2
        B0 = s0 * math.sqrt(2 * math.log(2 * n * m / delta))
        B = B0
        for _ in range(50):
            dr = evaluate(mod.FUNCTIONS["drift"], B, m, kap, n, lam0, rho0)
            if not math.isfinite(dr) or B0 + dr <= B * (1 + 1e-12):
                break
            B = B0 + dr
        args = (B, m, kap, n, lam0, rho0)
        margin = evaluate(mod.FUNCTIONS["radius"], *args) / evaluate(mod.FUNCTIONS["drift"], *args)
        best = (m, B, margin)
        if margin >= 1 and B0 + evaluate(mod.FUNCTIONS["drift"], *args) <= B * (1 + 1e-12):
            return WidthRequirement(mod.NAME, n, rho0, lam_bar, m, B, margin, "found")
    return WidthRequirement(mod.NAME, n, rho0, lam_bar, math.inf, best[1], best[2],
                            f"no m <= 2^{max_log2_m}")

"""Full-batch gradient descent for two-layer networks (paper 004): ``W <- W - lr grad L(W)``.

Registered as ``gd`` for the ``two_layer`` family
(:class:`softsym.problems.two_layer.TwoLayerRegression`).  Default ``lr = 1 / lambda_max(H(W_0))``:
the loss Hessian is ``J^T J + sum_i r_i grad^2 F_i``; its Gauss-Newton part has norm
``lambda_max(H)`` and the residual part vanishes with the residual (and with width, in the NTK
regime), so ``lambda_max(H(W_0))`` is the smoothness constant of the linearized problem and
``1/smoothness`` the classical step; the linearized residual then contracts at least by
``1 - lambda_min/lambda_max`` per step.  The step is fixed (no line search), as in the NTK
analysis.

Options: ``lr`` (default above), ``record`` (each step also stores ``||H(W_t) - H(W_0)||_2`` and
``lambda_min(H(W_t))``, an eigendecomposition of the (n*c)^2 Gram per step; result fields
``ntk_drift`` and ``lam_min``, ``t = 0 .. nit``) and ``loss_tol`` (also stop, with success,
once ``L(W_t) <= loss_tol * L(W_0)``).  Every result carries ``lr``, ``lr_rule`` and
``lam_max0`` (NaN when neither the default step nor the record needed it).

``certify`` (default on) tracks, incrementally, what the two-layer guarantee needs from the run
(:mod:`softsym.theory.two_layer`): with ``U_t = X W_t``, the displacement
``D = max_t max_{r,i} |<w_r(t) - w_r(0), x_i>| = max_t max |U_t - U_0|``, ``max_t max |U_t|``
and ``max_t max_r ||w_r(t) - w_r(0)||``; the first two are read in the gradient kernel's own
row sweep (``fun_and_jac_region``), the third is one pass over ``W``; ``U_0`` is kept (no path
is stored).  The result's ``region`` holds the three maxima; ``softsym.minimize``
adds the certified region, the verdict and the certificate.  ``lr="certified"`` (the derived
step ``1/smooth``) is resolved by ``softsym.minimize``, which has the constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validate import positive
from ..errors import ValidationError
from .base import Solver, State, register


@dataclass
class NetworkGDState(State):
    """The step of the run and its rule, ``f`` at the start, and the NTK record (when on)."""

    lr: float = float("nan")
    lr_rule: str = ""
    f0: float = float("nan")
    lam_max0: float = float("nan")
    H0: np.ndarray | None = None
    lam_min: list = field(default_factory=list)
    drift: list = field(default_factory=list)
    U0: np.ndarray | None = None
    region: dict | None = None


@register
class NetworkGD(Solver):
    """Fixed-step full-batch gradient descent on a network's first layer (see the module docstring)."""

    name = "gd"
    families = ("two_layer",)

    def __init__(self, lr: float | None = None, record: bool = False, loss_tol: float | None = None,
                 certify: bool = True):
        if isinstance(lr, str):
            raise ValidationError(f"lr must be a positive number; lr={lr!r} is resolved by softsym.minimize "
                                  "(lr='certified' needs the derived constants)" if lr == "certified" else
                                  f"lr must be a positive number or 'certified', got {lr!r}")
        self.lr = None if lr is None else positive("lr", lr)
        for name, v in (("record", record), ("certify", certify)):
            if not isinstance(v, (bool, np.bool_)):
                raise ValidationError(f"{name} must be True or False, got {v!r}")
        self.record = bool(record)
        self.certify = bool(certify)
        self.loss_tol = None if loss_tol is None else positive("loss_tol", loss_tol)

    def init(self, objective, x0: np.ndarray) -> NetworkGDState:
        f, g = objective.fun_and_jac(x0)
        st = NetworkGDState(x=x0, f=f, g=g, f0=f)
        if self.certify and hasattr(objective, "fun_and_jac_region"):
            st.U0 = objective.preactivations(x0)
            st.region = {"D": 0.0, "max_abs_u": float(np.max(np.abs(st.U0))), "w_drift": 0.0, "x0": x0}
        if self.record:
            st.H0 = objective.ntk(x0)
            ev = np.linalg.eigvalsh(st.H0)
            st.lam_max0, st.lam_min, st.drift = float(ev[-1]), [float(ev[0])], [0.0]
        elif self.lr is None:
            st.lam_max0 = objective.lam_max(x0)
        if self.lr is None:
            if not st.lam_max0 > 0:
                raise ValidationError("the NTK is zero at W_0 (a dead network); pass lr explicitly")
            st.lr, st.lr_rule = 1.0 / st.lam_max0, "1/lambda_max(H(W_0))"
        else:
            st.lr, st.lr_rule = self.lr, "given"
        return st

    def step(self, objective, state: NetworkGDState) -> NetworkGDState:
        x = state.g * -state.lr
        x += state.x
        if state.region is not None:
            f, g, big, dif = objective.fun_and_jac_region(x, state.U0)
        else:
            f, g = objective.fun_and_jac(x)
        new = NetworkGDState(x=x, f=f, g=g, lr=state.lr, lr_rule=state.lr_rule, f0=state.f0,
                             lam_max0=state.lam_max0, H0=state.H0, lam_min=state.lam_min, drift=state.drift,
                             U0=state.U0, region=state.region)
        if state.region is not None and np.isfinite(f):  # running maxima (a new dict: a rejected step leaves the old)
            reg = state.region
            dW = (x - reg["x0"]).reshape(-1, state.U0.shape[1])
            new.region = {"D": max(reg["D"], float(dif)), "max_abs_u": max(reg["max_abs_u"], float(big)),
                          "w_drift": max(reg["w_drift"], float(np.sqrt(np.max(np.einsum("ij,ij->j", dW, dW))))),
                          "x0": reg["x0"]}
        if self.record:  # the run's own lists (created by init)
            H = objective.ntk(x)
            new.lam_min.append(float(np.linalg.eigvalsh(H)[0]))
            new.drift.append(float(np.max(np.abs(np.linalg.eigvalsh(H - state.H0)))))
        return new

    def converged(self, state: NetworkGDState) -> str | None:
        if self.loss_tol is not None and state.f <= self.loss_tol * state.f0:
            return f"loss {state.f:.3g} <= loss_tol {self.loss_tol:g} x initial loss"
        return None

    def extra_result(self, state: NetworkGDState) -> dict:
        out = {"lr": state.lr, "lr_rule": state.lr_rule, "lam_max0": state.lam_max0}
        if self.record:
            out.update(ntk_drift=np.array(state.drift), lam_min=np.array(state.lam_min))
        if self.certify and state.region is not None:
            out["region"] = {k: v for k, v in state.region.items() if k != "x0"}
        return out

"""The declarative definition of a functional form, and the numerics every form shares.

A form predicts log(metric) from log-inputs, in an internal parametrisation (log of positive
scales) chosen so that the optimiser sees a well-conditioned, unconstrained-looking problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Param:
    """One internal parameter: its bounds, and how it maps to the published parameter."""

    name: str
    lower: float
    upper: float
    public: str
    log_scale: bool = False  # public value = exp(internal value)

    def to_public(self, value: Array) -> Array:
        return np.exp(value) if self.log_scale else value

    def from_public(self, value: Array) -> Array:
        return np.log(value) if self.log_scale else value


@dataclass(frozen=True)
class Form:
    """A functional form L(inputs; params), declared by its parameters, prediction and start grid.

    `log_predict(theta, lx)` maps internal parameters `theta` (B, P) and log-inputs `lx` (k, n)
    to log predictions (B, n). It must be written with complex-safe numpy so that the default
    Jacobian can use the complex step, which is exact to rounding. `jacobian`, when given, returns
    `(log_predict, d log_predict / d theta)` analytically.

    `features`, when given, declares the form as a log-sum-exp of terms affine in theta:
    log_predict = logsumexp_k(sum_p theta_p F[k, p, i]) with F = features(lx) of shape (T, P, n).
    The optimiser then assembles gradients and Gauss-Newton matrices with matrix products.
    """

    name: str
    formula: str
    inputs: tuple[str, ...]
    params: tuple[Param, ...]
    log_predict: Callable[[Array, Array], Array]
    start_grid: Callable[[Array, Array], Array]
    jacobian: Callable[[Array, Array], tuple[Array, Array]] | None = None
    features: Callable[[Array], Array] | None = None
    description: str = ""

    @property
    def n_params(self) -> int:
        return len(self.params)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.public for p in self.params)

    @property
    def lower(self) -> Array:
        return np.array([p.lower for p in self.params], dtype=float)

    @property
    def upper(self) -> Array:
        return np.array([p.upper for p in self.params], dtype=float)

    @property
    def free(self) -> Array:
        """Indices of the fitted parameters; a parameter with lower == upper is fixed (e.g. a given floor)."""
        return np.flatnonzero(self.upper > self.lower)

    def value_and_jacobian(self, theta: Array, lx: Array) -> tuple[Array, Array]:
        """Log predictions (B, n) and their Jacobian (B, n, P) with respect to theta."""
        if self.jacobian is not None:
            return self.jacobian(theta, lx)
        if self.features is not None:
            return affine_lse_jacobian(self.features(lx), theta)
        return complex_step_jacobian(self.log_predict, theta, lx)

    def to_public(self, theta: Array) -> dict[str, Array]:
        theta = np.asarray(theta, dtype=float)
        return {p.public: p.to_public(theta[..., i]) for i, p in enumerate(self.params)}

    def from_public(self, values: dict[str, float]) -> Array:
        missing = [p.public for p in self.params if p.public not in values]
        if missing:
            raise KeyError(f"form '{self.name}' needs parameters {', '.join(missing)}")
        return np.array([p.from_public(np.asarray(values[p.public], dtype=float)) for p in self.params])


def logsumexp(*terms: Array) -> Array:
    """log(sum(exp(terms))) that is stable and also correct for complex-step perturbed inputs."""
    shift = np.maximum.reduce([np.real(t) for t in np.broadcast_arrays(*terms)])
    total = sum(np.exp(t - shift) for t in terms)
    return shift + np.log(total)


def softplus(z: Array) -> Array:
    """log(1 + exp(z)), stable for large |z| and complex-step safe."""
    return logsumexp(np.zeros_like(np.real(z)), z)


def complex_step_jacobian(
    log_predict: Callable[[Array, Array], Array], theta: Array, lx: Array, step: float = 1e-30
) -> tuple[Array, Array]:
    """Exact-to-rounding Jacobian by the complex step: d f / d theta_k = Im f(theta + i h e_k) / h."""
    theta = np.asarray(theta, dtype=float)
    value = log_predict(theta, lx)
    jac = np.empty(value.shape + (theta.shape[-1],))
    for k in range(theta.shape[-1]):
        shifted = theta.astype(complex)
        shifted[..., k] += 1j * step
        jac[..., k] = np.imag(log_predict(shifted, lx)) / step
    return value, jac


def product_grid(*axes: Array) -> Array:
    """Every combination of the given 1-D axes, as rows of an (S, P) array."""
    mesh = np.meshgrid(*[np.asarray(a, dtype=float) for a in axes], indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=-1)


def affine_terms(features: Array, theta: Array) -> Array:
    """Term values (T, B, n) = theta (B, P) applied to features (T, P, n)."""
    return np.einsum("bp,tpn->tbn", np.atleast_2d(theta), features)


def affine_lse(features: Callable[[Array], Array]) -> Callable[[Array, Array], Array]:
    """The log_predict of a form declared by its features: logsumexp over affine terms."""

    def log_predict(theta: Array, lx: Array) -> Array:
        return logsumexp(*affine_terms(features(lx), theta))

    return log_predict


def affine_lse_jacobian(features: Array, theta: Array) -> tuple[Array, Array]:
    terms = affine_terms(features, theta)
    shift = terms.max(axis=0)
    expd = np.exp(terms - shift)
    total = expd.sum(axis=0)
    share = expd / total
    return shift + np.log(total), np.einsum("tbn,tpn->bnp", share, features)

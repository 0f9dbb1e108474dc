"""symm.stats: statistics of samples of a representation with the symmetry imposed, as symm_learning.stats and the
C++ symm::stats (src/stats/stats.cpp): the mean projected onto the invariant subspace, the variance constant on
each irreducible copy, and (cross-)covariances projected onto Hom_G. Differentiable torch functions on the
samples' device and dtype. Samples are x (N, D) or (N, D, T) (a time axis joins the samples; cov takes (N, D)).
The C++ reference is symm._C.stats."""
from __future__ import annotations

import torch

from . import linalg
from .linalg import _check_rep, _on, _projector_master, equiv_orthogonal_projection

__all__ = ["mean", "var", "var_mean", "cov"]


def _samples(fn, x, rep):
    _check_rep(fn, rep)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"symm.stats.{fn}: expected x to be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in (2, 3) or x.shape[1] != rep.size:
        raise ValueError(f"symm.stats.{fn}: expected x (N, D) or (N, D, T) with D = {rep.size} for {rep.name}, "
                         f"got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"symm.stats.{fn}: expected floating-point samples, got {x.dtype}")
    return x if x.dim() == 2 else x.transpose(1, 2).reshape(-1, x.shape[1])


def _mean(flat, rep):
    p = _on(("pinv", rep.fingerprint), lambda: _projector_master(rep), flat)
    return p @ flat.mean(0)


def mean(x: torch.Tensor, rep_x) -> torch.Tensor:
    """P_inv · (1/N) Σ_n x_n: the empirical mean projected onto Fix(ρ_x). (D,)."""
    flat = _samples("mean", x, rep_x)
    if flat.shape[0] < 1:
        raise ValueError(f"symm.stats.mean: needs at least 1 sample, got shape {tuple(x.shape)}")
    return _mean(flat, rep_x)


def _average_master(rep):
    dims = [rep.group.irrep(k).dim for k in rep.irreps]
    copy_of = torch.repeat_interleave(torch.arange(len(dims)), torch.tensor(dims, dtype=torch.long))
    same = (copy_of[:, None] == copy_of[None, :]).double()
    return same / same.sum(1, keepdim=True)


def var(x: torch.Tensor, rep_x, center: torch.Tensor | None = None) -> torch.Tensor:
    """The variance of each coordinate under the covariance that is constant on every irreducible copy: in the
    irrep-spectral basis v_j = Σ_n (Qᵀ(x_n − c))_j² / (N − 1), averaged over the coordinates of each copy, and
    back as (Q⊙Q) v. c is ``center`` when given, else mean(x, rep_x). (D,). Needs N ≥ 2."""
    flat = _samples("var", x, rep_x)
    n = flat.shape[0]
    if n < 2:
        raise ValueError(f"symm.stats.var: needs at least 2 samples (it divides by N - 1), got {n}")
    if center is None:
        center = _mean(flat, rep_x)
    elif not isinstance(center, torch.Tensor) or center.shape != (rep_x.size,):
        raise ValueError(f"symm.stats.var: expected center of shape ({rep_x.size},), got "
                         f"{tuple(center.shape) if isinstance(center, torch.Tensor) else type(center).__name__}")
    q = _on(("q", linalg.basis_key(rep_x)), lambda: rep_x.change_of_basis, flat)
    avg = _on(("avg", linalg.basis_key(rep_x)), lambda: _average_master(rep_x), flat)
    spectral = (flat - center) @ q
    v = avg @ (spectral.square().sum(0) / (n - 1))
    return q.square() @ v


def var_mean(x: torch.Tensor, rep_x):
    """(var(x, rep_x, mean(x, rep_x)), mean(x, rep_x)), as torch.var_mean."""
    m = mean(x, rep_x)
    return var(x, rep_x, center=m), m


def cov(x: torch.Tensor, y: torch.Tensor, rep_x, rep_y, uncentered: bool = False) -> torch.Tensor:
    """The cross-covariance C_yx (D_y, D_x) of x (N, D_x) and y (N, D_y) projected onto Hom_G(ρ_x, ρ_y): centred by
    the invariant means and divided by N − 1, or (uncentered) the second moment divided by N."""
    _check_rep("cov", rep_x)
    _check_rep("cov", rep_y)
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"symm.stats.cov: expected {name} to be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise ValueError(f"symm.stats.cov: expected floating-point samples {name}, got {t.dtype}")
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != rep_x.size or y.shape[1] != rep_y.size or x.shape[0] != y.shape[0]:
        raise ValueError(f"symm.stats.cov: expected x (N, {rep_x.size}) and y (N, {rep_y.size}) with the same N, "
                         f"got x {tuple(x.shape)} and y {tuple(y.shape)}")
    n = x.shape[0]
    if n < (1 if uncentered else 2):
        raise ValueError(f"symm.stats.cov: needs at least {1 if uncentered else 2} samples"
                         f"{'' if uncentered else ' (it divides by N - 1)'}, got {n}")
    if not uncentered:
        x, y = x - _mean(x, rep_x), y - _mean(y, rep_y)
    raw = y.T @ x / (n if uncentered else n - 1)
    return equiv_orthogonal_projection(raw, rep_x, rep_y)

"""eMultivariateNormal (symm_learning.nn.eMultivariateNormal; C++ src/nn/distributions.cpp): a Gaussian head whose
mean is equivariant and whose covariance commutes with the group. The input (..., in_rep.size) is
[μ (out_rep.size) | log-variances (one per irrep copy of out_rep)], in_rep = out_rep ⊕ #copies·trivial; the output
is torch.distributions.MultivariateNormal(μ, Σ) with Σ = Q diag(v) Qᵀ, v the exponentiated log-variance of each
spectral coordinate's copy plus 1e-6 and Q out_rep's change of basis, so ρ_Y(g) Σ = Σ ρ_Y(g) and
p(ρ_Y(g) y | ρ_in(g) u) = p(y | u) for every g. (symm_learning 0.8.1 takes diag(Q⊙Q·v), the diagonal of this Σ: the
same where Q permutes signed coordinates, not equivariant for every representation.)"""
from __future__ import annotations

import torch
from torch.distributions import MultivariateNormal

from .. import _C
from .module import InputError, check_device_and_dtype, eModule

__all__ = ["eMultivariateNormal"]


class eMultivariateNormal(eModule):
    def __init__(self, out_rep, diagonal: bool = True, device=None, dtype=None):
        if not diagonal:
            raise ValueError("eMultivariateNormal: only diagonal covariances (diagonal=True, one variance per irrep "
                             "copy) are implemented, got diagonal=False")
        if out_rep.size == 0:
            raise ValueError("eMultivariateNormal: out_rep is empty")
        self.n_cov_params = len(out_rep.irreps)
        super().__init__(out_rep + _C.Representation.trivial(out_rep.group, self.n_cov_params), out_rep)
        self.diagonal = diagonal
        dims = [out_rep.group.irrep(k).dim for k in out_rep.irreps]
        copy_of = torch.repeat_interleave(torch.arange(len(dims)), torch.tensor(dims, dtype=torch.long))
        self._constant("_q", out_rep.change_of_basis, dtype)
        self._constant("_copy_of", copy_of)
        self._place(device, dtype)

    def reset_parameters(self):
        self._reset_constants()

    def forward(self, input: torch.Tensor) -> MultivariateNormal:
        n, c = self.out_rep.size, self.in_rep.size
        if not isinstance(input, torch.Tensor):
            raise TypeError(f"eMultivariateNormal: expected a torch.Tensor, got {type(input).__name__}")
        if input.dim() < 1 or input.shape[-1] != c:
            raise InputError(f"eMultivariateNormal: expected input of shape (..., {c}) (mean {n} + log-variances "
                             f"{self.n_cov_params} for {self.out_rep.name}), got {tuple(input.shape)}")
        if not input.is_floating_point():
            raise InputError(f"eMultivariateNormal: expected a floating-point input, got {input.dtype}")
        check_device_and_dtype("eMultivariateNormal", input, self._q)
        mu = input[..., :n]
        v = input[..., n:].index_select(-1, self._copy_of).exp() + 1e-6
        q = self._q
        # Σ = Q diag(v) Qᵀ; its Cholesky factor from Q diag(√v) by a QR of the transpose (Σ = R ᵀR).
        a = q * v.sqrt().unsqueeze(-2)                      # (..., n, n) = Q diag(√v)
        r = torch.linalg.qr(a.transpose(-2, -1))[1]
        sign = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
        sign = torch.where(sign == 0, torch.ones_like(sign), sign)
        scale_tril = (r * sign.unsqueeze(-1)).transpose(-2, -1)
        return MultivariateNormal(mu, scale_tril=scale_tril)

    def extra_repr(self) -> str:
        return f"out={self.out_rep.name}, in={self.in_rep.name}, n_cov_params={self.n_cov_params}, diagonal={self.diagonal}"

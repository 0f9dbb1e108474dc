"""eAffine: y = Q·diag(α, one scale per irrep copy)·Qᵀ·x + b with b ∈ Fix(ρ). Scaling a whole irrep copy
commutes with the group; the scales and the bias are learned or given at call time (FiLM style)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import ops
from .module import EvalCache, check_device_and_dtype, check_features, eModule

__all__ = ["eAffine"]


def _column_copies(rep):
    """The irrep copy of each column of Q."""
    return torch.tensor([k for k, irrep in enumerate(rep.irreps) for _ in range(rep.group.irrep(irrep).dim)], device="cpu")


class eAffine(eModule):
    """Learnable (or FiLM) scales per irrep copy and an invariant bias; elementwise when every channel lies in
    one irrep copy (regular copies in the permutation basis do not: there it is a D×D map)."""

    def __init__(self, in_rep, bias: bool = True, learnable: bool = True, device=None, dtype=None):
        super().__init__(in_rep)
        self.in_features = in_rep.size
        self.learnable, self.has_bias = learnable, bias
        c = ops.affine_constants(in_rep)
        self.num_copies = len(in_rep.irreps)
        self.diagonal = bool(c["diagonal"])
        self._constant("_copy_of", c["copy_of"])
        self._constant("_q", c["change_of_basis"], dtype)
        self._constant("_fix", c["fix"], dtype)
        self.num_fix = self._fix.shape[1]
        like = dict(device=self._q.device, dtype=self._q.dtype)
        self.scale_dof = torch.nn.Parameter(torch.empty(self.num_copies, **like)) if learnable else None
        self.bias_dof = (torch.nn.Parameter(torch.empty(self.num_fix, **like))
                         if learnable and bias and self.num_fix > 0 else None)
        self._scale_cache, self._bias_cache = EvalCache(), EvalCache()
        self.reset_parameters()
        self._place(device, dtype)

    def reset_parameters(self):
        self._reset_constants()
        with torch.no_grad():
            if self.scale_dof is not None:
                self.scale_dof.fill_(1.0)
            if self.bias_dof is not None:
                self.bias_dof.zero_()

    def _expand(self, scale):
        return scale.index_select(scale.dim() - 1, self._copy_of)

    def scale_matrix(self) -> torch.Tensor:
        """The dense (D, D) scaling of the learned scales (cached in eval when autograd needs nothing)."""
        if self.scale_dof is None:
            raise RuntimeError("eAffine.scale_matrix: the module is not learnable; its scales are given to forward")
        compute = (lambda: torch.diag(self._expand(self.scale_dof))) if self.diagonal else \
            (lambda: (self._q * self._expand(self.scale_dof)) @ self._q.T)
        return self._scale_cache.value_for(self, [self.scale_dof], compute)

    def bias_vector(self) -> torch.Tensor | None:
        if self.bias_dof is None:
            return None
        return self._bias_cache.value_for(self, [self.bias_dof], lambda: torch.mv(self._fix, self.bias_dof))

    def _check_film(self, what, t, size, x):
        if t.dim() < 1 or t.shape[-1] != size:
            meaning = "one per irrep copy" if what == "scale" else "the dimension of Fix(rho)"
            raise RuntimeError(f"eAffine: expected {what} with last dimension {size} ({meaning}), got shape {tuple(t.shape)}")
        if t.dtype != x.dtype:
            raise RuntimeError(f"eAffine: {what} has dtype {t.dtype} but the input has {x.dtype}")

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x (..., D); scale (..., num_copies) and bias (..., num_fix) override the learned values (FiLM)."""
        check_features("eAffine", x, self.in_features)
        if self.learnable:
            check_device_and_dtype("eAffine", x, self.scale_dof)
        elif scale is None:
            raise RuntimeError(f"eAffine: learnable=False, so forward needs a scale of shape [..., {self.num_copies}] "
                               f"(one per irrep copy)")
        elif bias is None and self.has_bias and self.num_fix > 0:
            raise RuntimeError(f"eAffine: learnable=False with bias, so forward needs a bias of shape "
                               f"[..., {self.num_fix}] (coordinates in Fix(rho))")
        if bias is not None and not self.has_bias:
            raise RuntimeError("eAffine: a bias was given but the module was built with bias=False")
        if scale is not None:
            self._check_film("scale", scale, self.num_copies, x)
        if bias is not None:
            self._check_film("bias", bias, self.num_fix, x)
        b = (bias @ self._fix.T if self.num_fix > 0 else None) if bias is not None else self.bias_vector()
        if self.diagonal:
            s = self._expand(scale if scale is not None else self.scale_dof)
            return torch.addcmul(b, x, s) if b is not None else x * s
        if scale is not None:
            y = (x @ self._q) * self._expand(scale) @ self._q.T
            return y + b if b is not None else y
        return F.linear(x, self.scale_matrix(), b)  # S is symmetric

    def forward_isotypic(self, z: torch.Tensor, copy_of_row: torch.Tensor, fix: torch.Tensor | None) -> torch.Tensor:
        """The learned affine map on z (D, N) in the isotypic layout (whose rows' irrep copies are copy_of_row and
        whose Fix(ρ) basis is fix): a scale per row and an invariant bias, elementwise there."""
        s = self.scale_dof.index_select(0, copy_of_row).unsqueeze(1)
        if self.bias_dof is None or fix is None:
            return z * s
        return torch.addcmul(torch.mv(fix, self.bias_dof).unsqueeze(1), z, s)

    @torch.no_grad()
    def set_dense(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        """The closest learned values to a per-channel scale and bias: each irrep copy gets the mean of its
        channels' scales (weighted by Q²); the bias is projected onto Fix(ρ)."""
        if self.scale_dof is None:
            raise RuntimeError("eAffine.set_dense: the module is not learnable; its scales are given to forward")
        if weight.shape != (self.in_features,):
            raise ValueError(f"eAffine.set_dense: expected a weight of shape [{self.in_features}], got {list(weight.shape)}")
        q = self._masters["_q"]
        column = _column_copies(self.in_rep)
        per_column = q.square().T @ weight.detach().to("cpu", torch.float64)
        cpu = dict(dtype=torch.float64, device="cpu")
        sums = torch.zeros(self.num_copies, **cpu).index_add_(0, column, per_column)
        dims = torch.zeros(self.num_copies, **cpu).index_add_(0, column, torch.ones(len(column), **cpu))
        self.scale_dof.copy_(sums / dims)
        if bias is not None and self.bias_dof is not None:
            self.bias_dof.copy_(self._masters["_fix"].T @ bias.detach().to("cpu", torch.float64))

    def extra_repr(self) -> str:
        return (f"rep={self.in_rep.name}, copies={self.num_copies}, fix={self.num_fix}, learnable={self.learnable}, "
                f"bias={self.has_bias}, diagonal={self.diagonal}")

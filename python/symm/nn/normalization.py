"""Equivariant normalisation: eRMSNorm and eLayerNorm. Both divide by a norm that ρ (orthogonal) leaves
unchanged, then apply an eAffine (a child module, so its hooks fire)."""
from __future__ import annotations

import torch

from . import ops
from .affine import eAffine
from .module import check_features, eModule

__all__ = ["eRMSNorm", "eLayerNorm"]


def _check_eps(module, eps):
    if not eps > 0:
        raise ValueError(f"{module}: eps must be positive, got {eps}")


def _affine_isotypic(affine, y, space):
    return y if affine is None else affine.forward_isotypic(y, space["copy_of_row"], space.get("fix"))


class eRMSNorm(eModule):
    """x / sqrt(mean(x²) + eps) over the last dimension, then an eAffine without bias."""

    def __init__(self, in_rep, eps: float = 1e-5, equiv_affine: bool = True, device=None, dtype=None):
        super().__init__(in_rep)
        _check_eps("eRMSNorm", eps)
        self.in_features, self.eps = in_rep.size, eps
        self.affine = eAffine(in_rep, bias=False, dtype=dtype) if equiv_affine else None
        self._place(device, dtype)

    def reset_parameters(self):
        if self.affine is not None:
            self.affine.reset_parameters()

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        check_features("eRMSNorm", x, self.in_features)
        return ops.rms_normalise(x, self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.normalise(x)
        return self.affine(y) if self.affine is not None else y

    def forward_isotypic(self, z: torch.Tensor, space: dict) -> torch.Tensor:
        """The norm of z (D, N) in the isotypic layout of ``space`` (an orthogonal change of basis keeps the
        mean square)."""
        return _affine_isotypic(self.affine, torch.ops.symm.rms_normalise(z, 0, self.eps), space)

    def extra_repr(self) -> str:
        return f"in={self.in_rep.name}, eps={self.eps}, equiv_affine={self.affine is not None}"


class eLayerNorm(eModule):
    """Centres x along u, the unit invariant part of the all-ones direction (the mean for the trivial group),
    divides by sqrt(mean of the centred squares + eps), then eAffine. Equals torch.nn.LayerNorm for C1."""

    def __init__(self, in_rep, eps: float = 1e-5, equiv_affine: bool = True, bias: bool = True, device=None, dtype=None):
        super().__init__(in_rep)
        _check_eps("eLayerNorm", eps)
        self.in_features, self.eps = in_rep.size, eps
        centre = ops.layer_norm_constants(in_rep).get("centre")
        self.centred = centre is not None
        if self.centred:
            self._constant("_centre", centre, dtype)
        self.affine = eAffine(in_rep, bias=bias, dtype=dtype) if equiv_affine else None
        self._place(device, dtype)

    def reset_parameters(self):
        self._reset_constants()
        if self.affine is not None:
            self.affine.reset_parameters()

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        check_features("eLayerNorm", x, self.in_features)
        return ops.layer_normalise(x, self._centre.to(x.dtype) if self.centred else None, self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.normalise(x)
        return self.affine(y) if self.affine is not None else y

    def forward_isotypic(self, z: torch.Tensor, space: dict) -> torch.Tensor:
        """The norm of z (D, N) in the isotypic layout of ``space``, whose ``centre`` is the centring direction
        in isotypic coordinates."""
        y = torch.ops.symm.layer_normalise(z, space["centre"].to(z.dtype) if self.centred else None, 0, self.eps)
        return _affine_isotypic(self.affine, y, space)

    def extra_repr(self) -> str:
        return (f"in={self.in_rep.name}, eps={self.eps}, equiv_affine={self.affine is not None}, "
                f"bias={self.affine is not None and self.affine.has_bias}, centred={self.centred}")

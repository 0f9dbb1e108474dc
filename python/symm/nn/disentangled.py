"""Change2DisentangledBasis: x̂ = Mx, the coordinates of x in the isotypic (disentangled) basis, the irrep copies
grouped by irrep (in the order of the group's irreps, the trivial first; copies of one irrep adjacent, in_rep's
order otherwise). out_rep is the direct sum of the irreps in that order with the identity change of basis, so
out_rep(g)·M = M·in_rep(g). With learnable=True (symm_learning's) the map is a torch Linear ``linear`` without
bias initialised to M, equivariant only at initialisation; state dict as the C++ module's."""
from __future__ import annotations

import torch

from .. import _C
from .module import check_features, eModule

__all__ = ["Change2DisentangledBasis"]


def _disentangled(rep):
    """(M, the sorted irreps): M's rows are the columns of Q, copies stably sorted by irrep."""
    irreps, q = list(rep.irreps), rep.change_of_basis
    offsets = [0]
    for k in irreps:
        offsets.append(offsets[-1] + rep.group.irrep(k).dim)
    order = sorted(range(len(irreps)), key=lambda i: irreps[i])
    cols = torch.cat([q[:, offsets[i]:offsets[i + 1]] for i in order], 1)
    return cols.T.contiguous(), [irreps[i] for i in order]


class Change2DisentangledBasis(eModule):
    """x (..., D) → (..., D) in the isotypic basis; x itself when in_rep is already in that basis."""

    def __init__(self, in_rep, learnable: bool = False, device=None, dtype=None):
        m, irreps = _disentangled(in_rep)
        d = in_rep.size
        super().__init__(in_rep, _C.Representation(in_rep.group, irreps, torch.eye(d, dtype=torch.float64, device="cpu"),
                                                   f"{in_rep.name} (isotypic)"))
        self.in_features, self.learnable = d, learnable
        self.identity = bool(torch.allclose(m, torch.eye(d, dtype=torch.float64, device="cpu"), rtol=0, atol=1e-12))
        self._constant("_m", m, dtype)
        self.linear = torch.nn.Linear(d, d, bias=False, dtype=dtype) if learnable else None
        self.reset_parameters()
        self._place(device, dtype)

    def change_of_basis(self) -> torch.Tensor:
        """M (D, D), float64."""
        return self._masters["_m"].clone()

    def reset_parameters(self):
        self._reset_constants()
        if self.linear is not None and self.linear.weight.device.type != "meta":
            with torch.no_grad():
                self.linear.weight.copy_(self._masters["_m"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_features("Change2DisentangledBasis", x, self.in_features)
        if self.linear is not None:
            return self.linear(x)
        if self.identity:
            return x
        return x @ self._m.to(x.dtype).T

    def extra_repr(self) -> str:
        return f"in={self.in_rep.name}, learnable={self.learnable}, identity={self.identity}"

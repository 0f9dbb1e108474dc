"""IrrepSubspaceNormPooling: invariant features from an equivariant vector, the Euclidean norm of its component
on every irrep copy, r_i = |Q_iᵀ x| (Q_i the columns of the change of basis for copy i). ρ(g) acts on each copy's
coordinates by an orthogonal irrep matrix, so every r_i is invariant. No parameters."""
from __future__ import annotations

import torch

from .. import _C
from . import ops
from .module import check_features, eModule

__all__ = ["IrrepSubspaceNormPooling"]


class IrrepSubspaceNormPooling(eModule):
    """x (..., in_rep.size) → (..., number of irrep copies), in the order of in_rep.irreps; out_rep is that many
    trivial copies."""

    def __init__(self, in_rep, device=None, dtype=None):
        super().__init__(in_rep, _C.Representation.trivial(in_rep.group, len(in_rep.irreps)))
        self.in_features, self.num_copies = in_rep.size, len(in_rep.irreps)
        self._constant("_q", in_rep.change_of_basis, dtype)
        self._constant("_copy_of", ops.column_copies(in_rep))
        self._place(device, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_features("IrrepSubspaceNormPooling", x, self.in_features)
        sq = (x @ self._q.to(x.dtype)).square()
        s = torch.zeros(*x.shape[:-1], self.num_copies, dtype=sq.dtype, device=sq.device).index_add(-1, self._copy_of, sq)
        # The square root's gradient at 0 is infinite; a vanishing copy gets the subgradient 0 instead.
        positive = s > 0
        return torch.where(positive, torch.sqrt(torch.where(positive, s, torch.ones_like(s))), torch.zeros_like(s))

    def extra_repr(self) -> str:
        return f"in={self.in_rep.name}, out={self.num_copies} invariant features"

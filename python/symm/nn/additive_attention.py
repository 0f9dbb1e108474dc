"""Additive positional attention (symm_learning's eAdditivePosMultiheadAttention and
eAdditiveRelMultiheadAttention), as the C++ modules: a learned absolute embedding projected onto the invariant
subspace and added to query and key before the projections, or a learned scalar bias of the clipped relative
position subtracted from the logits. Both commute with the group: the first adds invariant vectors, the second
invariant scalars. Invalid positions get no positional term, and keys at invalid positions are not attended to."""
from __future__ import annotations

import torch

from ..linalg import invariant_orthogonal_projector
from .positional import PositionalAttentionBase

__all__ = ["eAdditivePosMultiheadAttention", "eAdditiveRelMultiheadAttention"]


class eAdditivePosMultiheadAttention(PositionalAttentionBase):
    """q' = q + P_inv E[p_q], k' = k + P_inv E[p_k], v' = v, then equivariant attention. The table ``pos_emb``
    (max_len, D) starts at zero (as symm_learning's); reset_parameters() draws it from N(0, 0.02²), projected.
    Positions index the table: integers in [0, max_len)."""

    def __init__(self, in_rep, num_heads, max_len, dropout: float = 0.0, bias: bool = True,
                 init_scheme: str | None = "xavier_normal", device=None, dtype=None):
        name = "eAdditivePosMultiheadAttention"
        super().__init__(name, in_rep, num_heads, dropout, bias, init_scheme, device, dtype)
        if int(max_len) <= 0:
            raise ValueError(f"{name}: max_len must be positive, got {max_len}")
        self.max_len = int(max_len)
        self._constant("_projector", invariant_orthogonal_projector(in_rep, device="cpu", dtype=torch.float64), dtype)
        self.pos_emb = torch.nn.Parameter(torch.zeros(self.max_len, in_rep.size, device=self._projector.device,
                                                      dtype=self._projector.dtype))
        super().reset_parameters()  # the projections; the table stays zero, as the C++ module's
        self._place(device, dtype)

    def reset_parameters(self):
        self._reset_constants()
        super().reset_parameters()
        with torch.no_grad():
            self.pos_emb.copy_((torch.randn_like(self.pos_emb) * 0.02) @ self._projector)

    def _embedding(self, positions, valid, side):
        if positions.numel() and not torch.compiler.is_compiling():
            if not bool((positions == positions.round()).all()):
                raise RuntimeError(f"{self._name}: {side} positions index an embedding table and must be integers")
            lo, hi = float(positions.min()), float(positions.max())
            if lo < 0 or hi >= self.max_len:
                raise RuntimeError(f"{self._name}: {side} positions must be in [0, max_len = {self.max_len}), got "
                                   f"[{lo:g}, {hi:g}]")
        e = self.pos_emb[positions.to(torch.long)] @ self._projector  # P_inv is symmetric
        return e * valid.unsqueeze(-1).to(e.dtype) if valid is not None else e

    def _shift_inputs(self, query, key, pq, pk, query_valid, key_valid):
        shifted = query + self._embedding(pq, query_valid, "query")
        if key is query:
            return shifted, shifted
        return shifted, key + self._embedding(pk, key_valid, "key")

    def _apply_positions(self, q, k, pq, pk, query_valid, isotypic=False):
        return q, k, None

    def extra_repr(self) -> str:
        return super().extra_repr() + f", max_len={self.max_len}"


class eAdditiveRelMultiheadAttention(PositionalAttentionBase):
    """logits_ij −= b[clip(p_i − p_j)], one table ``rel_bias`` (2·max_distance + 1) shared by the heads; the
    clipped difference is truncated toward zero (float time stamps work). The table starts at zero;
    reset_parameters() draws it from N(0, 0.02²). Pairs with an invalid query position get no bias."""

    def __init__(self, in_rep, num_heads, max_distance, dropout: float = 0.0, bias: bool = True,
                 init_scheme: str | None = "xavier_normal", device=None, dtype=None):
        name = "eAdditiveRelMultiheadAttention"
        super().__init__(name, in_rep, num_heads, dropout, bias, init_scheme, device, dtype)
        if int(max_distance) <= 0:
            raise ValueError(f"{name}: max_distance must be positive, got {max_distance}")
        self.max_distance = int(max_distance)
        self.rel_bias = torch.nn.Parameter(torch.zeros(2 * self.max_distance + 1, device=self.in_proj.weight_dof.device,
                                                       dtype=self.in_proj.weight_dof.dtype))
        super().reset_parameters()
        self._place(device, dtype)

    def reset_parameters(self):
        super().reset_parameters()
        with torch.no_grad():
            self.rel_bias.normal_(0.0, 0.02)

    def _apply_positions(self, q, k, pq, pk, query_valid, isotypic=False):
        b, t, s = q.shape[0], q.shape[2], k.shape[2]
        m = self.max_distance
        rel = (pq.unsqueeze(-1) - pk.unsqueeze(-2)).clamp(-m, m).to(torch.long) + m
        bias = -self.rel_bias[rel].view(b, 1, t, s)
        if query_valid is not None:
            bias = bias * query_valid.view(b, 1, t, 1).to(bias.dtype)
        return q, k, bias.to(q.dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", max_distance={self.max_distance}"

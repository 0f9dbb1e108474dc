"""Attention that sees token positions and stays equivariant: the positions act on the token axis or on
whole regular copies, never inside a copy."""
from __future__ import annotations

import torch

from .attention import AttentionBase, _add, _check_sequence

__all__ = ["PositionalAttentionBase", "RotaryAttention", "ALiBiAttention"]


def _check_positions(module, positions, valid, what, mask_what, batch, length):
    if positions is not None:
        if positions.dim() != 2 or tuple(positions.shape) != (batch, length):
            raise RuntimeError(f"{module}: expected {what} of shape [{batch}, {length}], got {list(positions.shape)}")
        if positions.dtype == torch.bool or positions.is_complex():
            raise RuntimeError(f"{module}: expected {what} of a floating-point or integer dtype, got {positions.dtype}")
    if valid is not None:
        if valid.dim() != 2 or tuple(valid.shape) != (batch, length):
            raise RuntimeError(f"{module}: expected {mask_what} of shape [{batch}, {length}], got {list(valid.shape)}")
        if valid.dtype != torch.bool:
            raise RuntimeError(f"{module}: expected {mask_what} of dtype bool (true = valid position), got {valid.dtype}")


def _positions(positions, valid, batch, length, device):
    """float64 (B, L): the given positions or 0..L-1; position 0 where `valid` is false."""
    p = positions.to(device=device, dtype=torch.float64) if positions is not None else \
        torch.arange(length, dtype=torch.float64, device=device).expand(batch, length)
    return torch.where(valid.to(device), p, torch.zeros((), dtype=torch.float64, device=device)) if valid is not None else p


class PositionalAttentionBase(AttentionBase):
    """The seam for positional backends: forward takes (B, T) positions (float or int, default 0..T-1) and
    (B, T) bool position masks (true = valid); keys at invalid positions are not attended to. For
    self-attention (query is key) missing key positions and masks default to the query's."""

    uses_positions = True

    def forward(self, query, key, value, query_positions=None, key_positions=None, key_padding_mask=None,
                attn_mask=None, is_causal=False, *, query_position_mask=None, key_position_mask=None,
                need_weights=False, average_attn_weights=True):
        """Returns (output (B, T, D), weights or None unless need_weights)."""
        for x, what in ((query, "query"), (key, "key")):
            _check_sequence(self._name, x, what, self.embed_dim, self.in_proj.weight_dof)
        if query is key:
            key_positions = query_positions if key_positions is None else key_positions
            key_position_mask = query_position_mask if key_position_mask is None else key_position_mask
        b, t, s = query.shape[0], query.shape[1], key.shape[1]
        _check_positions(self._name, query_positions, query_position_mask, "query_positions", "query_position_mask", b, t)
        _check_positions(self._name, key_positions, key_position_mask, "key_positions", "key_position_mask", b, s)
        pq = _positions(query_positions, query_position_mask, b, t, query.device)
        pk = _positions(key_positions, key_position_mask, b, s, query.device)
        query, key = self._shift_inputs(query, key, pq, pk, query_position_mask, key_position_mask)
        q, k, v = self._project(query, key, value)
        q, k, bias = self._apply_positions(q, k, pq, pk, query_position_mask)
        mask = _add(bias, self._mask(q, k, attn_mask, key_padding_mask, key_position_mask))
        out, weights = self._attend(q, k, v, mask, is_causal, need_weights, average_attn_weights)
        return self._output(out), weights

    def _positions_isotypic(self, q, k, positions, position_mask):
        b, t = q.shape[0], q.shape[2]
        _check_positions(self._name, positions, position_mask, "src_positions", "src_position_mask", b, t)
        p = _positions(positions, position_mask, b, t, q.device)
        q, k, bias = self._apply_positions(q, k, p, p, position_mask, isotypic=True)
        return q, k, bias, position_mask

    def _shift_inputs(self, query, key, pq, pk, query_valid, key_valid):
        """query and key before the projections (an absolute embedding is added there); as given by default."""
        return query, key

    def _apply_positions(self, q, k, pq, pk, query_valid, isotypic=False):
        """(q, k, additive logit bias or None) from the projected heads (B, H, L, head_dim), laid out (copy,
        component), or (component, copy) when isotypic."""
        raise NotImplementedError


class RotaryAttention(PositionalAttentionBase):
    """Rotary positions over regular copies: within a head, copies 2j and 2j+1 form a pair of |G|-vectors
    rotated by the angle ω_j·p, ω_j = base^(-j / pairs). ρ acts identically on both, so the rotation commutes
    with it; q·k depends on p_i − p_j only. A head with an odd number of copies leaves its last one
    unrotated; a head needs at least two copies."""

    supports_isotypic = True

    def __init__(self, in_rep, num_heads, dropout: float = 0.0, bias: bool = True,
                 init_scheme: str | None = "xavier_uniform", base: float = 10000.0, device=None, dtype=None):
        super().__init__("RotaryAttention", in_rep, num_heads, dropout, bias, init_scheme, device, dtype)
        per_head = self.copies // num_heads
        if per_head < 2:
            raise ValueError(f"RotaryAttention: each head needs at least 2 regular copies to rotate, got {self.copies} "
                             f"copies of in_rep {in_rep.name} over {num_heads} heads ({per_head} per head); use fewer "
                             f"heads or more copies")
        if not base > 0:
            raise ValueError(f"RotaryAttention: base must be positive, got {base}")
        self.base, self.pairs = base, per_head // 2
        self._constant("_omega", torch.tensor([base ** (-j / self.pairs) for j in range(self.pairs)],
                                                dtype=torch.float64, device="cpu"),
                       torch.float64)
        self.reset_parameters()
        self._place(device, dtype)

    def reset_parameters(self):
        self._reset_constants()
        super().reset_parameters()

    def _apply(self, fn, recurse=True):
        # The frequencies stay float64 whatever the module's dtype, as the C++ module keeps them.
        super()._apply(fn, recurse)
        if self._omega.dtype != torch.float64:
            self._omega = self._masters["_omega"].to(self._omega.device)
        return self

    def _rotate(self, x, positions, isotypic):
        b, h, l, _ = x.shape
        c = self.copies // self.num_heads
        theta = positions.unsqueeze(-1) * self._omega  # (B, L, pairs), float64
        shape = (b, 1, l, 1, self.pairs) if isotypic else (b, 1, l, self.pairs, 1)
        cos, sin = theta.cos().to(x.dtype).view(shape), theta.sin().to(x.dtype).view(shape)
        # The copy axis of the head: (B, H, L, copies, |G|), or (B, H, L, |G|, copies) when isotypic.
        axis = 4 if isotypic else 3
        xv = x.unflatten(-1, (-1, c) if isotypic else (c, -1))
        u, v = xv.narrow(axis, 0, 2 * self.pairs).unflatten(axis, (self.pairs, 2)).unbind(axis + 1)
        rotated = torch.stack((u * cos - v * sin, u * sin + v * cos), axis + 1).flatten(axis, axis + 1)
        if c % 2:
            rotated = torch.cat((rotated, xv.narrow(axis, 2 * self.pairs, 1)), axis)
        return rotated.flatten(3)

    def _apply_positions(self, q, k, pq, pk, query_valid, isotypic=False):
        return self._rotate(q, pq, isotypic), self._rotate(k, pk, isotypic), None

    def extra_repr(self) -> str:
        return super().extra_repr() + f", base={self.base}"


class ALiBiAttention(PositionalAttentionBase):
    """An invariant relative-position bias −slope_h·|p_i − p_j| on the logits, for integer or continuous
    positions; a scalar added to the logits is invariant under the group. ``slopes`` (ALiBi's geometric
    sequence 2^(-8(h+1)/H)) is a parameter with learnable_slopes, else a buffer (in the state dict, as in C++)."""

    supports_isotypic = True

    def __init__(self, in_rep, num_heads, dropout: float = 0.0, bias: bool = True,
                 init_scheme: str | None = "xavier_uniform", learnable_slopes: bool = False, device=None, dtype=None):
        super().__init__("ALiBiAttention", in_rep, num_heads, dropout, bias, init_scheme, device, dtype)
        self.learnable_slopes = learnable_slopes
        slopes = torch.empty(num_heads, dtype=dtype)
        if learnable_slopes:
            self.slopes = torch.nn.Parameter(slopes)
        else:
            self.register_buffer("slopes", slopes)
        self.reset_parameters()
        self._place(device, dtype)

    def reset_parameters(self):
        super().reset_parameters()
        h = self.num_heads
        with torch.no_grad():
            self.slopes.copy_(torch.tensor([2.0 ** (-8.0 * (i + 1) / h) for i in range(h)], dtype=torch.float64, device="cpu"))

    def _apply_positions(self, q, k, pq, pk, query_valid, isotypic=False):
        b, t, s = q.shape[0], q.shape[2], k.shape[2]
        distance = (pq.view(b, 1, t, 1) - pk.view(b, 1, 1, s)).abs().to(self.slopes.dtype)
        return q, k, (distance * self.slopes.neg().view(1, self.num_heads, 1, 1)).to(q.dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", learnable_slopes={self.learnable_slopes}"

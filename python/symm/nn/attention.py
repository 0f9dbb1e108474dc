"""Equivariant attention. Q, K and V are equivariant maps into m regular copies in the permutation basis;
each head owns whole regular copies, so per-head dot products are invariant, softmax acts on tokens only,
and the output projection maps back equivariantly."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import _C
from .linear import eLinear
from .module import check_device_and_dtype, eModule, tracing

__all__ = ["eMultiheadAttention", "AttentionBase"]


def _check_rep(module, in_rep, num_heads):
    m = in_rep.regular_copies
    if not m:
        raise ValueError(f"{module}: in_rep {in_rep.name} must be isomorphic to copies of the regular representation "
                         f"of {in_rep.group.name} (size a multiple of {in_rep.group.order}), got size {in_rep.size}")
    if num_heads <= 0:
        raise ValueError(f"{module}: num_heads must be positive, got {num_heads}")
    if m % num_heads:
        raise ValueError(f"{module}: num_heads {num_heads} does not divide the {m} regular copies of in_rep {in_rep.name}")
    return m


def _check_sequence(module, x, what, embed, like):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{module}: expected {what} to be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3 or x.shape[-1] != embed:
        raise RuntimeError(f"{module}: expected {what} of shape (batch, length, {embed}) (batch-first, last dimension "
                           f"the representation's size), got shape {tuple(x.shape)}")
    check_device_and_dtype(module, x, like, what)


def _check_mask(module, mask, what, bool_meaning, shapes):
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise RuntimeError(f"{module}: expected {what} of dtype bool ({bool_meaning}) or floating point (added to the "
                           f"logits), got {mask.dtype}")
    if tuple(mask.shape) not in shapes:
        raise RuntimeError(f"{module}: expected {what} of shape {' or '.join(str(list(s)) for s in shapes)}, got "
                           f"{list(mask.shape)}")
    if mask.is_floating_point() and not tracing() and bool(mask.isnan().any()):
        raise RuntimeError(f"{module}: {what} contains NaN; expected -inf or finite values")


def _additive(mask, dtype, device):
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill(mask.to(device), float("-inf"))
    return mask.to(dtype=dtype, device=device)


def _add(a, b):
    return b if a is None else a if b is None else a + b


class AttentionBase(eModule):
    """What eMultiheadAttention, RotaryAttention and ALiBiAttention share: the projections (children
    ``in_proj``: in_rep → 3m regular copies, rows [0, D) Q, [D, 2D) K, [2D, 3D) V; ``out_proj``: m regular
    copies → in_rep), call checks, masks and the scaled-dot-product core."""

    uses_positions = False

    def __init__(self, name, in_rep, num_heads, dropout, bias, init_scheme, device, dtype):
        super().__init__(in_rep)
        self.copies = _check_rep(name, in_rep, num_heads)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout}")
        self._name = name
        self.num_heads, self.dropout, self.embed_dim = num_heads, dropout, in_rep.size
        self.head_dim = in_rep.size // num_heads
        regular = _C.Representation.regular(in_rep.group)
        self.in_proj = eLinear(in_rep, regular.copies(3 * self.copies), bias=bias, init_scheme=init_scheme, dtype=dtype)
        self.out_proj = eLinear(regular.copies(self.copies), in_rep, bias=bias, init_scheme=init_scheme, dtype=dtype)

    def reset_parameters(self):
        """torch.nn.MultiheadAttention's initialisation: weights by the scheme, biases zero."""
        for proj in (self.in_proj, self.out_proj):
            proj.reset_parameters()
            if proj.bias_dof is not None:
                with torch.no_grad():
                    proj.bias_dof.zero_()

    def _project(self, query, key, value):
        """(B, H, L, head_dim) heads of Q, K and V: self-attention (query, key and value one tensor) in one
        fused in_proj product; else in_proj's output rows that each input needs."""
        like = self.in_proj.weight_dof
        for t, what in ((query, "query"), (key, "key"), (value, "value")):
            _check_sequence(self._name, t, what, self.embed_dim, like)
        if key.shape[0] != query.shape[0] or value.shape[0] != query.shape[0]:
            raise RuntimeError(f"{self._name}: query, key and value must have the same batch size, got "
                               f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
        if value.shape[1] != key.shape[1]:
            raise RuntimeError(f"{self._name}: key and value must have the same length, got key {tuple(key.shape)} "
                               f"and value {tuple(value.shape)}")
        d = self.embed_dim
        if query is key and key is value:
            q, k, v = self.in_proj(query).chunk(3, -1)
        else:
            q = self.in_proj(query, rows=(0, d))
            if key is value:
                k, v = self.in_proj(key, rows=(d, 3 * d)).chunk(2, -1)
            else:
                k, v = self.in_proj(key, rows=(d, 2 * d)), self.in_proj(value, rows=(2 * d, 3 * d))
        split = lambda t: t.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)
        return split(q), split(k), split(v)

    def _mask(self, q, k, attn_mask, key_padding_mask, key_valid=None):
        """attn_mask, key_padding_mask and invalid keys as one additive mask broadcastable to (B, H, T, S), or
        None."""
        b, h, t, s = q.shape[0], self.num_heads, q.shape[2], k.shape[2]
        dtype, device = q.dtype, q.device
        mask = None
        if attn_mask is not None:
            _check_mask(self._name, attn_mask, "attn_mask", "true = not allowed", [(t, s), (b * h, t, s)])
            a = _additive(attn_mask, dtype, device)
            mask = a.view(b, h, t, s) if a.dim() == 3 else a
        if key_padding_mask is not None:
            _check_mask(self._name, key_padding_mask, "key_padding_mask", "true = padding", [(b, s)])
            mask = _add(mask, _additive(key_padding_mask, dtype, device).view(b, 1, 1, s))
        if key_valid is not None:
            mask = _add(mask, _additive(key_valid.logical_not(), dtype, device).view(b, 1, 1, s))
        return mask

    def _attend(self, q, k, v, mask, is_causal, need_weights, average_attn_weights):
        """softmax(q kᵀ / sqrt(head_dim) + mask) v, with torch's fused kernel when the weights are not needed
        (the causal mask alone goes in as is_causal, which keeps the flash kernels available)."""
        p = self.dropout if self.training else 0.0
        if is_causal:
            if mask is None and not need_weights:
                return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True), None
            causal = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device).triu(1)
            mask = _add(mask, _additive(causal, q.dtype, q.device))
        if not need_weights:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p), None
        logits = (q * (1.0 / math.sqrt(self.head_dim))) @ k.transpose(-2, -1)
        if mask is not None:
            logits = logits + mask
        weights = torch.softmax(logits, -1)
        if p > 0:
            weights = F.dropout(weights, p, True)
        return weights @ v, (weights.mean(1) if average_attn_weights else weights)

    def _output(self, out):
        return self.out_proj(out.transpose(1, 2).flatten(2))

    #: Whether a layer may run this attention in the isotypic basis (forward_isotypic).
    supports_isotypic = False

    def forward_isotypic(self, z, batch, attn_mask=None, key_padding_mask=None, is_causal=False, positions=None,
                         position_mask=None, memory=None):
        """Self-attention on z (D, B·T) in the isotypic layout of in_rep → the same; with memory (D, B·S) in that
        layout, cross-attention from z to it (the decoder's). Each head owns whole regular copies, the chunks of
        the layout: its q·k is the same in the chunks' isotypic coordinates (an orthogonal change of basis per
        copy), so the heads are slices of the chunk axis, laid out (component, copy)."""
        rows, per_head, m = self.embed_dim // self.copies, self.copies // self.num_heads, self.copies

        def heads(t, parts):  # (rows, [parts, H, per_head], [B, L]) → (parts, B, H, L, head_dim)
            t = t.view(rows, parts, self.num_heads, per_head, batch, -1).permute(1, 4, 2, 5, 0, 3)
            return t.reshape(parts, batch, self.num_heads, -1, self.head_dim)

        if memory is None:
            q, k, v = heads(self.in_proj.forward_isotypic(z), 3).unbind(0)
        else:  # Q from z, K and V from memory: in_proj's output chunks [0, m) and [m, 3m)
            q = heads(self.in_proj.forward_isotypic(z, (0, m)), 1)[0]
            k, v = heads(self.in_proj.forward_isotypic(memory, (m, 2 * m)), 2).unbind(0)
        q, k, bias, key_valid = self._positions_isotypic(q, k, positions, position_mask)
        mask = _add(bias, self._mask(q, k, attn_mask, key_padding_mask, key_valid))
        out, _ = self._attend(q, k, v, mask, is_causal, False, True)
        out = out.view(batch, self.num_heads, -1, rows, per_head).permute(3, 1, 4, 0, 2)
        return self.out_proj.forward_isotypic(out.reshape(self.embed_dim, -1))

    def _positions_isotypic(self, q, k, positions, position_mask):
        """(q, k, logit bias or None, valid keys or None) of the isotypic heads: no positions by default."""
        return q, k, None, None

    def extra_repr(self) -> str:
        return (f"in={self.in_rep.name}, copies={self.copies}, num_heads={self.num_heads}, dropout={self.dropout}, "
                f"bias={self.in_proj.bias_dof is not None}")


class eMultiheadAttention(AttentionBase):
    """torch.nn.MultiheadAttention semantics, batch-first (B, T, D); heads own whole regular copies."""

    supports_isotypic = True

    def __init__(self, in_rep, num_heads, dropout: float = 0.0, bias: bool = True,
                 init_scheme: str | None = "xavier_uniform", device=None, dtype=None):
        super().__init__("eMultiheadAttention", in_rep, num_heads, dropout, bias, init_scheme, device, dtype)
        self.reset_parameters()
        self._place(device, dtype)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        q, k, v = self._project(query, key, value)
        mask = self._mask(q, k, attn_mask, key_padding_mask)
        out, weights = self._attend(q, k, v, mask, is_causal, need_weights, average_attn_weights)
        return self._output(out), weights

"""eTransformerDecoderLayer: self-attention, cross-attention to the encoder's memory and the feed-forward
block, each equivariant, with the API of torch.nn.TransformerDecoderLayer (batch-first)."""
from __future__ import annotations

import torch

from .encoder_layer import (DEFAULT_ACTIVATION, attend, check_attention, check_dropout, layer_activation,
                            make_norm)
from .feedforward import eFeedForward
from .isotypic import IsotypicExecution
from .linear import _check_execution
from .module import check_features, eModule

__all__ = ["eTransformerDecoderLayer"]


class eTransformerDecoderLayer(eModule):
    def __init__(self, in_rep, self_attn, multihead_attn, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation=DEFAULT_ACTIVATION, layer_norm_eps: float = 1e-5, norm_first: bool = True,
                 norm_module: str = "rmsnorm", bias: bool = True, device=None, dtype=None,
                 init_scheme: str | None = "xavier_uniform", *, execution: str = "automatic"):
        super().__init__(in_rep)
        name = "eTransformerDecoderLayer"
        check_attention(name, "self_attn", self_attn, in_rep)
        check_attention(name, "multihead_attn", multihead_attn, in_rep)
        check_dropout(name, dropout)
        self.execution = _check_execution(name, execution)
        self.in_features, self.norm_first, self.norm_module = in_rep.size, norm_first, norm_module
        self.self_attn = self_attn
        self.cross_attn = multihead_attn  # the C++ module's name, hence the state dict's
        self.feedforward = eFeedForward(in_rep, dim_feedforward, layer_activation(activation), dropout, bias,
                                        init_scheme, dtype=dtype)
        self.norm1 = make_norm(name, norm_module, in_rep, layer_norm_eps, bias, dtype)
        self.norm2 = make_norm(name, norm_module, in_rep, layer_norm_eps, bias, dtype)
        self.norm3 = make_norm(name, norm_module, in_rep, layer_norm_eps, bias, dtype)
        self.dropout1 = torch.nn.Dropout(dropout)
        self.dropout2 = torch.nn.Dropout(dropout)
        self.dropout3 = torch.nn.Dropout(dropout)
        self._isotypic = IsotypicExecution(self, self.execution, [self_attn, multihead_attn],
                                           [self.norm1, self.norm2, self.norm3], self.feedforward, positions=False)
        self._place(device, dtype)

    @property
    def multihead_attn(self):
        """torch.nn.TransformerDecoderLayer's name of the cross-attention."""
        return self.cross_attn

    def reset_parameters(self):
        self._reset_constants()
        for m in (self.self_attn, self.cross_attn, self.feedforward, self.norm1, self.norm2, self.norm3):
            m.reset_parameters()

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False, *, tgt_positions=None,
                memory_positions=None):
        """tgt (B, T, D), memory (B, S, D); masks and is_causal for the self- and the cross-attention; positions
        reach positional backends."""
        name = "eTransformerDecoderLayer"
        check_features(name, tgt, self.in_features, "tgt")
        check_features(name, memory, self.in_features, "memory")
        if tgt.dim() != 3 or memory.dim() != 3 or tgt.shape[0] != memory.shape[0]:
            raise RuntimeError(f"{name}: expected tgt (B, T, D) and memory (B, S, D) with the same B, got "
                               f"{tuple(tgt.shape)} and {tuple(memory.shape)}")
        if self._isotypic.active(self, tgt):
            return self._forward_isotypic(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
                                          memory_key_padding_mask, tgt_is_causal, memory_is_causal)
        sa = lambda x: self.dropout1(attend(self.self_attn, x, x, tgt_mask, tgt_key_padding_mask, tgt_is_causal,
                                            tgt_positions, tgt_positions))
        ca = lambda x: self.dropout2(attend(self.cross_attn, x, memory, memory_mask, memory_key_padding_mask,
                                            memory_is_causal, tgt_positions, memory_positions))
        ff = lambda x: self.dropout3(self.feedforward(x))
        x = tgt
        if self.norm_first:
            x = x + sa(self.norm1(x))
            x = x + ca(self.norm2(x))
            return x + ff(self.norm3(x))
        x = self.norm1(x + sa(x))
        x = self.norm2(x + ca(x))
        return self.norm3(x + ff(x))

    def _forward_isotypic(self, tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask,
                          tgt_is_causal, memory_is_causal):
        """forward with tgt and memory in the isotypic layout (IsotypicExecution), as the C++ layer's."""
        iso, shape, batch = self._isotypic, tgt.shape, tgt.shape[0]
        space = iso.space(self)
        mem = iso.to_isotypic(self, memory)
        sa = lambda z: iso.dropout(self, self.dropout1, self.self_attn.forward_isotypic(
            z, batch, tgt_mask, tgt_key_padding_mask, tgt_is_causal), shape)
        ca = lambda z: iso.dropout(self, self.dropout2, self.cross_attn.forward_isotypic(
            z, batch, memory_mask, memory_key_padding_mask, memory_is_causal, memory=mem), shape)
        ff = lambda z: iso.dropout(self, self.dropout3, self.feedforward.forward_isotypic(z), shape)
        z = iso.to_isotypic(self, tgt)
        if self.norm_first:
            z = z + sa(self.norm1.forward_isotypic(z, space))
            z = z + ca(self.norm2.forward_isotypic(z, space))
            z = z + ff(self.norm3.forward_isotypic(z, space))
        else:
            z = self.norm1.forward_isotypic(z + sa(z), space)
            z = self.norm2.forward_isotypic(z + ca(z), space)
            z = self.norm3.forward_isotypic(z + ff(z), space)
        return iso.from_isotypic(self, z, shape)

    def extra_repr(self) -> str:
        return (f"in={self.in_rep.name}, heads={self.self_attn.num_heads}, dim_feedforward={self.feedforward.hidden_size}, "
                f"norm={self.norm_module}, norm_first={self.norm_first}")

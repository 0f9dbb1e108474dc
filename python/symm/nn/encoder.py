"""eTransformerEncoder: a stack of num_layers copies of an encoder layer and an optional final norm, as
torch.nn.TransformerEncoder."""
from __future__ import annotations

import copy

import torch

from .encoder_layer import eTransformerEncoderLayer
from .module import eModule

__all__ = ["eTransformerEncoder"]


class eTransformerEncoder(eModule):
    def __init__(self, encoder_layer: eTransformerEncoderLayer, num_layers: int, norm: torch.nn.Module | None = None):
        if not isinstance(encoder_layer, eTransformerEncoderLayer):
            raise TypeError(f"eTransformerEncoder: encoder_layer must be an eTransformerEncoderLayer, got "
                            f"{type(encoder_layer).__name__}")
        if num_layers <= 0:
            raise ValueError(f"eTransformerEncoder: num_layers must be positive, got {num_layers}")
        super().__init__(encoder_layer.in_rep)
        # Copies with the same initial values, as torch.nn.TransformerEncoder and the C++ clone() give.
        self.layers = torch.nn.ModuleList(copy.deepcopy(encoder_layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.norm = norm

    def reset_parameters(self):
        for m in list(self.layers) + ([self.norm] if self.norm is not None else []):
            m.reset_parameters()

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=False, *, src_positions=None,
                src_position_mask=None):
        x = src
        for layer in self.layers:
            x = layer(x, mask, src_key_padding_mask, is_causal, src_positions=src_positions,
                      src_position_mask=src_position_mask)
        return x if self.norm is None else self.norm(x)

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}, norm={'none' if self.norm is None else 'yes'}"

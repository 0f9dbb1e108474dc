"""The Transformer's position-wise feed-forward block: eLinear → activation → dropout → eLinear, with the
hidden features in whole regular copies in the permutation basis, so that any pointwise activation is
equivariant."""
from __future__ import annotations

import torch

from .. import _C
from .activation import check_activation
from .linear import eLinear
from .module import eModule

__all__ = ["eFeedForward"]


class eFeedForward(eModule):
    def __init__(self, in_rep, dim_feedforward: int, activation=None, dropout: float = 0.0, bias: bool = True,
                 init_scheme: str | None = "xavier_uniform", device=None, dtype=None):
        super().__init__(in_rep)
        if dim_feedforward <= 0:
            raise ValueError(f"eFeedForward: dim_feedforward must be positive, got {dim_feedforward}")
        g = in_rep.group
        copies = -(-dim_feedforward // g.order)  # rounded up to whole regular copies
        hidden = _C.Representation.regular(g).copies(copies)
        activation = torch.nn.GELU() if activation is None else activation
        check_activation("eFeedForward", activation, g, copies)
        self.hidden_size = hidden.size
        self.linear1 = eLinear(in_rep, hidden, bias=bias, init_scheme=init_scheme, dtype=dtype)
        self.linear2 = eLinear(hidden, in_rep, bias=bias, init_scheme=init_scheme, dtype=dtype)
        self.dropout = torch.nn.Dropout(dropout)
        self.activation = activation
        self._place(device, dtype)

    def reset_parameters(self):
        self.linear1.reset_parameters()
        self.linear2.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))

    def extra_repr(self) -> str:
        return f"in={self.in_rep.name}, hidden={self.hidden_size}"

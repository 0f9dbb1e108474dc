"""The Transformer's position-wise feed-forward block: eLinear → activation → dropout → eLinear, with the
hidden features in whole regular copies in the permutation basis, so that any pointwise activation is
equivariant."""
from __future__ import annotations

import torch

from .. import _C
from .activation import check_activation
from .linear import eLinear
from .module import eModule
from . import ops

__all__ = ["eFeedForward"]

_POINTWISE = (torch.nn.GELU, torch.nn.ReLU, torch.nn.SiLU, torch.nn.Mish, torch.nn.Tanh, torch.nn.Sigmoid, torch.nn.ELU,
              torch.nn.LeakyReLU, torch.nn.Softplus, torch.nn.Hardswish, torch.nn.Hardtanh, torch.nn.Identity,
              torch.nn.CELU, torch.nn.SELU, torch.nn.ReLU6)


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

    @property
    def pointwise(self) -> bool:
        """Whether the activation is one of torch's pointwise ones (then it may act on the hidden features in any
        order, as forward_isotypic applies it)."""
        return isinstance(self.activation, _POINTWISE)

    def forward_isotypic(self, z: torch.Tensor) -> torch.Tensor:
        """z (D, N) in the isotypic layout of in_rep → the same: linear1's blocks, the hidden features into each
        regular copy's permutation basis for the (pointwise) activation and dropout, back, linear2's blocks."""
        basis = self.linear1._iso_basis_out
        h = ops.to_chunk_basis(self.linear1.forward_isotypic(z), basis)
        return self.linear2.forward_isotypic(ops.from_chunk_basis(self.dropout(self.activation(h)), basis, self.hidden_size))

    def extra_repr(self) -> str:
        return f"in={self.in_rep.name}, hidden={self.hidden_size}"

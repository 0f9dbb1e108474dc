"""eMLP: an equivariant multilayer perceptron (eLinear layers with hidden features in whole regular copies in the
permutation basis, where a pointwise activation commutes with the group), and iMLP: an invariant MLP that reads an
eMLP's features through invariants (the trivial coordinates and the norm of every other irrep copy) and finishes
with an unconstrained linear head. Both have the C++ modules' state_dict keys.
"""
from __future__ import annotations

import torch

from .. import Representation, _C
from .activation import check_activation
from .linear import eLinear
from .module import check_features, eModule

__all__ = ["eMLP", "iMLP"]

_INIT_SCHEMES = ("xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal")
#: symm_learning's default activation; each model gets its own ReLU for it.
DEFAULT_ACTIVATION = torch.nn.ReLU()


def hidden_regular(name: str, group, hidden_rep=None) -> Representation:
    """The regular representation whose copies make a model's hidden channels: ours by default, or hidden_rep,
    which must have the regular representation's matrices (the permutation basis, where a pointwise activation
    commutes with the group) and may order and span its irrep copies differently (escnn's decomposition, which
    symm.interop.from_symm_learning passes so that per-copy norm and FiLM scales mean the same copies)."""
    regular = Representation.regular(group)
    if hidden_rep is None:
        return regular
    if not isinstance(hidden_rep, Representation):
        raise TypeError(f"{name}: hidden_rep must be a symm.Representation, got {type(hidden_rep).__name__}")
    if hidden_rep.group != group or not hidden_rep.same(regular):
        raise ValueError(f"{name}: hidden_rep must be the regular representation of {group.name} in the permutation "
                         f"basis (one copy, in any irrep decomposition), got {hidden_rep.name} of size "
                         f"{hidden_rep.size} of {hidden_rep.group.name}")
    return hidden_rep


def is_our_decomposition(rep: Representation) -> bool:
    """Whether rep is copies of Representation.regular as it decomposes them: the same irreps in the same order on
    the same coordinates, so that per-copy parameters (and Hom_G coefficients) mean what they mean by default
    (the C++ test, symm/nn/hidden_rep.h, which decides what a checkpoint's architecture writes)."""
    return _C.is_our_decomposition(rep)


def _regular_copies(group, units: int, regular: Representation | None = None) -> Representation:
    return (Representation.regular(group) if regular is None else regular).copies(max(1, -(-units // group.order)))


class eMLP(eModule):
    """x ↦ eLinear ∘ (activation ∘ eLinear)^L (x); f(ρ_in(g)x) = ρ_out(g) f(x) for every g. Each hidden width is
    rounded up to whole regular copies of the group (of hidden_rep, see hidden_regular); dropout follows every
    activation."""

    def __init__(self, in_rep: Representation, out_rep: Representation, hidden_units, activation=DEFAULT_ACTIVATION,
                 dropout: float = 0.0, bias: bool = True, init_scheme: str = "xavier_normal", device=None, dtype=None,
                 hidden_rep: Representation | None = None):
        super().__init__(in_rep, out_rep)
        G = in_rep.group
        if out_rep.group != G:
            raise ValueError(f"eMLP: in_rep is of {G.name} but out_rep of {out_rep.group.name}")
        hidden_units = list(hidden_units)
        if not hidden_units:
            raise ValueError("eMLP: hidden_units must hold at least one layer")
        if any(int(u) <= 0 for u in hidden_units):
            raise ValueError(f"eMLP: hidden_units must be positive, got {hidden_units}")
        if not 0 <= dropout < 1:
            raise ValueError(f"eMLP: dropout must be in [0, 1), got {dropout}")
        self.init_scheme = init_scheme
        self.hidden_rep = hidden_regular("eMLP", G, hidden_rep)
        self.hidden_reps = [_regular_copies(G, int(u), self.hidden_rep) for u in hidden_units]
        reps = [in_rep, *self.hidden_reps, out_rep]
        self.layers = torch.nn.ModuleList(eLinear(a, b, bias=bias, init_scheme=init_scheme, device=device, dtype=dtype)
                                          for a, b in zip(reps[:-1], reps[1:]))
        for copies in {r.size // G.order for r in self.hidden_reps}:
            check_activation("eMLP", activation, G, copies)
        self.activation = torch.nn.ReLU() if activation is DEFAULT_ACTIVATION else activation
        self.dropout = torch.nn.Dropout(dropout)

    def reset_parameters(self):
        for layer in self.layers:
            layer.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_features("eMLP", x, self.in_rep.size)
        for layer in self.layers[:-1]:
            x = self.dropout(self.activation(layer(x)))
        return self.layers[-1](x)

    def extra_repr(self) -> str:
        return f"in={self.in_rep.name}, hidden={[r.size for r in self.hidden_reps]}, out={self.out_rep.name}"


class iMLP(eModule):
    """x ↦ head(invariants(activation(eMLP(x)))): f(ρ_in(g)x) = f(x) for every g. The invariants of a feature
    vector h are its coordinates on the trivial irrep copies and the norm of its component on every other irrep
    copy; for m regular copies of G that is m·(number of irreps of the regular representation) values. The hidden
    copies are those of hidden_rep (see hidden_regular), so are the irrep copies pooled."""

    def __init__(self, in_rep: Representation, out_dim: int, hidden_units, activation=DEFAULT_ACTIVATION,
                 dropout: float = 0.0, bias: bool = True, init_scheme: str = "xavier_normal", device=None, dtype=None,
                 hidden_rep: Representation | None = None):
        G = in_rep.group
        super().__init__(in_rep, Representation.trivial(G, out_dim) if out_dim > 0 else in_rep)
        hidden_units = list(hidden_units)
        if out_dim <= 0:
            raise ValueError(f"iMLP: out_dim must be positive, got {out_dim}")
        if not hidden_units:
            raise ValueError("iMLP: hidden_units must hold at least one layer")
        if init_scheme not in _INIT_SCHEMES:
            raise ValueError(f"iMLP: unknown init_scheme {init_scheme!r}: expected one of {', '.join(_INIT_SCHEMES)}")
        self.out_dim, self.init_scheme = out_dim, init_scheme
        # The backbone ends on the last hidden width; its output is then activated and pooled.
        self.hidden_rep = hidden_regular("iMLP", G, hidden_rep)
        pooled = _regular_copies(G, int(hidden_units[-1]), self.hidden_rep)
        self.backbone = eMLP(in_rep, pooled, hidden_units[:-1] or hidden_units, activation=activation, dropout=dropout,
                             bias=bias, init_scheme=init_scheme, device=device, dtype=dtype, hidden_rep=self.hidden_rep)
        # Isotypic coordinates c = Qᵀh: irrep copy j owns a run of dim ψ_j coordinates; members (D, copies) sums
        # each run, trivial (copies) marks the copies kept signed rather than as a norm.
        dims = [G.irreps[k].dim for k in pooled.irreps]
        members = torch.zeros(pooled.size, len(dims), dtype=torch.float64)
        o = 0
        for j, d in enumerate(dims):
            members[o:o + d, j] = 1.0
            o += d
        self._constant("pooling", pooled.change_of_basis, dtype)
        self._constant("members", members, dtype)
        self._constant("trivial", torch.tensor([G.irreps[k].is_trivial for k in pooled.irreps]))
        self.head = torch.nn.Linear(len(dims), out_dim, bias=bias, dtype=dtype)
        self._reset_head()
        self._place(device, dtype)

    @torch.no_grad()
    def _reset_head(self):
        init = {"xavier_normal": torch.nn.init.xavier_normal_, "xavier_uniform": torch.nn.init.xavier_uniform_,
                "kaiming_normal": lambda w: torch.nn.init.kaiming_normal_(w, nonlinearity="linear"),
                "kaiming_uniform": lambda w: torch.nn.init.kaiming_uniform_(w, nonlinearity="linear")}
        init[self.init_scheme](self.head.weight)
        if self.head.bias is not None:
            self.head.bias.zero_()

    def reset_parameters(self):
        self._reset_constants()
        self.backbone.reset_parameters()
        self._reset_head()

    def invariants(self, h: torch.Tensor) -> torch.Tensor:
        """The invariant features of h (..., pooled size) → (..., number of irrep copies)."""
        check_features("iMLP", h, self.pooling.shape[0], "pooled features")
        c = h @ self.pooling.to(h.dtype)
        members = self.members.to(h.dtype)
        # ρ is orthogonal and acts on each irrep copy by an orthogonal ψ(g): the norm of the copy is invariant.
        return torch.where(self.trivial, c @ members, torch.sqrt((c * c) @ members + 1e-12))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_features("iMLP", x, self.in_rep.size)
        return self.head(self.invariants(self.backbone.activation(self.backbone(x))))

    def extra_repr(self) -> str:
        return f"in={self.in_rep.name}, pooled={self.pooling.shape[0]}, invariants={self.head.in_features}, out={self.out_dim}"

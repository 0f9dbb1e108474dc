"""The functional core the modules call: constants from the group engine and the kernels.

Every kernel with an operator in ``torch.ops.symm`` (registered by the C++ library, see DESIGN §7) is
called through it here, and only here, so that the modules' graphs are made of operators that autograd,
torch.func, torch.compile and torch.export understand.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import _C

__all__ = ["linear_constants", "linear_weight", "has_isotypic"]


def has_isotypic() -> bool:
    """Whether the isotypic block operators are registered."""
    return hasattr(torch.ops.symm, "isotypic_linear") if hasattr(torch.ops, "symm") else False


@dataclass(frozen=True)
class LinearLayout:
    """Static sizes of the weight synthesis: per batch of same-shape blocks (offset, count, endo, dim, m_out,
    m_in), and the output width. Plain ints, so that compiled graphs specialise on them."""
    batches: tuple
    out_features: int

    @property
    def tensors(self):
        return range(2 * len(self.batches) + 1)


@dataclass(frozen=True)
class LinearConstants:
    dim: int
    layout: LinearLayout
    tensors: tuple        # float64 CPU masters: per batch Ψ (count, S, d, d) and Q_out (count, D_out, m_out·d); Q_inᵀ
    fix: torch.Tensor     # (D_out, n_fix) orthonormal basis of Fix(ρ_out)
    init_std: dict        # init scheme → (dim,) standard deviation of each coefficient


_linear_cache: dict = {}


def linear_constants(in_rep, out_rep) -> LinearConstants:
    """The constants of the maps in_rep → out_rep, computed once per pair of representations (shared by every
    module on them: they are read-only)."""
    key = (in_rep.fingerprint, out_rep.fingerprint)
    hit = _linear_cache.get(key)
    if hit is not None:
        return hit
    basis = _C.HomBasis(in_rep, out_rep)
    blocks = basis.blocks
    group = in_rep.group
    batches, tensors, q_in = [], [], []
    i = 0
    while i < len(blocks):
        b0 = blocks[i]
        j = i + 1
        while j < len(blocks) and (blocks[j].endo, blocks[j].dim, blocks[j].m_out, blocks[j].m_in) == \
                (b0.endo, b0.dim, b0.m_out, b0.m_in):
            j += 1
        batches.append((b0.offset, j - i, b0.endo, b0.dim, b0.m_out, b0.m_in))
        tensors.append(torch.stack([torch.stack(group.irrep(b.irrep).endomorphisms) for b in blocks[i:j]]))
        tensors.append(torch.stack([b.q_out for b in blocks[i:j]]))
        q_in += [b.q_in for b in blocks[i:j]]
        i = j
    tensors.append(torch.cat(q_in, 1).T.contiguous())
    schemes = ("xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal")
    value = LinearConstants(basis.dim, LinearLayout(tuple(batches), out_rep.size), tuple(tensors),
                            out_rep.invariant_basis, {s: basis.init_std(s) for s in schemes})
    _linear_cache[key] = value
    return value


def linear_weight(weight_dof: torch.Tensor, constants, layout: LinearLayout) -> torch.Tensor:
    """Dense W (out, in) = Q_out · blockdiag_k(Θ_k ⊗ Ψ_k) · Q_inᵀ from the coefficients."""
    parts = []
    for i, (offset, count, endo, dim, m_out, m_in) in enumerate(layout.batches):
        theta = weight_dof.narrow(0, offset, count * endo * m_out * m_in).view(count, endo, m_out, m_in)
        if endo == 1 and dim == 1:
            k = theta.view(count, m_out, m_in)
        else:
            k = torch.einsum("bsij,bsac->biajc", theta, constants[2 * i]).reshape(count, m_out * dim, m_in * dim)
        parts.append(torch.bmm(constants[2 * i + 1], k).permute(1, 0, 2).reshape(layout.out_features, -1))
    return torch.matmul(parts[0] if len(parts) == 1 else torch.cat(parts, 1), constants[-1])

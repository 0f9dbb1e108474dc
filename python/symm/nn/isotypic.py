"""A whole layer in the isotypic basis (the C++ layers' isotypic execution): the residual stream goes into the
isotypic layout z (D, N) once, every equivariant map there is a batched product per group of irrep blocks, the
norms act there (an orthogonal change of basis keeps the mean square; the affine scales are per row), the heads
are slices of the chunk axis, and the activation sees each hidden regular copy in its permutation basis.

It is taken only when nothing needs the op-by-op path: no hook on any submodule (the maps are called through
their forward_isotypic, not as modules), a pointwise activation, no autocast. Parameters are read as attributes,
so parametrize, functional_call and torch.func see their own tensors, autograd reaches every coefficient, and
torch.compile / torch.export capture the same operators (with symbolic batch and sequence extents)."""
from __future__ import annotations

import torch

from . import ops
from .module import autocasting, survey
from .normalization import eLayerNorm, eRMSNorm

__all__ = ["IsotypicExecution"]

# Measured on the CPU for the C++ layers (bench/RESULTS.md, `symm bench --execution dense|isotypic`): the block
# products win in training from about a third of the dense multiply-adds, where the dense path synthesises and
# differentiates D×D weights each step; in eval, where the dense weights are cached and each map is one large
# GEMM, only from about a fifth.
_THRESHOLD = {True: 0.35, False: 0.2}


def _linears(module):
    from .linear import eLinear
    return [m for m in module.modules() if isinstance(m, eLinear)]


class IsotypicExecution:
    """The choice and the constants of a layer's isotypic execution: in_rep's isotypic layout (chunk basis,
    copy_of_row, Fix(ρ) and the layer norm's centre in isotypic rows) registered as the layer's buffers."""

    def __init__(self, layer, execution: str, attentions, norms, feedforward, positions: bool = True):
        """positions: whether the attentions may be positional (RotaryAttention, ALiBiAttention); the decoder's
        cross-attention has no isotypic form of two position sets, so its layer passes False."""
        self.supported = (all(getattr(a, "supports_isotypic", False) and (positions or not a.uses_positions)
                              for a in attentions) and feedforward.pointwise
                          and all(isinstance(n, (eRMSNorm, eLayerNorm)) and
                                  (n.affine is None or n.affine.learnable) for n in norms))
        if execution == "isotypic" and not self.supported:
            attention = "eMultiheadAttention, RotaryAttention or ALiBiAttention" if positions else "eMultiheadAttention"
            raise ValueError(f"{type(layer).__name__}: execution='isotypic' needs {attention}, eRMSNorm or eLayerNorm, "
                             f"and a pointwise torch activation; use 'dense' or 'automatic'")
        self.execution = execution
        self.modes = {True: False, False: False}  # training → whether automatic picks the isotypic basis
        if self.supported:
            space = ops.isotypic_space(layer.in_rep)
            self.chunks = space["chunks"]
            layer._constant("_iso_basis", space["basis"])
            layer._constant("_iso_copy_of_row", space["copy_of_row"])
            if "fix" in space:
                layer._constant("_iso_fix", space["fix"])
            centre = ops.layer_norm_constants(layer.in_rep).get("centre")
            if centre is not None and any(isinstance(n, eLayerNorm) for n in norms):
                layer._constant("_iso_centre", torch.ops.symm.to_isotypic(centre.view(1, -1), space["basis"],
                                                                          self.chunks).view(-1))
            dense = sum(m.in_features * m.out_features for m in _linears(layer))
            hidden = feedforward.linear1._iso_basis_out.shape[0]
            # The maps' block products, and the hidden features into the permutation basis and back.
            iso = sum(m.isotypic_multiply_adds for m in _linears(layer)) + 2 * hidden * feedforward.hidden_size
            self.modes = {t: execution == "isotypic" or (execution == "automatic" and iso <= _THRESHOLD[t] * dense)
                          for t in (True, False)}

    def active(self, layer, x) -> bool:
        """Whether this forward runs in the isotypic basis."""
        if not self.modes[layer.training] or autocasting(x):
            return False
        return not survey(layer)[1]

    @staticmethod
    def space(layer) -> dict:
        return {"copy_of_row": layer._iso_copy_of_row, "fix": getattr(layer, "_iso_fix", None),
                "centre": getattr(layer, "_iso_centre", None)}

    def to_isotypic(self, layer, x):
        return torch.ops.symm.to_isotypic(x, layer._iso_basis, self.chunks)

    def from_isotypic(self, layer, z, shape):
        return torch.ops.symm.from_isotypic(z, layer._iso_basis, self.chunks).view(shape)

    def dropout(self, layer, dropout, z, shape):
        """Dropout of a residual branch acts in the representation's basis, where its mask is equivariant in law."""
        if not dropout.training or dropout.p == 0:
            return z
        return self.to_isotypic(layer, dropout(self.from_isotypic(layer, z, shape)))

"""symm: exactly group-equivariant Transformer layers, the C++ library as a PyTorch extension.

    import torch, symm
    G = symm.group("D8")
    rep = symm.Representation.regular(G).copies(8)
    layer = symm.nn.eTransformerEncoderLayer(rep, symm.nn.eMultiheadAttention(rep, 4), dim_feedforward=256)
"""
import os as _os

import torch as _torch  # loads the libtorch the extension links against

from . import _C
from ._C import Group, Irrep, Representation
from . import _pickle, interop, linalg, nn, stats
from .checkpoint import architecture, load, save
from .policy import FlowPolicy

__all__ = ["group", "Group", "Irrep", "Representation", "nn", "stats", "linalg", "interop", "save", "load", "architecture",
           "FlowPolicy"]


def group(spec: str) -> Group:
    """A finite group from a spec string (C8, D4, K4, S4, A5, Q8, T, O, I, C2xD3, ...) or a JSON file."""
    return _C.group(_os.fspath(spec))


def _as_matrices(images):
    return [_torch.as_tensor(m, dtype=_torch.float64).cpu() for m in images]


def _from_generators(group, images, name=""):
    """The representation given by its images of ``group.generators`` (orthogonal matrices), decomposed
    into the group's irreps. Raises ValueError naming the generator when it is not orthogonal or not a
    homomorphism."""
    return Representation._from_generators(group, _as_matrices(images), name)


def _isotypic_decomposition(rep):
    """{irrep id: multiplicity} over the irreps that occur in rep, in the group's canonical order."""
    irreps = rep.group.irreps
    return {irreps[k].id: m for k, m in enumerate(rep.multiplicities) if m}


Representation.from_generators = staticmethod(_from_generators)
Representation.isotypic_decomposition = _isotypic_decomposition

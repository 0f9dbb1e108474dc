"""The functional core the modules call: constants from the group engine (symm._C.linear_constants and
friends, computed once per representation) and the kernels, the operators torch.ops.symm.* registered by the
C++ library (DESIGN §7). Every kernel is called here and only here; they are CompositeImplicitAutograd, so
autograd, torch.func, torch.compile and torch.export see through them."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import _C

__all__ = ["linear_constants", "linear_weight", "affine_constants", "layer_norm_constants", "conv_constants",
           "column_copies", "rms_normalise",
           "layer_normalise"]


@dataclass(frozen=True)
class LinearLayout:
    """How the weight is synthesised: by tiles (regular copies side by side: torch.ops.symm.hom_tiles with
    m_out copies) or by irrep blocks (hom_blocks with m_in per batch), and the names of its tensors. Plain
    ints and strings, so that compiled graphs specialise on them."""
    tiles: bool
    m: tuple
    names: tuple


@dataclass(frozen=True)
class LinearConstants:
    dim: int
    layout: LinearLayout
    tensors: tuple        # float64 / int64 CPU masters, in layout.names order
    fix: torch.Tensor     # (D_out, n_fix) orthonormal basis of Fix(ρ_out)
    init_std: torch.Tensor  # (dim,) standard deviation of each coefficient for the init scheme


_linear_cache: dict = {}


def linear_constants(in_rep, out_rep, init_scheme: str) -> LinearConstants:
    """The constants of the maps in_rep → out_rep, once per pair of representations and init scheme
    (read-only, shared by the modules)."""
    key = (in_rep.fingerprint, out_rep.fingerprint, init_scheme)
    hit = _linear_cache.get(key)
    if hit is not None:
        return hit
    first = _C.linear_constants(in_rep, out_rep, init_scheme)
    tiles = "tiles" in first
    if tiles:
        names = ("tiles", "tile_index") if "tile_index" in first else ("tiles",)
        m = (int(first["tile_m_out"]),)
    else:
        batches = sum(1 for k in first if k.startswith("endomorphisms."))
        names = tuple(f"{kind}.{i}" for kind in ("endomorphisms", "q_out") for i in range(batches)) + ("q_in_t",)
        m = tuple(int(v) for v in first["m_in"])
    value = LinearConstants(int(first["init_std"].numel()), LinearLayout(tiles, m, names),
                            tuple(first[n] for n in names), first["fix"], first["init_std"])
    _linear_cache[key] = value
    return value


def linear_weight(weight_dof: torch.Tensor, constants, layout: LinearLayout) -> torch.Tensor:
    """Dense W (out, in) from the Hom_G coefficients."""
    if layout.tiles:
        index = constants[1] if len(constants) > 1 else None
        return torch.ops.symm.hom_tiles(weight_dof, index, constants[0], layout.m[0])
    n = len(layout.m)
    return torch.ops.symm.hom_blocks(weight_dof, list(constants[:n]), list(constants[n:2 * n]), constants[-1], list(layout.m))


def rms_normalise(x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.ops.symm.rms_normalise(x, -1, eps)


def layer_normalise(x: torch.Tensor, centre, eps: float) -> torch.Tensor:
    return torch.ops.symm.layer_normalise(x, centre, -1, eps)


_cache: dict = {}


def _once(kind, rep, make):
    key = (kind, rep.fingerprint)
    if key not in _cache:
        _cache[key] = make(rep)
    return _cache[key]


def affine_constants(rep) -> dict:
    """eAffine's constants: change_of_basis Q, fix (Fix(ρ) basis), copy_of (irrep copy of each channel when
    diagonal, else of each column of Q), diagonal."""
    return _once("affine", rep, _C.affine_constants)


def layer_norm_constants(rep) -> dict:
    """eLayerNorm's centre (the unit invariant part of the all-ones direction), absent when it is zero."""
    return _once("layer_norm", rep, _C.layer_norm_constants)


def column_copies(rep) -> torch.Tensor:
    """int64 (D): the irrep copy of each column of rep's change of basis Q, in the order of rep.irreps."""
    return torch.tensor([k for k, irrep in enumerate(rep.irreps) for _ in range(rep.group.irrep(irrep).dim)],
                        dtype=torch.int64, device="cpu")


def _channel_group(rep, groups: int, module: str, what: str):
    """One channel group's representation when rep is `groups` equal copies of it side by side in the channel
    basis (as the C++ convolutions require); rep itself for one group."""
    if groups == 1:
        return rep
    if rep.size % groups:
        raise ValueError(f"{module}: groups={groups} must divide the {what} channels, got {rep.size} ({rep.name})")
    c = rep.size // groups
    g = rep.group
    if not g.generators:
        return _C.Representation.trivial(g, c)
    images = []
    for s in g.generators:
        m = rep(s)
        first = m[:c, :c]
        for i in range(groups):
            for j in range(groups):
                block = m[i * c:(i + 1) * c, j * c:(j + 1) * c]
                err = float((block - first).abs().max() if i == j else block.abs().max())
                if err >= 1e-9:
                    raise ValueError(f"{module}: groups={groups} needs {what} {rep.name} to be {groups} equal "
                                     f"sub-representations of {c} channels side by side, but generator {s} has block "
                                     f"({i}, {j}) {'unlike block (0, 0)' if i == j else 'nonzero'}")
        images.append(first)
    return _C.Representation._from_generators(g, images, f"{rep.name}/{groups}")


@dataclass(frozen=True)
class ConvConstants:
    n_in: int               # channels of one group
    n_out: int
    dim: int                # dim Hom_G(σ_in, σ_out)
    synthesis: torch.Tensor  # (n_out·n_in, dim): column i is the basis map of coefficient i, flattened (C++ order)
    init_std: torch.Tensor   # (dim,)
    basis: object            # the _C.HomBasis of one channel group


_conv_cache: dict = {}


def conv_constants(module: str, in_rep, out_rep, groups: int, init_scheme: str) -> ConvConstants:
    """eConv1d's and eConvTranspose1d's constants: the synthesis of one tap from its Hom_G coefficients, as the
    C++ convolutions build it (the same HomBasis, so that a checkpoint of one loads into the other)."""
    key = (in_rep.fingerprint, out_rep.fingerprint, groups, init_scheme)
    hit = _conv_cache.get(key)
    if hit is not None:
        return hit
    sin = _channel_group(in_rep, groups, module, "in_rep")
    sout = _channel_group(out_rep, groups, module, "out_rep")
    basis = _C.HomBasis(sin, sout)
    if basis.dim == 0:
        raise ValueError(f"{module}: Hom_G({sin.name}, {sout.name}) is zero-dimensional: no irrep of the output "
                         f"occurs in the input")
    eye = torch.eye(basis.dim, dtype=torch.float64, device="cpu")
    synthesis = torch.stack([basis.synthesize(eye[i]).reshape(-1) for i in range(basis.dim)], 1)
    value = ConvConstants(sin.size, sout.size, basis.dim, synthesis, basis.init_std(init_scheme), basis)
    _conv_cache[key] = value
    return value

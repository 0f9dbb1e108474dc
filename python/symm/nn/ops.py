"""The functional core the modules call: constants from the group engine (symm._C.linear_constants and
friends, computed once per representation) and the kernels, the operators torch.ops.symm.* registered by the
C++ library (DESIGN §7). Every kernel is called here and only here; they are CompositeImplicitAutograd, so
autograd, torch.func, torch.compile and torch.export see through them."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import _C

__all__ = ["linear_constants", "linear_weight", "affine_constants", "layer_norm_constants", "rms_normalise",
           "layer_normalise", "has_isotypic"]

def has_isotypic() -> bool:
    """Whether the Python modules offer the isotypic execution (its operators exist; the modules do not call
    them yet)."""
    return False


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

"""The functional core the modules call: constants from the group engine (symm._C.linear_constants and
friends, computed once per representation) and the kernels, the operators torch.ops.symm.* registered by the
C++ library (DESIGN §7). Every kernel is called here and only here; they are CompositeImplicitAutograd, so
autograd, torch.func, torch.compile and torch.export see through them."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import _C
from ..linalg import basis_key as _key

__all__ = ["linear_constants", "linear_weight", "isotypic_constants", "isotypic_operands", "isotypic_linear",
           "isotypic_space", "to_chunk_basis", "from_chunk_basis",
           "affine_constants", "layer_norm_constants", "conv_constants", "conv_isotypic_plan",
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
_engine_cache: dict = {}


def _engine_constants(in_rep, out_rep, init_scheme: str | None = None) -> dict:
    """The group engine's constants of the maps in_rep → out_rep; with init_scheme None, those of any scheme (the
    isotypic ones do not depend on it)."""
    pair = (_key(in_rep), _key(out_rep))
    if init_scheme is None:
        hit = next((v for k, v in _engine_cache.items() if k[:2] == pair), None)
        if hit is not None:
            return hit
        init_scheme = "xavier_uniform"
    key = pair + (init_scheme,)
    if key not in _engine_cache:
        _engine_cache[key] = _C.linear_constants(in_rep, out_rep, init_scheme)
    return _engine_cache[key]


def linear_constants(in_rep, out_rep, init_scheme: str) -> LinearConstants:
    """The constants of the maps in_rep → out_rep, once per pair of representations and init scheme
    (read-only, shared by the modules)."""
    key = (_key(in_rep), _key(out_rep), init_scheme)
    hit = _linear_cache.get(key)
    if hit is not None:
        return hit
    first = _engine_constants(in_rep, out_rep, init_scheme)
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


@dataclass(frozen=True)
class IsotypicLayout:
    """eLinear's isotypic execution (the C++ IsotypicMap): x → z in the isotypic bases of ρ_in and ρ_out (m
    chunks each, rows r·m + c), one batched product per group of irrep blocks, back. Plain ints and the names
    of its tensors (index.k, endomorphisms.k of each group with a weight, basis_in, basis_out, fix_out)."""
    m_in: int
    m_out: int
    out_features: int
    dims: tuple       # per weighted group: its irrep dimension
    in_rows: tuple    # per group: its first row of z (-1: no weight, the output irrep is absent from ρ_in)
    out_rows: tuple   # per group: the rows of the output it writes
    bias_shapes: tuple  # per group: its bias as (batch, rows / batch, 1)
    names: tuple
    multiply_adds: int  # per token, of the block products


def isotypic_constants(in_rep, out_rep):
    """(IsotypicLayout, {name: float64/int64 CPU master}) of the maps in_rep → out_rep, once per pair."""
    key = ("isotypic", _key(in_rep), _key(out_rep))
    hit = _cache.get(key)
    if hit is not None:
        return hit
    c = _engine_constants(in_rep, out_rep)
    dims = tuple(int(d) for d in c["isotypic.dims"])
    in_rows = tuple(int(r) for r in c["isotypic.in_rows"])
    out_rows = tuple(int(r) for r in c["isotypic.out_rows"])
    tensors = {"basis_in": c["isotypic_in.basis"], "basis_out": c["isotypic_out.basis"]}
    if "isotypic_out.fix" in c:
        tensors["fix_out"] = c["isotypic_out.fix"]
    shapes, k = [], 0
    for g, rows in enumerate(out_rows):
        if in_rows[g] < 0:
            shapes.append((rows, 1, 1))
            continue
        endo = c[f"isotypic.endomorphisms.{k}"]
        tensors[f"index.{k}"], tensors[f"endomorphisms.{k}"] = c[f"isotypic.index.{k}"], endo
        # An R-type group holds one (count,) scale per irrep and a batch per irrep row; C and H types one batch per irrep.
        batch = endo.shape[0] * dims[k] if endo.dim() == 3 else endo.shape[0]
        shapes.append((batch, rows // batch, 1))
        k += 1
    weights = torch.ops.symm.isotypic_weights(torch.zeros(c["init_std"].numel(), dtype=torch.float64, device="cpu"),
                                              [tensors[f"index.{j}"] for j in range(k)],
                                              [tensors[f"endomorphisms.{j}"] for j in range(k)], list(dims))
    layout = IsotypicLayout(int(c["isotypic_in.chunks"]), int(c["isotypic_out.chunks"]), out_rep.size, dims, in_rows,
                            out_rows, tuple(shapes), tuple(tensors), sum(w.numel() for w in weights))
    _cache[key] = (layout, tensors)
    for side, rep in (("in", in_rep), ("out", out_rep)):
        _cache.setdefault(("space", _key(rep)), _space_from(c, f"isotypic_{side}"))
    return _cache[key]


def _space_from(c: dict, prefix: str) -> dict:
    space = {"chunks": int(c[prefix + ".chunks"]), "basis": c[prefix + ".basis"], "copy_of_row": c[prefix + ".copy_of_row"]}
    if prefix + ".fix" in c:
        space["fix"] = c[prefix + ".fix"]
    return space


def isotypic_space(rep) -> dict:
    """The isotypic layout of one representation (the C++ IsotypicLayout): chunks m, the chunk basis P (s, s)
    with x = P z in each chunk, copy_of_row (the position in rep.irreps of each row's irrep copy, for scales per
    copy), and fix (D, dim Fix) the orthonormal basis of Fix(ρ) in isotypic rows, absent when Fix(ρ) = 0.
    Float64 / int64 CPU masters."""
    key = ("space", _key(rep))
    if key not in _cache:
        _cache[key] = _space_from(_engine_constants(rep, rep), "isotypic_in")
    return _cache[key]


def to_chunk_basis(z: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """(D, N) isotypic → (s, m·N) in each chunk's own basis (for regular copies in the permutation basis: the
    permuted coordinates, where a pointwise activation commutes with the group)."""
    return torch.mm(basis, z.reshape(basis.shape[0], -1))


def from_chunk_basis(h: torch.Tensor, basis: torch.Tensor, size: int) -> torch.Tensor:
    return torch.mm(basis.t(), h).view(size, -1)


def isotypic_operands(weight_dof: torch.Tensor, bias_dof, tensors: dict, layout: IsotypicLayout, chunks=None):
    """The weights and biases of torch.ops.symm.isotypic_blocks, one of each per group (None where absent).
    chunks = (begin, count): only the output chunks [begin, begin + count), as the C++ IsotypicMap's operands
    (the Q, or the K and V, of a fused in-projection for cross-attention); with isotypic_out_rows(layout, count)."""
    n, m = len(layout.dims), layout.m_out
    begin, kept = chunks if chunks is not None else (0, m)
    index = [tensors[f"index.{k}"] for k in range(n)]
    if kept != m:  # (count, S, n_out, n_in), output copies r·m + c: keep c in [begin, begin + kept)
        index = [i.view(i.shape[0], i.shape[1], i.shape[2] // m, m, i.shape[3])[:, :, :, begin:begin + kept]
                 .reshape(i.shape[0], i.shape[1], -1, i.shape[3]) for i in index]
    weights = iter(torch.ops.symm.isotypic_weights(weight_dof, index, [tensors[f"endomorphisms.{k}"] for k in range(n)],
                                                   list(layout.dims)))
    ws = [None if r < 0 else next(weights) for r in layout.in_rows]
    if bias_dof is None or "fix_out" not in tensors:
        return ws, [None] * len(ws)
    # Each group writes whole rows r·m + c of the output, one after the other: the bias splits the same way.
    b = torch.mv(tensors["fix_out"], bias_dof).view(-1, m)[:, begin:begin + kept].split([r // m for r in layout.out_rows])
    return ws, [bg.reshape(-1, 1, 1) if r < 0 else bg.reshape(shape[0], -1, 1)
                for bg, shape, r in zip(b, layout.bias_shapes, layout.in_rows)]


def isotypic_out_rows(layout: IsotypicLayout, kept=None) -> list:
    """The rows each group writes when `kept` of the m_out output chunks are computed (all: layout.out_rows)."""
    if kept is None or kept == layout.m_out:
        return list(layout.out_rows)
    return [r // layout.m_out * kept for r in layout.out_rows]


def isotypic_linear(x: torch.Tensor, operands, tensors: dict, layout: IsotypicLayout) -> torch.Tensor:
    """W x + b through the isotypic bases: x (..., D_in) → (..., D_out)."""
    z = torch.ops.symm.to_isotypic(x, tensors["basis_in"], layout.m_in)
    y = torch.ops.symm.isotypic_blocks(z, operands[0], operands[1], list(layout.in_rows), list(layout.out_rows))
    return torch.ops.symm.from_isotypic(y, tensors["basis_out"], layout.m_out).view(*x.shape[:-1], layout.out_features)


def rms_normalise(x: torch.Tensor, eps: float, dim: int = -1) -> torch.Tensor:
    """x / sqrt(mean(x², dim) + eps): features last (dim -1), or the channels of (N, C, T) (dim 1)."""
    return torch.ops.symm.rms_normalise(x, dim, eps)


def layer_normalise(x: torch.Tensor, centre, eps: float) -> torch.Tensor:
    return torch.ops.symm.layer_normalise(x, centre, -1, eps)


_cache: dict = {}


def _once(kind, rep, make):
    key = (kind, _key(rep))
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
    linear: LinearConstants  # eLinear's synthesis of one tap σ_in → σ_out (the same coefficients as the basis')
    init_std: torch.Tensor   # (dim,)
    basis: object            # the _C.HomBasis of one channel group


_conv_cache: dict = {}


def conv_constants(module: str, in_rep, out_rep, groups: int, init_scheme: str) -> ConvConstants:
    """eConv1d's and eConvTranspose1d's constants: the synthesis of one tap from its Hom_G coefficients, as the
    C++ convolutions build it (the same HomBasis, so that a checkpoint of one loads into the other)."""
    key = (_key(in_rep), _key(out_rep), groups, init_scheme)
    hit = _conv_cache.get(key)
    if hit is not None:
        return hit
    sin = _channel_group(in_rep, groups, module, "in_rep")
    sout = _channel_group(out_rep, groups, module, "out_rep")
    basis = _C.HomBasis(sin, sout)
    if basis.dim == 0:
        raise ValueError(f"{module}: Hom_G({sin.name}, {sout.name}) is zero-dimensional: no irrep of the output "
                         f"occurs in the input")
    value = ConvConstants(sin.size, sout.size, basis.dim, linear_constants(sin, sout, init_scheme),
                          basis.init_std(init_scheme), basis)
    _conv_cache[key] = value
    return value


@dataclass(frozen=True)
class ConvIsotypicPlan:
    """eConv1d in the isotypic basis, for regular copies (Q block diagonal with equal |G|×|G| blocks): per copy,
    x̂ = Q̃ᵀx with Q̃ the block's columns grouped by irrep, one convolution per unit of irreps, back. Every tap of
    Hom_G is block diagonal there, one block per irrep. The units (``units``, one convolution each):

    - ("group", g, 1, 1, 1): the g irreps with one column per block (1-dim irreps of regular copies), one grouped
      convolution (groups=g) over their channels (irrep, copy);
    - ("kron", d, mult_in, mult_out): a real irrep of dimension d whose block is Θ ⊗ I_d (its columns per block
      (multiplicity, component)): Θ convolves the d components stacked along the batch, d times fewer
      multiply-adds than the whole block;
    - ("plain", 1, c_in, c_out, 1): any other irrep, its whole block (channels (copy, column)).

    The blocks are synthesised straight from the coefficients: with φ = θ[tile_index] as (m_out, m_in, r)
    (torch.ops.symm.hom_tiles' tiles T_r), the block between copies o and i is Σ_r φ[o, i, r] E[r] with
    E[r] = (Q̃_outᵀ T_r Q̃_in) restricted to the unit (for "kron", Θ's part: component 0 of both). Tensors are
    float64/int64 CPU masters."""
    q_in: torch.Tensor         # (b, b): Q_in's block, columns in the units' order
    q_out: torch.Tensor        # (b, b)
    columns_out: torch.Tensor  # (b): the column of Q_out's block behind each column of q_out
    synthesis: torch.Tensor    # (r, S): every unit's E flattened, unit after unit
    units: tuple               # (kind, count, c_in, c_out, d) per unit, c the columns per block of one irrep
    m_in: int                  # copies
    m_out: int
    r: int                     # coefficients per tile

    def widths(self, side: int) -> tuple:
        """Columns per block of each unit, of the input (side 0) or the output (1)."""
        return tuple(u[1] if u[0] == "group" else u[2 + side] * (u[4] if u[0] == "kron" else 1) for u in self.units)


def _spectral_blocks(rep):
    """(block (b, b), irrep id of each of its columns) where Q is block diagonal with equal blocks b = |G| >= 8,
    else None. Measured at one thread: blocks of 16 (D8) pay, as eBatchNorm1d's; 2×2 ones (C2) do not."""
    b, q = rep.group.order, rep.change_of_basis
    if b < 8 or q.shape[0] % b:
        return None
    block = q[:b, :b]
    if not torch.equal(torch.block_diag(*([block] * (q.shape[0] // b))), q):
        return None
    ids = torch.tensor([k for k in rep.irreps for _ in range(rep.group.irrep(k).dim)], dtype=torch.int64)
    return block, ids[:b]


def _kronecker(e, d, tol=1e-9):
    """Θ's part (r, mult_out, mult_in) where e (r, mult_out·d, mult_in·d) is Θ ⊗ I_d, else None."""
    r, co, ci = e.shape
    if d == 1 or co % d or ci % d:
        return None
    v = e.reshape(r, co // d, d, ci // d, d)
    theta = v[:, :, 0, :, 0]
    want = theta.unsqueeze(2).unsqueeze(4) * torch.eye(d, dtype=e.dtype).view(1, 1, d, 1, d)
    return theta if float((v - want).abs().max()) < tol else None


def conv_isotypic_plan(in_rep, out_rep, constants: LinearConstants) -> ConvIsotypicPlan | None:
    """The isotypic plan of eConv1d (one tap's synthesis `constants`), or None where it does not apply (see
    ConvIsotypicPlan; both representations need the same irreps and the taps the tile layout)."""
    key = ("conv_isotypic", _key(in_rep), _key(out_rep))
    if key in _cache:
        return _cache[key]
    a, c = _spectral_blocks(in_rep), _spectral_blocks(out_rep)
    plan = None
    layout = constants.layout
    tiles = constants.tensors[0] if layout.tiles else None
    if (a is not None and c is not None and set(a[1].tolist()) == set(c[1].tolist()) and tiles is not None
            and tuple(tiles.shape[1:]) == (c[0].shape[0], a[0].shape[0])
            and layout.m[0] == out_rep.size // c[0].shape[0]):
        G = in_rep.group
        ids = sorted(set(a[1].tolist()))
        count_in = {k: int((a[1] == k).sum()) for k in ids}
        count_out = {k: int((c[1] == k).sum()) for k in ids}
        single = [k for k in ids if count_in[k] == 1 and count_out[k] == 1]
        order = single + [k for k in ids if k not in single]
        perm_in = torch.cat([torch.nonzero(a[1] == k).view(-1) for k in order])
        perm_out = torch.cat([torch.nonzero(c[1] == k).view(-1) for k in order])
        q_in, q_out = a[0][:, perm_in], c[0][:, perm_out]
        e = q_out.T @ tiles @ q_in  # (r, b_out, b_in), block diagonal over the irreps
        mask = torch.zeros_like(e[0], dtype=torch.bool)
        units, blocks, i, o = [], [], 0, 0
        if single:
            g = len(single)
            blocks.append(torch.diagonal(e[:, :g, :g], dim1=1, dim2=2))
            mask[:g, :g] = torch.eye(g, dtype=torch.bool)
            units.append(("group", g, 1, 1, 1))
            i = o = g
        for k in order[len(single):]:
            ci, co = count_in[k], count_out[k]
            block = e[:, o:o + co, i:i + ci]
            mask[o:o + co, i:i + ci] = True
            d = G.irrep(k).dim
            theta = _kronecker(block, d)
            if theta is not None:
                units.append(("kron", d, ci // d, co // d, d))
                blocks.append(theta.reshape(e.shape[0], -1))
            else:
                units.append(("plain", 1, ci, co, 1))
                blocks.append(block.reshape(e.shape[0], -1))
            i, o = i + ci, o + co
        off_blocks = e[:, ~mask]
        if off_blocks.numel() == 0 or float(off_blocks.abs().max()) < 1e-9:
            plan = ConvIsotypicPlan(q_in, q_out, perm_out, torch.cat(blocks, 1), tuple(units),
                                    in_rep.size // a[0].shape[0], out_rep.size // c[0].shape[0], int(tiles.shape[0]))
    _cache[key] = plan
    return plan

"""symm.linalg: linear algebra of a group's representations on torch tensors, as symm_learning.linalg and the
C++ symm::stats (src/stats/linalg.cpp): the invariant orthogonal projector, the orthogonal projection of maps
onto Hom_G(ρ_x, ρ_y) and its coefficients (in the HomBasis order eLinear's weight uses), the dense maps of
coefficients, the equivariant least-squares solution, the radii of the irreducible copies and the copies of an
isotypic signal. Differentiable torch functions on the input's device and dtype; their constants come from the
group engine (symm._C), once per representation, device and dtype. The C++ reference is symm._C.stats."""
from __future__ import annotations

import hashlib

import torch

from . import _C

__all__ = ["invariant_orthogonal_projector", "equiv_orthogonal_projection", "equiv_orthogonal_projection_coefficients",
           "equiv_linear_map", "lstsq", "irrep_radii", "isotypic_signal2irreducible_subspaces"]

_masters: dict = {}
_placed: dict = {}


def _master(key, make):
    hit = _masters.get(key)
    if hit is None:
        hit = _masters[key] = make()
    return hit


def _on(key, make, like: torch.Tensor):
    """The float64 CPU master of a constant, as a tensor on like's device and dtype (cached)."""
    place = (key, like.device, like.dtype)
    hit = _placed.get(place)
    if hit is None:
        master = _master(key, make)
        hit = tuple(m.to(device=like.device, dtype=like.dtype if m.is_floating_point() else None) for m in master) \
            if isinstance(master, tuple) else master.to(device=like.device, dtype=like.dtype)
        _placed[place] = hit
    return hit


def _check_rep(fn, rep):
    if not isinstance(rep, _C.Representation):
        raise TypeError(f"symm.linalg.{fn}: expected a symm.Representation, got {type(rep).__name__} "
                        "(convert escnn representations with symm.interop)")


def _check_float(fn, t, name="x"):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"symm.linalg.{fn}: expected {name} to be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(f"symm.linalg.{fn}: expected a floating-point {name}, got {t.dtype}")


def _projector_master(rep):
    fix = rep.invariant_basis
    return fix @ fix.T


def invariant_orthogonal_projector(rep_x, device=None, dtype=None) -> torch.Tensor:
    """P_inv = Q S Qᵀ (D, D), the orthogonal projector onto the invariant subspace Fix(ρ_x)."""
    _check_rep("invariant_orthogonal_projector", rep_x)
    p = _master(("pinv", rep_x.fingerprint), lambda: _projector_master(rep_x))
    return p.to(device=device, dtype=dtype or torch.get_default_dtype(), copy=True)


def _hom_master(rep_x, rep_y):
    basis = _C.HomBasis(rep_x, rep_y)
    group = rep_x.group
    blocks = []
    for b in basis.blocks:
        psi = torch.stack([torch.as_tensor(p, dtype=torch.float64) for p in group.irrep(b.irrep).endomorphisms][:b.endo])
        blocks.append((b.q_out, b.q_in, psi))
    meta = tuple((b.m_out, b.m_in, b.dim, b.endo) for b in basis.blocks)
    return basis.dim, meta, blocks


def _hom(rep_x, rep_y, like):
    key = ("hom", basis_key(rep_x), basis_key(rep_y))
    dim, meta, _ = _master(key, lambda: _hom_master(rep_x, rep_y))
    tensors = _on(key + ("t",), lambda: tuple(t for blk in _master(key, None)[2] for t in blk), like)
    return dim, meta, tensors


def _check_maps(fn, w, rep_x, rep_y):
    _check_rep(fn, rep_x)
    _check_rep(fn, rep_y)
    _check_float(fn, w, "W")
    if rep_x.group != rep_y.group:
        raise ValueError(f"symm.linalg.{fn}: rep_x and rep_y are representations of different groups "
                         f"({rep_x.group.name}, {rep_y.group.name})")
    if w.dim() < 2 or w.shape[-2] != rep_y.size or w.shape[-1] != rep_x.size:
        raise ValueError(f"symm.linalg.{fn}: expected maps W of shape (..., {rep_y.size}, {rep_x.size}) "
                         f"(D_y, D_x) for Hom_G({rep_x.name}, {rep_y.name}), got {tuple(w.shape)}")


def equiv_orthogonal_projection_coefficients(W: torch.Tensor, rep_x, rep_y) -> torch.Tensor:
    """The coefficients (..., dim Hom_G) of Π(W) in the basis of Hom_G(ρ_x, ρ_y) (HomBasis order, orthonormal
    in the Frobenius inner product), for W (..., D_y, D_x)."""
    _check_maps("equiv_orthogonal_projection_coefficients", W, rep_x, rep_y)
    dim, meta, t = _hom(rep_x, rep_y, W)
    lead = W.shape[:-2]
    if not meta:
        return W.new_zeros(*lead, 0)
    parts = []
    for i, (m_out, m_in, d, endo) in enumerate(meta):
        q_out, q_in, psi = t[3 * i], t[3 * i + 1], t[3 * i + 2]
        grid = (q_out.T @ W @ q_in).reshape(*lead, m_out, d, m_in, d)
        parts.append(torch.einsum("...irjc,src->...sij", grid, psi).reshape(*lead, endo * m_out * m_in))
    return torch.cat(parts, -1)


def equiv_linear_map(theta: torch.Tensor, rep_x, rep_y) -> torch.Tensor:
    """The dense maps (..., D_y, D_x) in Hom_G(ρ_x, ρ_y) of coefficients theta (..., dim Hom_G)."""
    fn = "equiv_linear_map"
    _check_rep(fn, rep_x)
    _check_rep(fn, rep_y)
    _check_float(fn, theta, "theta")
    dim, meta, t = _hom(rep_x, rep_y, theta)
    if theta.dim() < 1 or theta.shape[-1] != dim:
        raise ValueError(f"symm.linalg.{fn}: expected coefficients of shape (..., {dim}) for "
                         f"Hom_G({rep_x.name}, {rep_y.name}), got {tuple(theta.shape)}")
    lead = theta.shape[:-1]
    w = theta.new_zeros(*lead, rep_y.size, rep_x.size)
    offset = 0
    for i, (m_out, m_in, d, endo) in enumerate(meta):
        q_out, q_in, psi = t[3 * i], t[3 * i + 1], t[3 * i + 2]
        size = endo * m_out * m_in
        c = theta[..., offset:offset + size].reshape(*lead, endo, m_out, m_in)
        block = torch.einsum("...sij,src->...irjc", c, psi).reshape(*lead, m_out * d, m_in * d)
        w = w + q_out @ block @ q_in.T
        offset += size
    return w


def equiv_orthogonal_projection(W: torch.Tensor, rep_x, rep_y) -> torch.Tensor:
    """Π(W) (..., D_y, D_x): the closest maps to W in Hom_G(ρ_x, ρ_y) (Frobenius), the group average
    (1/|G|) Σ_g ρ_y(g) W ρ_x(g)⁻¹."""
    return equiv_linear_map(equiv_orthogonal_projection_coefficients(W, rep_x, rep_y), rep_x, rep_y)


def lstsq(x: torch.Tensor, y: torch.Tensor, rep_x, rep_y) -> torch.Tensor:
    """The equivariant least-squares solution A (D_y, D_x) in Hom_G(ρ_x, ρ_y) minimising Σ_n ‖y_n − A x_n‖² for
    samples x (N, D_x), y (N, D_y): the minimum-norm one where the data do not determine it. Differentiable
    (solved in the coefficients of Hom_G by a pseudo-inverse on x's dtype and device)."""
    fn = "lstsq"
    _check_rep(fn, rep_x)
    _check_rep(fn, rep_y)
    _check_float(fn, x, "x")
    _check_float(fn, y, "y")
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != rep_x.size or y.shape[1] != rep_y.size or x.shape[0] != y.shape[0]:
        raise ValueError(f"symm.linalg.{fn}: expected x (N, {rep_x.size}) and y (N, {rep_y.size}) with the same N, "
                         f"got x {tuple(x.shape)} and y {tuple(y.shape)}")
    dim, _, _ = _hom(rep_x, rep_y, x)
    eye = torch.eye(dim, dtype=x.dtype, device=x.device)
    basis = equiv_linear_map(eye, rep_x, rep_y)             # (dim, D_y, D_x), Frobenius-orthonormal
    design = torch.einsum("kyx,nx->nyk", basis, x).reshape(-1, dim)  # vec over (n, y) of B_k x_n
    theta = torch.linalg.pinv(design) @ y.reshape(-1)
    return equiv_linear_map(theta, rep_x, rep_y)


def _irrep_dims(rep):
    return [rep.group.irrep(k).dim for k in rep.irreps]


def basis_key(rep):
    """What constants of a representation depend on: its matrices (the fingerprint) and its decomposition (irreps
    and change of basis), which the fingerprint leaves out: representations with equal matrices may decompose in
    different bases."""
    q = rep.change_of_basis.contiguous()
    return rep.fingerprint, tuple(rep.irreps), hashlib.sha1(q.numpy().tobytes()).hexdigest()


def irrep_radii(x: torch.Tensor, rep) -> torch.Tensor:
    """‖x̂_i‖ of each irreducible copy of x (..., D) in rep.irreps order, x̂ = Qᵀx: (..., #copies), invariant."""
    fn = "irrep_radii"
    _check_rep(fn, rep)
    _check_float(fn, x)
    if x.dim() < 1 or x.shape[-1] != rep.size:
        raise ValueError(f"symm.linalg.{fn}: expected x of shape (..., {rep.size}) for {rep.name}, got {tuple(x.shape)}")
    q = _on(("q", basis_key(rep)), lambda: rep.change_of_basis, x)
    spectral = x @ q
    # linalg.vector_norm: a subgradient 0 at the origin, where sqrt(Σ x²) has none.
    return torch.stack([torch.linalg.vector_norm(b, dim=-1) for b in spectral.split(_irrep_dims(rep), -1)], -1)


def isotypic_signal2irreducible_subspaces(x: torch.Tensor, rep_x) -> torch.Tensor:
    """x (N, D) of an isotypic representation (m copies of one irrep of dimension d) → (N·d, m): the isotypic
    coordinates of each copy as a column, rows (n, component) n-major."""
    fn = "isotypic_signal2irreducible_subspaces"
    _check_rep(fn, rep_x)
    _check_float(fn, x)
    if x.dim() != 2 or x.shape[1] != rep_x.size:
        raise ValueError(f"symm.linalg.{fn}: expected x (N, {rep_x.size}) for {rep_x.name}, got {tuple(x.shape)}")
    if len(set(rep_x.irreps)) > 1:
        raise ValueError(f"symm.linalg.{fn}: expected an isotypic representation (copies of one irrep), {rep_x.name} "
                         f"has irreps {sorted(set(rep_x.irreps))}")
    d = rep_x.group.irrep(rep_x.irreps[0]).dim if rep_x.irreps else 1
    m = rep_x.size // d
    q = _on(("q", basis_key(rep_x)), lambda: rep_x.change_of_basis, x)
    return (x @ q).view(x.shape[0], m, d).permute(0, 2, 1).reshape(x.shape[0] * d, m)

"""Conversion of symm_learning models (on escnn) into symm modules with the same eval outputs.

An escnn representation becomes ours through its images of the group's generators
(``Representation.from_generators``), expressed in the basis of escnn's own irrep decomposition; the escnn
group becomes ours through the permutations its regular representation gives the generators. Every dense weight of the symm_learning model is moved into our bases
and projected onto Hom_G; a relative residual above ``tol`` means the weight was not equivariant, and the
conversion is refused naming the layer. The time-series modules (eConv1d, eConvTranspose1d, eBatchNorm1d) keep
escnn's channels: their representations map to ours with the same matrices, so no permutation is needed. The
time-series models keep escnn's channels at their inputs and outputs; their hidden regular copies are ours (our
element order), reached through P.
"""
from __future__ import annotations

import copy
import math

import torch

from . import _C, linalg, nn
from ._C import Representation

__all__ = ["from_symm_learning", "group_from_escnn", "rep_from_escnn", "ConversionError"]


class ConversionError(ValueError):
    """A symm_learning model that has no exact counterpart here, or whose weights are not equivariant."""


def _matrix(a) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float64)


class _GroupMap:
    """Our group built from an escnn finite group, with the permutation matrix P that carries escnn's
    regular representation (its basis indexed by escnn's elements) onto ours: P ρ_escnn(g) Pᵀ = ρ(g)."""

    def __init__(self, G):
        self.escnn = G
        self.generators = list(G.generators)
        reg = G.regular_representation
        perms = [_matrix(reg(g)).argmax(dim=0).tolist() for g in self.generators]  # column j holds its image
        self.permutations = perms
        self.group = _C.group_from_permutations(str(G.name), perms)
        self._irreps = {}
        if len(self.group.generators) != len(perms):
            raise ConversionError(f"escnn group {G.name}: repeated or trivial generators")
        # π(escnn index) = our element, from π(σ_s(i)) = s·π(i), starting at π(0) = identity.
        n, pi = G.order(), {0: 0}
        frontier = [0]
        while frontier:
            i = frontier.pop()
            for s, p in zip(self.group.generators, perms):
                j = p[i]
                if j not in pi:
                    pi[j] = self.group.mul(s, pi[i])
                    frontier.append(j)
        self.P = torch.zeros(n, n, dtype=torch.float64)
        for i, a in pi.items():
            self.P[a, i] = 1.0
        ours = Representation.regular(self.group)
        for s, g in zip(self.group.generators, self.generators):
            if not torch.allclose(self.P @ _matrix(reg(g)) @ self.P.T, ours(s), atol=1e-9):
                raise ConversionError(f"escnn group {G.name}: its regular representation is not the left regular action")

    def rep(self, escnn_rep, name="") -> Representation:
        """Ours, with escnn's matrices: through its images of the generators, then in the basis of escnn's
        own irrep decomposition (Q_escnn · blockdiag(Tᵀ) with T intertwining escnn's irrep with ours), so that
        an escnn irrep copy is one of ours and per-copy scales (eAffine) carry over exactly."""
        name = name or str(escnn_rep.name)
        images = [_matrix(escnn_rep(g)) for g in self.generators]
        by_generators = Representation.from_generators(self.group, images, name)
        irreps, blocks = [], []
        for irrep_id in escnn_rep.irreps:
            k, t = self._irrep(escnn_rep.group.irrep(*irrep_id))
            irreps.append(k)
            blocks.append(t.T)
        q = _matrix(escnn_rep.change_of_basis) @ torch.block_diag(*blocks)
        aligned = Representation(self.group, irreps, q, name)
        if not aligned.same(by_generators, 1e-8):
            raise ConversionError(f"representation {name}: escnn's decomposition does not reproduce its matrices")
        return aligned

    def _irrep(self, psi):
        """(our irrep k, orthogonal T) with ψ_k(s) T = T ψ(s) on every generator s."""
        key = psi.id
        if key not in self._irreps:
            images = [_matrix(psi(g)) for g in self.generators]
            d = images[0].shape[0]
            for k, ours in enumerate(self.group.irreps):
                if ours.dim != d:
                    continue
                eye = torch.eye(d, dtype=torch.float64)
                # Row-major vec: vec(ψ_k X − X ψ) = (ψ_k ⊗ I − I ⊗ ψᵀ) vec(X).
                a = torch.cat([torch.kron(ours(s), eye) - torch.kron(eye, img.T.contiguous())
                               for s, img in zip(self.group.generators, images)])
                _, sv, vh = torch.linalg.svd(a)
                if sv[-1] < 1e-8:
                    x = vh[-1].reshape(d, d)
                    x = x / torch.sqrt((x.T @ x)[0, 0])
                    # A 1-dim irrep is its own match: T = +1 keeps escnn's signs of the trivial columns, which
                    # FiLM biases read through a Mish (not odd, so a flipped sign is no rescaling).
                    self._irreps[key] = (k, x.abs() if d == 1 else x)
                    break
            else:
                raise ConversionError(f"escnn irrep {psi.name}: no irrep of {self.group.name} matches it")
        return self._irreps[key]

    def regular_basis(self, copies: int) -> torch.Tensor:
        """blockdiag(P, ..., P): escnn's regular copies → ours."""
        return torch.block_diag(*([self.P] * copies))


def group_from_escnn(G):
    """Our group isomorphic to the escnn finite group G (generated by the same generators)."""
    return _GroupMap(G).group


def rep_from_escnn(escnn_rep, group_map: _GroupMap | None = None) -> Representation:
    """Our representation with the same matrices as an escnn representation of a finite group."""
    return (group_map or _GroupMap(escnn_rep.group)).rep(escnn_rep)


@torch.no_grad()
def _affine_map(module, size, dtype=torch.float64):
    """(W, b) of an affine module x ↦ W x + b (of dtype), read off its values on 0 and the unit vectors."""
    b = module(torch.zeros(1, size, dtype=dtype))[0].double()
    return (module(torch.eye(size, dtype=dtype)).double() - b).T, b


class _Converter:
    def __init__(self, gm: _GroupMap, rep: Representation, tol: float):
        self.gm, self.rep, self.tol = gm, rep, tol

    def check(self, where, got, want, what="weights are not equivariant", onto="Hom_G"):
        scale = want.norm().item()
        residual = (got.double() - want).norm().item() / max(scale, 1e-30)
        if residual > self.tol:
            raise ConversionError(f"{where}: {what} for {self.rep.group.name} "
                                  f"(relative residual of the projection onto {onto} {residual:.2e} > {self.tol:.0e})")

    def linear(self, where, ours: nn.eLinear, w, b):
        ours.set_dense(w.float(), None if b is None else b.float())
        ours.train(False)
        self.check(where + ".weight", ours.weight, w)
        if b is not None:
            got = ours.bias if ours.bias is not None else torch.zeros_like(b)
            self.check(where + ".bias", got, b)

    def copy_scales(self, where, S, what="weights are not equivariant"):
        """The scales α_i of the irrep copies i of our representation with Σ_i α_i Q_i Q_iᵀ = S (checked)."""
        q, dims = self.rep.change_of_basis, [self.rep.group.irreps[k].dim for k in self.rep.irreps]
        alphas, columns, o = [], [], 0
        for d in dims:
            qc = q[:, o:o + d]
            alphas.append(torch.trace(qc.T @ S @ qc).item() / d)
            columns.append(qc)
            o += d
        self.check(where, sum(a * qc @ qc.T for a, qc in zip(alphas, columns)), S, what, "the scalings of irrep copies")
        return torch.tensor(alphas, dtype=torch.float64)

    def affine(self, where, ours, S, b):
        """Sets our eAffine to y = S x (+ b) where S scales whole irrep copies of our representation and b lies in
        Fix(ρ) (where our eAffine has a bias)."""
        with torch.no_grad():
            ours.scale_dof.copy_(self.copy_scales(where, S))
        if ours.bias_dof is not None:
            fix = ours._masters["_fix"]
            with torch.no_grad():
                ours.bias_dof.copy_(fix.T @ b)
            self.check(where + ".bias", fix @ (fix.T @ b), b, "the bias is not invariant", "Fix(ρ)")
        elif b is not None and b.abs().max() > 0:
            raise ConversionError(f"{where}: an affine bias after RMS normalisation has no counterpart here")

    def norm(self, where, theirs, ours, fold: bool):
        """Our eRMSNorm from theirs. With fold, our affine becomes the identity and theirs, (S, b), is
        returned to be folded into the map that follows; otherwise our affine takes it over."""
        if type(theirs).__name__ != "eRMSNorm":
            raise ConversionError(f"{where}: {type(theirs).__name__} has no exact counterpart here (symm_learning's "
                                  "eLayerNorm normalises each irrep separately); use norm_module='rmsnorm'")
        if not math.isclose(theirs.eps, ours.eps, rel_tol=1e-9):
            raise ConversionError(f"{where}: eps {theirs.eps} differs from ours {ours.eps}")
        D = self.rep.size
        affine = getattr(theirs, "affine", None)
        if affine is not None:
            S, b = _affine_map(affine, D)
        else:
            S, b = torch.eye(D, dtype=torch.float64), torch.zeros(D, dtype=torch.float64)
        ours_affine = ours.affine
        if fold:
            if ours_affine is not None:
                with torch.no_grad():
                    ours_affine.scale_dof.fill_(1.0)
            return S, b
        if ours_affine is None:
            self.check(where, torch.eye(D, dtype=torch.float64), S)
        else:
            self.affine(where + ".affine", ours_affine, S, b)
        return None

    def layer(self, where, theirs, ours):
        attn, D = theirs.self_attn, self.rep.size
        if not (isinstance(attn, torch.nn.MultiheadAttention) and hasattr(attn, "in_proj_weight")):
            raise ConversionError(f"{where}.self_attn: {type(attn).__name__} has no exact counterpart here; "
                                  "symm_learning's eMultiheadAttention converts")
        m = D // self.rep.group.order
        fold = bool(theirs.norm_first)
        n1 = self.norm(where + ".norm1", theirs.norm1, ours.norm1, fold)
        n2 = self.norm(where + ".norm2", theirs.norm2, ours.norm2, fold)

        w_in = attn.in_proj_weight.double()
        b_in = attn.in_proj_bias.double() if attn.in_proj_bias is not None else torch.zeros(3 * D, dtype=torch.float64)
        if n1 is not None:
            S, b = n1
            w_in, b_in = w_in @ S, b_in + w_in @ b
        P3 = self.gm.regular_basis(3 * m)
        self.linear(where + ".self_attn.in_proj", ours.self_attn.in_proj, P3 @ w_in,
                    P3 @ b_in if attn.in_proj_bias is not None else None)
        w_out, b_out = _affine_map(attn.out_proj, D)
        self.linear(where + ".self_attn.out_proj", ours.self_attn.out_proj, w_out @ self.gm.regular_basis(m).T, b_out)

        w1, b1 = _affine_map(theirs.linear1, D)
        if n2 is not None:
            S, b = n2
            w1, b1 = w1 @ S, b1 + w1 @ b
        hidden = w1.shape[0] // self.rep.group.order
        Ph = self.gm.regular_basis(hidden)
        bias = getattr(theirs.linear1, "bias", None) is not None
        self.linear(where + ".linear1", ours.feedforward.linear1, Ph @ w1, Ph @ b1 if bias else None)
        w2, b2 = _affine_map(theirs.linear2, w1.shape[0])
        self.linear(where + ".linear2", ours.feedforward.linear2, w2 @ Ph.T, b2 if bias else None)


ACTIVATIONS = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "gelu_tanh": lambda: torch.nn.GELU("tanh"),
               "silu": torch.nn.SiLU, "tanh": torch.nn.Tanh, "mish": torch.nn.Mish}


def activation_name(activation) -> str | None:
    """The name (a key of ACTIVATIONS) of a parameter-free torch activation module; None for any other."""
    if isinstance(activation, torch.nn.GELU):
        return "gelu_tanh" if activation.approximate == "tanh" else "gelu"
    for name, cls in (("relu", torch.nn.ReLU), ("silu", torch.nn.SiLU), ("tanh", torch.nn.Tanh), ("mish", torch.nn.Mish)):
        if type(activation) is cls:
            return name
    return None


def _layer_options(where, theirs, rep):
    attn = theirs.self_attn
    if rep.regular_copies is None:
        raise ConversionError(f"{where}: in_rep is not isomorphic to copies of the regular representation")
    bias = getattr(theirs.linear1, "bias", None) is not None
    return dict(dim_feedforward=theirs.hidden_dim, dropout=theirs.dropout.p, layer_norm_eps=theirs.norm1.eps,
                norm_first=bool(theirs.norm_first), norm_module="rmsnorm", bias=bias), \
        dict(num_heads=attn.num_heads, dropout=float(attn.dropout), bias=attn.in_proj_bias is not None)


def _our_layer(where, theirs, rep):
    if type(theirs).__name__ != "eTransformerEncoderLayer":
        raise ConversionError(f"{where}: expected symm_learning's eTransformerEncoderLayer, got {type(theirs).__name__}")
    opts, attn_opts = _layer_options(where, theirs, rep)
    try:
        # Their activation module itself (any pointwise one); the layer refuses one that is not equivariant.
        layer = nn.eTransformerEncoderLayer(rep, nn.eMultiheadAttention(rep, **attn_opts),
                                            activation=copy.deepcopy(theirs.activation).float(), **opts)
    except (ValueError, RuntimeError) as e:
        raise ConversionError(f"{where}: {e}") from e
    return layer, {**opts, "activation": activation_name(theirs.activation)}, attn_opts


def _single(value):
    """torch's 1-tuple convolution options as an int (padding may be 'same' or 'valid')."""
    return value[0] if isinstance(value, tuple) else value


def _conv(where, theirs, tol):
    transposed = type(theirs).__name__ == "eConvTranspose1d"
    gm = _GroupMap(theirs.in_rep.group)
    in_rep, out_rep = gm.rep(theirs.in_rep), gm.rep(theirs.out_rep)
    options = dict(stride=_single(theirs.stride), padding=_single(theirs.padding), dilation=_single(theirs.dilation),
                   groups=theirs.groups, bias=theirs.has_bias, padding_mode=theirs.padding_mode)
    if transposed:
        options["output_padding"] = _single(theirs.output_padding)
    try:
        ours = (nn.eConvTranspose1d if transposed else nn.eConv1d)(in_rep, out_rep, _single(theirs.kernel_size),
                                                                   **options)
    except ValueError as e:
        raise ConversionError(f"{where}: {e}") from e
    _set_conv(where, theirs, ours, _Converter(gm, in_rep, tol))
    return ours.eval()


def _set_conv(where, theirs, ours, conv, b_in=None, b_out=None):
    """Our eConv1d / eConvTranspose1d from theirs, whose channels b_in, b_out (orthogonal, ours ← theirs; None:
    the same channels) carry to ours."""
    transposed = type(ours).__name__ == "eConvTranspose1d"
    w = theirs.weight.detach().double()  # Conv1d: (C_out, C_in, K); ConvTranspose1d: (C_in, C_out, K)
    left, right = (b_in, b_out) if transposed else (b_out, b_in)
    if left is not None:
        w = torch.einsum("ij,jkt->ikt", left, w)
    if right is not None:
        w = torch.einsum("kj,ijt->ikt", right, w)
    bias = theirs.bias.detach().double() if theirs.has_bias else None
    if bias is not None and b_out is not None:
        bias = b_out @ bias
    ours.set_taps(w.permute(2, 1, 0) if transposed else w.permute(2, 0, 1), bias)
    conv.check(where + ".weight", ours.weight, w)
    if bias is not None:
        conv.check(where + ".bias", ours.bias, bias, "the bias is not invariant", "Fix(ρ_out)")


def _batchnorm(where, theirs, tol):
    """Theirs normalises each channel (in the original basis) by its running variance, ours each irrep copy (in
    the spectral basis): equal where that diagonal scaling is one scale per irrep copy, as for regular copies."""
    if not theirs.track_running_stats:
        raise ConversionError(f"{where}: track_running_stats=False normalises by the batch's unbiased per-channel "
                              "variance in eval; ours by its biased per-irrep-copy variance, so there is no exact "
                              "counterpart")
    gm = _GroupMap(theirs.in_rep.group)
    rep = gm.rep(theirs.in_rep)
    ours = nn.eBatchNorm1d(rep, eps=theirs.eps, momentum=theirs.momentum, affine=bool(theirs.affine))
    conv = _Converter(gm, rep, tol)
    mean, var = theirs.running_mean.detach().double(), theirs.running_var.detach().double()
    fix = rep.invariant_basis
    conv.check(where + ".running_mean", fix @ (fix.T @ mean), mean, "the running mean is not invariant", "Fix(ρ)")
    alphas = conv.copy_scales(where + ".running_var", torch.diag(torch.rsqrt(var + theirs.eps)),
                              "the per-channel variances are not one per irrep copy of the representation")
    with torch.no_grad():
        ours.running_mean.copy_(fix @ (fix.T @ mean))
        ours.running_var.copy_(alphas.pow(-2) - theirs.eps)
        ours.num_batches_tracked.fill_(int(theirs.num_batches_tracked))
    if theirs.affine:
        dtype = theirs.running_var.dtype
        conv.affine(where + ".affine_transform", ours.affine, *_affine_map(theirs.affine_transform, rep.size, dtype))
    return ours.eval()


def _escnn_regular(gm: _GroupMap) -> Representation:
    """The regular representation in our element order (our matrices) with escnn's irrep decomposition."""
    aligned = gm.rep(gm.escnn.regular_representation, "regular (escnn decomposition)")
    return Representation(gm.group, aligned.irreps, gm.P @ aligned.change_of_basis, aligned.name)


def _hidden_rep(gm: _GroupMap) -> Representation | None:
    """The hidden_rep of a converted model. Ours build their hidden regular copies in our irrep decomposition;
    symm_learning's norms, FiLM and poolings scale or read the irrep copies of escnn's, which span other subspaces
    where an irrep repeats (the 2-dim irreps of a dihedral group). So the model takes escnn's decomposition (the
    same matrices, so the same Hom_G, activations and Fix(ρ), with the copies in escnn's order), or None where it
    is ours (as on C2), so that the model and its checkpoint are those of a model built without one."""
    reg = _escnn_regular(gm)
    return None if nn.mlp.is_our_decomposition(reg) else reg


def _built(where, make):
    try:
        return make()
    except (ValueError, RuntimeError) as e:
        raise ConversionError(f"{where}: {e}") from e


def _dtype(module):
    p = next(iter(module.parameters()), None)
    return torch.get_default_dtype() if p is None else p.dtype


def _set_linear(where, theirs, ours, conv, b_in, b_out):
    """Our eLinear from symm_learning's eLinear (their channels b_in → b_out carried to ours)."""
    w, b = _affine_map(theirs, theirs.in_rep.size, _dtype(theirs))
    bias = getattr(theirs, "bias", None) is not None
    conv.linear(where, ours, b_out @ w @ b_in.T, b_out @ b if bias else None)


def _set_torch(where, theirs, ours):
    """A plain torch module (a Linear of a head or an encoder): the same parameters."""
    try:
        ours.load_state_dict(theirs.state_dict())
    except RuntimeError as e:
        raise ConversionError(f"{where}: {e}") from e


def _set_rms(where, theirs, ours, conv, b):
    """Our eRMSNorm from their eRMSNorm (or _eChannelRMSNorm holding one) on channels b (ours ← theirs)."""
    theirs = getattr(theirs, "norm", theirs)
    if (ours is None) != (theirs is None):
        raise ConversionError(f"{where}: normalisation present in one model only")
    if ours is None:
        return
    if not math.isclose(theirs.eps, ours.eps, rel_tol=1e-9):
        raise ConversionError(f"{where}: eps {theirs.eps} differs from ours {ours.eps}")
    D = ours.in_rep.size
    affine = getattr(theirs, "affine", None)
    if affine is None:
        S, t = torch.eye(D, dtype=torch.float64), torch.zeros(D, dtype=torch.float64)
    else:
        S, t = _affine_map(affine, D, _dtype(affine))
    if ours.affine is None:
        conv.check(where, torch.eye(D, dtype=torch.float64), b @ S @ b.T)
    else:
        _Converter(conv.gm, ours.in_rep, conv.tol).affine(where + ".affine", ours.affine, b @ S @ b.T, b @ t)


def _set_block(where, theirs, ours, conv, b_in, b_out):
    """Our eConditionalResidualBlock1D from theirs. The FiLM eAffines have no weights; they must scale the same
    irrep copies and add the same invariant directions, checked on random scales and biases."""
    _set_conv(where + ".conv1", theirs.conv1, ours.conv1, conv, b_in, b_out)
    _set_conv(where + ".conv2", theirs.conv2, ours.conv2, conv, b_out, b_out)
    for n in ("norm1", "norm2"):
        t = getattr(theirs, n)
        _set_rms(f"{where}.{n}", None if isinstance(t, torch.nn.Identity) else t, getattr(ours, n), conv, b_out)
    t_aff, o_aff = theirs.affine, ours.affine
    if (t_aff.num_scale_dof, t_aff.num_bias_dof) != (o_aff.num_copies, o_aff.num_fix):
        raise ConversionError(f"{where}.affine: {t_aff.num_scale_dof} scales and {t_aff.num_bias_dof} biases, ours "
                              f"{o_aff.num_copies} and {o_aff.num_fix}")
    with torch.no_grad():
        dt = t_aff.Q.dtype
        x, s, c = torch.randn(3, b_out.shape[0], dtype=dt), torch.rand(3, o_aff.num_copies, dtype=dt) + 0.5, \
            torch.randn(3, o_aff.num_fix, dtype=dt)
        want = t_aff(x, scale_dof=s, bias_dof=c).double() @ b_out.T
        got = o_aff.double()(x.double() @ b_out.T, s.double(), c.double() if o_aff.num_fix else None)
        o_aff.to(dt)
    conv.check(where + ".affine", got, want, "the FiLM scales other irrep copies or adds other biases",
               "the scalings of irrep copies")
    if len(theirs.cond_rep.irreps) != ours.cond_encoder[0].num_copies:
        raise ConversionError(f"{where}.cond_encoder: cond_rep has {len(theirs.cond_rep.irreps)} irrep copies, ours "
                              f"{ours.cond_encoder[0].num_copies}")
    _set_torch(where + ".cond_encoder.1", theirs.cond_encoder[1], ours.cond_encoder[1])
    residual = None if isinstance(theirs.residual_conv, torch.nn.Identity) else theirs.residual_conv
    if residual is not None:
        if ours.residual_conv is None:
            raise ConversionError(f"{where}.residual_conv: a 1x1 convolution where ours adds the input itself")
        _set_conv(where + ".residual_conv", residual, ours.residual_conv, conv, b_in, b_out)
    elif ours.residual_conv is not None:
        # Theirs adds its input itself, ours maps it into the hidden copies' element order: b_out·b_inᵀ (a
        # permutation, in Hom_G since both bases carry theirs to ours).
        if b_in.shape != b_out.shape:
            raise ConversionError(f"{where}.residual_conv: theirs adds its input to an output of another size")
        ours.residual_conv.set_taps((b_out @ b_in.T).unsqueeze(0), torch.zeros(b_out.shape[0], dtype=torch.float64))
        conv.check(where + ".residual_conv.weight", ours.residual_conv.weight[..., 0], b_out @ b_in.T)


def _nonnegative(where, activation):
    """Our iMLP keeps the trivial irrep copies signed where symm_learning takes their norm: equal for an activation
    with nonnegative values (the trivial coordinate of a regular copy is its mean)."""
    with torch.no_grad():
        t = torch.linspace(-20, 20, 4001)
        if activation(t).min() < 0:
            raise ConversionError(f"{where}: an invariant head after {type(activation).__name__}, which takes negative "
                                  "values: symm_learning pools the trivial copies by their absolute value, ours signed")


def _time_cnn(where, theirs, tol):
    gm = _GroupMap(theirs.in_rep.group)
    in_rep, out_rep, n = gm.rep(theirs.in_rep), gm.rep(theirs.out_rep), gm.group.order
    convs, norms, acts = [], [], []
    for i, m in enumerate(theirs.feature_layers):
        kind = type(m).__name__
        if kind == "eConv1d":
            convs.append((i, m))
        elif kind == "_eChannelRMSNorm":
            norms.append((i, m))
        elif not isinstance(m, torch.nn.MaxPool1d):
            acts.append(m)
    # symm_learning shares one activation module between the blocks and the head.
    activation = copy.deepcopy(acts[0])
    head = theirs.head
    invariant = type(head).__name__ == "iMLP"
    t_linears = [m for m in (head.emlp_backbone if invariant else head).net if type(m).__name__ == "eLinear"]
    widths = [m.out_rep.size for m in t_linears]
    # Their iMLP's backbone ends on its own copy of the last hidden width; ours reads it from mlp_hidden's last.
    hidden = widths if invariant else widths[:-1]
    if invariant:
        _nonnegative(where + ".head", activation)
    ours = _built(where, lambda: nn.eTimeCNNEncoder(
        in_rep, out_rep, [m.out_rep.size for _, m in convs], theirs.time_horizon, activation=activation,
        batch_norm=bool(norms), bias=convs[0][1].bias is not None, mlp_hidden=hidden, downsample=theirs.downsample,
        append_last_frame=theirs.append_last_frame, hidden_rep=_hidden_rep(gm)))
    conv = _Converter(gm, in_rep, tol)
    # Channels, ours ← theirs: the input and output as given; hidden regular copies permuted into our elements.
    blocks = [torch.eye(in_rep.size, dtype=torch.float64)] + [gm.regular_basis(m.out_rep.size // n) for _, m in convs]
    for k, (i, m) in enumerate(convs):
        _set_conv(f"{where}.feature_layers.{i}", m, ours.convs[k], conv, blocks[k], blocks[k + 1])
    for k, (i, m) in enumerate(norms):
        _set_rms(f"{where}.feature_layers.{i}", m, ours.norms[k], conv, blocks[k + 1])
    b_head = torch.block_diag(*[blocks[-1]] * ours.time_horizon_out, *([blocks[0]] if theirs.append_last_frame else []))
    chain = [b_head] + [gm.regular_basis(w // n) for w in widths[:-1]]
    chain.append(gm.regular_basis(widths[-1] // n) if invariant else torch.eye(out_rep.size, dtype=torch.float64))
    o_linears = ours.head.backbone.layers if invariant else ours.head.layers
    if len(o_linears) != len(t_linears):
        raise ConversionError(f"{where}.head: {len(t_linears)} eLinear layers, ours {len(o_linears)}")
    for k, (t, o) in enumerate(zip(t_linears, o_linears)):
        _set_linear(f"{where}.head.layers.{k}", t, o, conv, chain[k], chain[k + 1])
    if invariant:
        _set_torch(where + ".head.head", head.head, ours.head.head)
    return ours.eval()


def _unet(where, theirs, tol):
    levels = len(theirs.down_modules)
    if levels != 1:
        raise ConversionError(f"{where}: symm_learning 0.8.1's decoder with {levels} levels drops its last "
                              "up-sampling (the output has half the horizon, or the skips do not concatenate); ours "
                              "returns the horizon, so only one level has a counterpart here")
    if theirs.local_cond_encoder is not None:
        raise ConversionError(f"{where}.local_cond_encoder: with one level symm_learning never adds its second "
                              "local-condition block (its decoder has no stage); ours adds it after the decoder")
    gm = _GroupMap(theirs.in_rep.group)
    in_rep = gm.rep(theirs.in_rep)
    global_rep = None if theirs.global_cond_rep is None else gm.rep(theirs.global_cond_rep)
    first, second, _ = theirs.down_modules[0]
    final = theirs.final_conv
    steps = theirs.diffusion_step_encoder
    ours = _built(where, lambda: nn.eConditionalUnet1D(
        in_rep, None, global_rep, diffusion_step_embed_dim=steps[0].dim, down_dims=[first.out_rep.size],
        kernel_size=_single(first.conv1.kernel_size), cond_predict_scale=True, activation=copy.deepcopy(final[2]),
        normalize=not isinstance(final[1], torch.nn.Identity), downsample=theirs.downsample,
        hidden_rep=_hidden_rep(gm)))
    conv = _Converter(gm, in_rep, tol)
    b_in = torch.eye(in_rep.size, dtype=torch.float64)
    b_1 = gm.regular_basis(first.out_rep.size // gm.group.order)
    for k in (1, 3):
        _set_torch(f"{where}.diffusion_step_encoder.{k}", steps[k], ours.diffusion_step_encoder[k])
    _set_block(where + ".down_modules.0.0", first, ours.down_modules[0][0], conv, b_in, b_1)
    _set_block(where + ".down_modules.0.1", second, ours.down_modules[0][1], conv, b_1, b_1)
    for k in range(2):
        _set_block(f"{where}.mid_modules.{k}", theirs.mid_modules[k], ours.mid_modules[k], conv, b_1, b_1)
    _set_conv(where + ".final_conv.0", final[0], ours.final_conv, conv, b_1, b_1)
    _set_rms(where + ".final_conv.1", None if isinstance(final[1], torch.nn.Identity) else final[1], ours.final_norm,
             conv, b_1)
    _set_conv(where + ".final_conv.3", final[3], ours.final_proj, conv, b_1, b_in)
    return ours.eval()


def _pooling(where, theirs, tol):
    # On escnn's decomposition, ours takes the norms of the same irrep copies in the same order.
    return nn.IrrepSubspaceNormPooling(_GroupMap(theirs.in_rep.group).rep(theirs.in_rep)).eval()


def _disentangled(where, theirs, tol):
    """Theirs writes the isotypic coordinates in escnn's irreps (and escnn's order of them), ours in ours: ours is
    built on escnn's decomposition, then takes their map M and out_rep (escnn's matrices), checked to intertwine."""
    gm = _GroupMap(theirs.in_rep.group)
    in_rep, out_rep = gm.rep(theirs.in_rep), gm.rep(theirs.out_rep)
    learnable = bool(theirs._learnable)
    ours = nn.Change2DisentangledBasis(in_rep, learnable=learnable)
    m = (theirs.Qin2iso.weight if learnable else theirs.Qin2iso).detach().double()
    # M intertwines: out_rep(g) M = M in_rep(g) on the generators, and is orthogonal.
    conv = _Converter(gm, in_rep, tol)
    for s in gm.group.generators:
        conv.check(where + ".Qin2iso", out_rep(s) @ m, m @ in_rep(s), "the change of basis does not intertwine in_rep "
                   "with out_rep", "Hom_G")
    conv.check(where + ".Qin2iso", m @ m.T, torch.eye(m.shape[0], dtype=torch.float64),
               "the change of basis is not orthogonal", "O(D)")
    ours.out_rep, ours.identity = out_rep, bool(theirs._is_in_iso_basis)
    ours._masters["_m"] = m
    ours.reset_parameters()
    if learnable:
        with torch.no_grad():
            ours.linear.weight.copy_(theirs.Qin2iso.weight)
    return ours.eval()


def _normal(where, theirs, tol):
    """Theirs takes the covariance diag(Q⊙Q·v), ours Q diag(v) Qᵀ: the same where every irrep copy's projector
    Q_i Q_iᵀ is diagonal (irreps in their own coordinates), otherwise theirs is not equivariant and is refused."""
    gm = _GroupMap(theirs.out_rep.group)
    out_rep = gm.rep(theirs.out_rep)
    q = _matrix(theirs.out_rep.change_of_basis)
    dims = [theirs.out_rep.group.irrep(*i).size for i in theirs.out_rep.irreps]
    o = 0
    for i, d in enumerate(dims):
        p = q[:, o:o + d] @ q[:, o:o + d].T
        _Converter(gm, out_rep, tol).check(f"{where}.Q2_T", torch.diag(torch.diagonal(p)), p,
                                           f"the covariance of irrep copy {i} is not equivariant", "the diagonal")
        o += d
    return nn.eMultivariateNormal(out_rep, diagonal=theirs.diagonal).eval()


def _ema(where, theirs, tol):
    """The running statistics; theirs' equivariant covariances (dense) move onto our Hom_G coefficients."""
    opts = dict(momentum=theirs.momentum, eps=theirs.eps, center_with_running_mean=theirs.center_with_running_mean)
    names = ("num_batches_tracked", "running_mean_x", "running_mean_y")
    if type(theirs).__name__ == "EMAStats":
        ours = nn.EMAStats(theirs.num_features_x, theirs.num_features_y, dtype=theirs.running_mean_x.dtype, **opts)
        names += ("running_cov_xx", "running_cov_yy", "running_cov_xy")
    else:
        gm = _GroupMap(theirs.x_rep.group)
        x_rep, y_rep = gm.rep(theirs.x_rep), gm.rep(theirs.y_rep)
        ours = nn.eEMAStats(x_rep, y_rep, dtype=theirs.running_mean_x.dtype, **opts)
        conv = _Converter(gm, x_rep, tol)
        fix_x, fix_y = x_rep.invariant_basis, y_rep.invariant_basis
        for n, fix in (("running_mean_x", fix_x), ("running_mean_y", fix_y)):
            mean = getattr(theirs, n).detach().double()
            conv.check(f"{where}.{n}", fix @ (fix.T @ mean), mean, "the running mean is not invariant", "Fix(ρ)")
        with torch.no_grad():
            for n, a, b in (("cov_xx", x_rep, x_rep), ("cov_yy", y_rep, y_rep), ("cov_xy", y_rep, x_rep)):
                dense = getattr(theirs, n).detach().double()
                dof = linalg.equiv_orthogonal_projection_coefficients(dense, a, b)
                getattr(ours, "running_" + n + "_dof").copy_(dof)
                conv.check(f"{where}.{n}", linalg.equiv_linear_map(dof, a, b), dense)
    with torch.no_grad():
        for n in names:
            getattr(ours, n).copy_(getattr(theirs, n).detach())
    return ours.train(theirs.training)


def _unet_inputs(m):
    film = None if m.global_cond_rep is None else torch.randn(4, m.global_cond_rep.size)
    return torch.randn(4, m.in_rep.size, 8), torch.tensor([3, 17, 40, 99]), None, film


def _ema_inputs(m):
    x = getattr(m, "x_rep", None)
    dx, dy = (m.num_features_x, m.num_features_y) if x is None else (m.x_rep.size, m.y_rep.size)
    return torch.randn(16, dx), torch.randn(16, dy)


def _plain_unet(where, theirs, tol):
    """symm_learning's unconstrained diffusion U-Net and its parts (torch modules with our keys): rebuilt from
    their layers' shapes, the same parameters."""
    kind = type(theirs).__name__
    if kind in ("Downsample1d", "Upsample1d"):
        ours = getattr(nn, kind)(theirs.conv.in_channels)
    elif kind == "Conv1dBlock":
        conv, norm = theirs.block[0], theirs.block[1]
        ours = nn.Conv1dBlock(conv.in_channels, conv.out_channels, _single(conv.kernel_size), norm.num_groups)
    elif kind == "ConditionalResidualBlock1D":
        conv, norm = theirs.blocks[0].block[0], theirs.blocks[0].block[1]
        ours = _built(where, lambda: nn.ConditionalResidualBlock1D(
            conv.in_channels, theirs.out_channels, theirs.cond_encoder[0].in_features, _single(conv.kernel_size),
            norm.num_groups, theirs.cond_predict_scale))
    else:
        first = theirs.down_modules[0][0]
        conv, norm = first.blocks[0].block[0], first.blocks[0].block[1]
        embed = theirs.diffusion_step_encoder[0].dim
        global_dim = first.cond_encoder[0].in_features - embed
        ours = _built(where, lambda: nn.ConditionalUnet1D(
            theirs.input_dim, theirs.local_cond_dim, global_dim or None, embed,
            [m[0].out_channels for m in theirs.down_modules], _single(conv.kernel_size), norm.num_groups,
            first.cond_predict_scale))
    _set_torch(where, theirs, ours)
    return ours.eval()


def _plain_unet_inputs(m):
    kind = type(m).__name__
    if kind in ("Downsample1d", "Upsample1d"):
        return (torch.randn(4, m.conv.in_channels, 16),)
    if kind == "Conv1dBlock":
        return (torch.randn(4, m.block[0].in_channels, 16),)
    if kind == "ConditionalResidualBlock1D":
        return torch.randn(4, m.blocks[0].block[0].in_channels, 16), torch.randn(4, m.cond_encoder[0].in_features)
    first = m.down_modules[0][0]
    global_dim = first.cond_encoder[0].in_features - m.diffusion_step_encoder[0].dim
    local = None if m.local_cond_dim is None else torch.randn(4, m.local_cond_dim)
    return (torch.randn(4, m.input_dim, 4 << (len(m.down_modules) - 1)), torch.tensor([3, 17, 40, 99]), local,
            torch.randn(4, global_dim) if global_dim else None)


# symm_learning's modules other than the Transformer's: their converter and the inputs (batch 4) the check compares
# on. They are read as they are (in their dtype), not deep-copied: symm_learning's eBatchNorm1d caches non-leaf
# tensors that deepcopy refuses.
# symm_learning's eBatchNorm1d takes (..., D) and ours (B, D) or (B, D, T), so it is compared on (B, D).
_TIME_MODULES = {"eConv1d": (_conv, lambda m: (torch.randn(4, m.in_rep.size, 16),)),
                 "eConvTranspose1d": (_conv, lambda m: (torch.randn(4, m.in_rep.size, 16),)),
                 "eBatchNorm1d": (_batchnorm, lambda m: (torch.randn(4, m.in_rep.size),)),
                 "eTimeCNNEncoder": (_time_cnn, lambda m: (torch.randn(4, m.in_rep.size, m.time_horizon),)),
                 "eConditionalUnet1D": (_unet, _unet_inputs),
                 "IrrepSubspaceNormPooling": (_pooling, lambda m: (torch.randn(4, 3, m.in_rep.size),)),
                 "Change2DisentangledBasis": (_disentangled, lambda m: (torch.randn(4, 3, m.in_rep.size),)),
                 "eMultivariateNormal": (_normal, lambda m: (torch.randn(4, m.in_rep.size),)),
                 "EMAStats": (_ema, _ema_inputs),
                 "eEMAStats": (_ema, _ema_inputs),
                 **{k: (_plain_unet, _plain_unet_inputs) for k in ("ConditionalUnet1D", "ConditionalResidualBlock1D",
                                                                    "Conv1dBlock", "Downsample1d", "Upsample1d")}}


def from_symm_learning(module, tol: float = 1e-4, check: bool = True):
    """Our eTransformerEncoderLayer (or eTransformerEncoder) with the same eval outputs as a symm_learning
    eTransformerEncoderLayer, or a stack of them (any module with ``layers`` and an optional ``norm``, such as
    symm_learning's TransformerEncoder or torch.nn.TransformerEncoder); our eConv1d, eConvTranspose1d or
    eBatchNorm1d for symm_learning's (in eval mode, from its running statistics); our eTimeCNNEncoder,
    eConditionalUnet1D (one level: symm_learning 0.8.1's decoder does not return the horizon with more),
    IrrepSubspaceNormPooling, Change2DisentangledBasis, eMultivariateNormal (where symm_learning's covariance is
    equivariant), EMAStats or eEMAStats (with their statistics) for symm_learning's; and its unconstrained
    ConditionalUnet1D and parts (ConditionalResidualBlock1D, Conv1dBlock, Downsample1d, Upsample1d). Raises ConversionError naming
    the layer when a weight is not equivariant or a part has no exact counterpart here. With ``check``, the two
    models are compared on a random input in eval mode (float32) and a relative difference above 1e-5 is an
    error.

    The hidden regular copies of a converted eTimeCNNEncoder or eConditionalUnet1D take escnn's irrep
    decomposition (their ``hidden_rep``, see _hidden_rep), and the out_rep of a Change2DisentangledBasis escnn's
    irreps. Where that decomposition is not ours (all but C2 here), the C++ twin (symm.checkpoint.cpp_twin) is
    built with the same hidden_rep, and the checkpoint names the decomposition: it loads, in C++ or Python, into a
    model built with the same hidden_rep only."""
    kind = type(module).__name__
    if kind in _TIME_MODULES and type(module).__module__.startswith("symm_learning."):
        make, inputs = _TIME_MODULES[kind]
        ours = make(kind, module, tol)
        if check:
            _check_outputs(module, ours, *inputs(module))
        return ours
    theirs = copy.deepcopy(module).double().eval()
    layers = list(theirs.layers) if hasattr(theirs, "layers") else [theirs]
    if not layers:
        raise ConversionError("the model has no layers")
    gm = _GroupMap(layers[0].in_rep.group)
    rep = gm.rep(layers[0].in_rep)
    conv = _Converter(gm, rep, tol)
    ours_norm = None
    if hasattr(theirs, "layers"):
        final = getattr(theirs, "norm", None)
        if final is not None:
            ours_norm = nn.eRMSNorm(rep, eps=getattr(final, "eps", 1e-5), equiv_affine=getattr(final, "affine", None) is not None)
        layer, opts, attn_opts = _our_layer("layers.0", layers[0], rep)
        ours = nn.eTransformerEncoder(layer, len(layers), norm=ours_norm)
        for i, (t, o) in enumerate(zip(layers, ours.layers)):
            if not torch.allclose(_matrix(t.in_rep.change_of_basis), _matrix(layers[0].in_rep.change_of_basis)):
                raise ConversionError(f"layers.{i}: in_rep differs from layers.0")
            conv.layer(f"layers.{i}", t, o)
        if final is not None:
            conv.norm("norm", final, ours.norm, fold=False)
    else:
        ours, opts, attn_opts = _our_layer("layer", theirs, rep)
        conv.layer("layer", theirs, ours)
    ours.eval()
    # What rebuilds the architecture (symm.convert writes it beside the checkpoint).
    ours.conversion_spec = {
        "group": {"name": rep.group.name, "permutations": gm.permutations},
        "in_rep": {"irreps": rep.irreps, "change_of_basis": rep.change_of_basis.tolist()},
        "layer": opts, "attention": attn_opts,
        "num_layers": len(layers) if hasattr(theirs, "layers") else None,
        "final_norm": None if ours_norm is None else {"eps": ours_norm.eps, "equiv_affine": ours_norm.affine is not None},
    }
    if check:
        _check_outputs(module, ours, torch.randn(2, 7, rep.size))
    return ours


def _values(module, out):
    """What a model's eval forward gives, as one tensor: a distribution's mean and covariance; for running
    statistics (whose forward passes the data through) the statistics."""
    if isinstance(out, torch.distributions.MultivariateNormal):
        return torch.cat([out.mean.flatten(), out.covariance_matrix.flatten()])
    if type(module).__name__ in ("EMAStats", "eEMAStats"):
        return torch.cat([t.detach().flatten() for t in (module.mean_x, module.mean_y, module.cov_xx, module.cov_yy,
                                                           module.cov_xy)])
    return out


def _check_outputs(module, ours, *x):
    module_was_training, ours_was_training = module.training, ours.training
    module.eval()
    ours.eval()
    with torch.no_grad():
        want, got = _values(module, module(*x)), _values(ours, ours(*x))
    module.train(module_was_training)
    ours.train(ours_was_training)
    err = ((got.double() - want.double()).abs().max() / want.abs().max()).item()
    if err > 1e-5:
        raise ConversionError(f"converted model differs from the symm_learning model by {err:.2e} (relative, float32)")

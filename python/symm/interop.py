"""Conversion of symm_learning models (on escnn) into symm modules with the same eval outputs.

An escnn representation becomes ours through its images of the group's generators
(``Representation.from_generators``), expressed in the basis of escnn's own irrep decomposition; the escnn
group becomes ours through the permutations its regular representation gives the generators. Every dense weight of the symm_learning model is moved into our bases
and projected onto Hom_G; a relative residual above ``tol`` means the weight was not equivariant, and the
conversion is refused naming the layer. The time-series modules (eConv1d, eConvTranspose1d, eBatchNorm1d) keep
escnn's channels: their representations map to ours with the same matrices, so no permutation is needed.
"""
from __future__ import annotations

import copy
import math

import torch

from . import _C, nn
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
                    self._irreps[key] = (k, x / torch.sqrt((x.T @ x)[0, 0]))
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
    w = theirs.weight.detach().double()  # Conv1d: (C_out, C_in, K); ConvTranspose1d: (C_in, C_out, K)
    ours.set_taps(w.permute(2, 1, 0) if transposed else w.permute(2, 0, 1), theirs.bias)
    ours.eval()
    conv = _Converter(gm, in_rep, tol)
    conv.check(where + ".weight", ours.weight, w)
    if theirs.has_bias:
        conv.check(where + ".bias", ours.bias, theirs.bias.detach().double(), "the bias is not invariant", "Fix(ρ_out)")
    return ours


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


# symm_learning's time-series modules: their converter and the input shape (batch 4) the check compares on. They
# are read as they are (in their dtype), not deep-copied: symm_learning's eBatchNorm1d caches non-leaf tensors
# that deepcopy refuses.
# symm_learning's eBatchNorm1d takes (..., D) and ours (B, D) or (B, D, T), so it is compared on (B, D).
_TIME_MODULES = {"eConv1d": (_conv, lambda m: (4, m.in_rep.size, 16)),
                 "eConvTranspose1d": (_conv, lambda m: (4, m.in_rep.size, 16)),
                 "eBatchNorm1d": (_batchnorm, lambda m: (4, m.in_rep.size))}


def from_symm_learning(module, tol: float = 1e-4, check: bool = True):
    """Our eTransformerEncoderLayer (or eTransformerEncoder) with the same eval outputs as a symm_learning
    eTransformerEncoderLayer, or a stack of them (any module with ``layers`` and an optional ``norm``, such as
    symm_learning's TransformerEncoder or torch.nn.TransformerEncoder); our eConv1d, eConvTranspose1d or
    eBatchNorm1d for symm_learning's (in eval mode, from its running statistics). Raises ConversionError naming
    the layer when a weight is not equivariant or a part has no exact counterpart here. With ``check``, the two
    models are compared on a random input in eval mode (float32) and a relative difference above 1e-5 is an
    error."""
    kind = type(module).__name__
    if kind in _TIME_MODULES and type(module).__module__.startswith("symm_learning."):
        make, shape = _TIME_MODULES[kind]
        ours = make(kind, module, tol)
        if check:
            _check_outputs(module, ours, torch.randn(shape(module)))
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


def _check_outputs(module, ours, x):
    module_was_training = module.training
    module.eval()
    with torch.no_grad():
        want, got = module(x), ours(x)
    module.train(module_was_training)
    err = ((got - want).abs().max() / want.abs().max()).item()
    if err > 1e-5:
        raise ConversionError(f"converted model differs from the symm_learning model by {err:.2e} (relative, float32)")

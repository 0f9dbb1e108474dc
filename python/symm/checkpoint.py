"""Checkpoints of the Python modules in symm's own format, the one C++ ``symm::save`` writes and ``symm::load``
reads: dense weights in the original basis, the architecture and representation fingerprints, an atomic write, a
hashed payload.

The Python modules have the C++ modules' state_dict keys, so the file is written by the C++ code itself: the C++
twin of the module (the same architecture, built from the module's options) receives the module's tensors and
``symm::save`` writes it; ``load`` reads the file into a fresh twin with ``symm::load`` (which refuses another
architecture, group or a damaged file) and only then copies the tensors into the module, so a refused file leaves
the module unchanged. Keys that do not line up between the module and its twin are an error, never skipped.

A model whose hidden channels are copies of a hidden_rep in another irrep decomposition than ours (as
symm.interop.from_symm_learning builds for most groups, to match escnn's) has a twin built with the same
hidden_rep; its checkpoint's architecture carries the decomposition (``decomposition=...`` on the modules whose
per-copy parameters belong to it), so that C++ and Python ``load`` refuse it for a model of another decomposition,
ours included. Files written by earlier versions through a stand-in group "(Python only)" are refused with what to
do instead.
"""
from __future__ import annotations

import os

import torch

from . import _C

__all__ = ["save", "load", "architecture", "cpp_twin", "cpp_copy"]


def _bias(linear) -> bool:
    return getattr(linear, "bias_dof", None) is not None


# What the group name of an earlier version's stand-in twin ended with (see load).
_STAND_IN = "(Python only)"

# A twin's activation and dropout: the C++ modules hold no state for them, so they do not change a checkpoint.
_ACT, _DROP = "gelu", 0.0


def _linear(m):
    return _C.eLinear(m.in_rep, m.out_rep, _bias(m), "xavier_uniform")


def _affine(m):
    return _C.eAffine(m.in_rep, m.has_bias)


def _rmsnorm(m):
    return _C.eRMSNorm(m.in_rep, m.eps, m.affine is not None)


def _layernorm(m):
    return _C.eLayerNorm(m.in_rep, m.eps, m.affine is not None, m.affine is not None and m.affine.has_bias)


def _attention(m):
    bias = _bias(m.in_proj)
    if type(m).__name__ == "RotaryAttention":
        return _C.RotaryAttention(m.in_rep, m.num_heads, _DROP, bias, "xavier_uniform", m.base)
    if type(m).__name__ == "ALiBiAttention":
        return _C.ALiBiAttention(m.in_rep, m.num_heads, _DROP, bias, "xavier_uniform", m.learnable_slopes)
    if type(m).__name__ == "eAdditivePosMultiheadAttention":
        return _C.eAdditivePosMultiheadAttention(m.in_rep, m.num_heads, m.max_len, _DROP, bias)
    if type(m).__name__ == "eAdditiveRelMultiheadAttention":
        return _C.eAdditiveRelMultiheadAttention(m.in_rep, m.num_heads, m.max_distance, _DROP, bias)
    return _C.eMultiheadAttention(m.in_rep, m.num_heads, _DROP, bias, "xavier_uniform")


def _encoder_layer(m):
    return _C.eTransformerEncoderLayer(m.in_rep, cpp_twin(m.self_attn), m.feedforward.hidden_size, _DROP, _ACT,
                                       m.norm1.eps, m.norm_first, m.norm_module, _bias(m.feedforward.linear1),
                                       "xavier_uniform")


def _encoder(m):
    return _C.eTransformerEncoder(cpp_twin(m.layers[0]), len(m.layers), None if m.norm is None else cpp_twin(m.norm))


def _decoder_layer(m):
    return _C.eTransformerDecoderLayer(m.in_rep, cpp_twin(m.self_attn), cpp_twin(m.cross_attn), m.feedforward.hidden_size,
                                       _DROP, _ACT, m.norm1.eps, m.norm_first, m.norm_module,
                                       _bias(m.feedforward.linear1), "xavier_uniform")


def _invariant_bias(m):
    return _C.InvariantBias(m.in_rep)


def _act_name(activation) -> str:
    """The C++ name of the activation where there is one (forwards of the twin then equal the module's)."""
    from .interop import activation_name
    return activation_name(activation) or _ACT


def _emlp(m):
    return _C.eMLP(m.in_rep, m.out_rep, [r.size for r in m.hidden_reps], activation=_act_name(m.activation),
                   dropout=_DROP, bias=_bias(m.layers[0]), hidden_rep=m.hidden_rep)


def _imlp(m):
    # The C++ iMLP's backbone takes all widths but the last, which is the pooled one.
    hidden = [r.size for r in m.backbone.hidden_reps] + [m.pooling.shape[0]]
    return _C.iMLP(m.in_rep, m.out_dim, hidden, activation=_act_name(m.backbone.activation), dropout=_DROP,
                   bias=m.head.bias is not None, hidden_rep=m.hidden_rep)


def _ecrt(m):
    return _C.eCondTransformerRegressor(m.in_rep, m.cond_rep, m.out_rep, m.in_horizon, m.cond_horizon, m.num_layers,
                                        m.num_attention_heads, m.embedding_dim, p_drop_emb=_DROP, p_drop_attn=_DROP,
                                        causal_attn=m.causal_attn, num_cond_layers=m.num_cond_layers,
                                        norm_module=m.norm_module)


def _crt(m):
    return _C.CondTransformerRegressor(m.in_dim, m.cond_dim, m.out_dim, m.in_horizon, m.cond_horizon, m.num_layers,
                                       m.num_attention_heads, m.embedding_dim, p_drop_emb=_DROP, p_drop_attn=_DROP,
                                       causal_attn=m.causal_attn, num_cond_layers=m.num_cond_layers,
                                       norm_module=m.norm_module)


def _conv(m):
    # The twin's padding does not change a checkpoint (only the tensors and representations are stored).
    padding = m.padding if isinstance(m.padding, int) else 0
    make = _C.eConvTranspose1d if type(m).__name__ == "eConvTranspose1d" else _C.eConv1d
    return make(m.in_rep, m.out_rep, m.kernel_size, m.stride, padding, m.output_padding, m.dilation, m.groups,
                m.has_bias, m.padding_mode, "xavier_uniform")


def _batchnorm(m):
    return _C.eBatchNorm1d(m.in_rep, m.eps, m.momentum, m.affine is not None, m.track_running_stats)


def _pooling(m):
    return _C.IrrepSubspaceNormPooling(m.in_rep)


def _disentangled(m):
    return _C.Change2DisentangledBasis(m.in_rep, m.learnable)


def _ema(m):
    return _C.EMAStats(m.dim_x, m.dim_y, m.momentum, m.eps, m.center_with_running_mean)


def _eema(m):
    return _C.eEMAStats(m.x_rep, m.y_rep, m.momentum, m.eps, m.center_with_running_mean)


def _normal(m):
    return _C.eMultivariateNormal(m.out_rep, m.diagonal)


def _mlp(m):
    return _C.MLP(m.in_dim, m.out_dim, m.hidden_units, activation=_act_name(m.activations[0]), batch_norm=m.batch_norm,
                  bias=m.linears[0].bias is not None)


def _ecnn(m):
    return _C.eTimeCNNEncoder(m.in_rep, m.out_rep, [c.out_channels for c in m.convs], m.time_horizon,
                              activation=_act_name(m.activation), batch_norm=m.batch_norm, bias=m.bias,
                              mlp_hidden=m.mlp_hidden, downsample=m.downsample, append_last_frame=m.append_last_frame,
                              init_scheme=m.init_scheme, hidden_rep=m.hidden_rep)


def _cnn(m):
    return _C.TimeCNNEncoder(m.in_dim, m.out_dim, [c.out_channels for c in m.convs], m.horizon_in,
                             activation=_act_name(m.activation), normalize=m.normalize,
                             bias=m.convs[0].bias is not None, mlp_hidden=m.head.hidden_units, downsample=m.downsample,
                             append_last_frame=m.append_last_frame)


def _eres(m):
    return _C.eConditionalResidualBlock1D(m.in_rep, m.out_rep, m.cond_rep, m.kernel_size, True,
                                          _act_name(m.activation), m.normalize, m.init_scheme)


def _eunet(m):
    return _C.eConditionalUnet1D(m.in_rep, m.local_cond_rep, m.global_cond_rep, m.diffusion_step_embed_dim,
                                 m.down_dims, m.kernel_size, True, _act_name(m.activation), m.normalize, m.downsample,
                                 m.init_scheme, hidden_rep=m.hidden_rep)


def _conv_block(m):
    return _C.Conv1dBlock(m.inp_channels, m.out_channels, m.kernel_size, m.n_groups)


def _resample(m):
    return (_C.Upsample1d if type(m).__name__ == "Upsample1d" else _C.Downsample1d)(m.dim)


def _res(m):
    return _C.ConditionalResidualBlock1D(m.in_channels, m.out_channels, m.cond_dim, m.kernel_size, m.n_groups,
                                         m.cond_predict_scale)


def _unet(m):
    return _C.ConditionalUnet1D(m.input_dim, m.local_cond_dim, m.global_cond_dim, m.diffusion_step_embed_dim,
                                m.down_dims, m.kernel_size, m.n_groups, m.cond_predict_scale)


_TWINS = {"eLinear": _linear, "eAffine": _affine, "eRMSNorm": _rmsnorm, "eLayerNorm": _layernorm,
          "eMultiheadAttention": _attention, "RotaryAttention": _attention, "ALiBiAttention": _attention,
          "eAdditivePosMultiheadAttention": _attention, "eAdditiveRelMultiheadAttention": _attention,
          "eTransformerEncoderLayer": _encoder_layer, "eTransformerEncoder": _encoder,
          "eTransformerDecoderLayer": _decoder_layer, "InvariantBias": _invariant_bias, "eMLP": _emlp, "iMLP": _imlp,
          "eCondTransformerRegressor": _ecrt, "CondTransformerRegressor": _crt,
          "eConv1d": _conv, "eConvTranspose1d": _conv, "eBatchNorm1d": _batchnorm,
          "IrrepSubspaceNormPooling": _pooling, "Change2DisentangledBasis": _disentangled,
          "EMAStats": _ema, "eEMAStats": _eema,
          "eMultivariateNormal": _normal, "MLP": _mlp, "eTimeCNNEncoder": _ecnn, "TimeCNNEncoder": _cnn,
          "eConditionalResidualBlock1D": _eres, "eConditionalUnet1D": _eunet, "Conv1dBlock": _conv_block,
          "Downsample1d": _resample, "Upsample1d": _resample, "ConditionalResidualBlock1D": _res,
          "ConditionalUnet1D": _unet}


def cpp_twin(module: torch.nn.Module):
    """The C++ module (symm._C) of the same architecture as a symm.nn module (hidden_rep included), with its own
    (fresh) tensors."""
    build = _TWINS.get(type(module).__name__) if type(module).__module__.startswith("symm.") else None
    if build is None:
        raise TypeError(f"expected a symm.nn module ({', '.join(_TWINS)}), got {type(module).__module__}."
                        f"{type(module).__name__}")
    return build(module)


def _cpp_state(cpp, prefix=""):
    """{name: tensor} over the parameters and buffers of a C++ module and its children, as state_dict names them."""
    out = {prefix + k: t for k, t in _C.named_parameters(cpp) + _C.named_buffers(cpp) if t is not None}
    for name, child in _C.named_children(cpp):
        out.update(_cpp_state(child, f"{prefix}{name}."))
    return out


def _paired(module, twin):
    ours, theirs = module.state_dict(keep_vars=True), _cpp_state(twin)
    if ours.keys() != theirs.keys():
        only_py, only_cpp = sorted(ours.keys() - theirs.keys()), sorted(theirs.keys() - ours.keys())
        raise TypeError(f"{type(module).__name__}: its state_dict does not line up with the C++ module's "
                        f"(only in Python: {only_py[:4]}, only in C++: {only_cpp[:4]})")
    for k, t in ours.items():
        if t.shape != theirs[k].shape:
            raise TypeError(f"{type(module).__name__}: '{k}' has shape {tuple(t.shape)} in Python but "
                            f"{tuple(theirs[k].shape)} in C++")
    return ours, theirs


def cpp_copy(module: torch.nn.Module):
    """The C++ twin holding a copy of the module's tensors, on the CPU in the module's dtype (so a float64 module
    is written without rounding), in the module's training mode."""
    twin = cpp_twin(module)
    _copy_into(module, twin)
    return twin


def _copy_into(module, twin):
    ours, theirs = _paired(module, twin)
    with torch.no_grad():
        for k, t in ours.items():
            theirs[k].data = t.detach().to("cpu", copy=True)
    _C.set_training(twin, module.training)


def save(module: torch.nn.Module, path) -> None:
    """Writes module in symm's checkpoint format (what C++ ``symm::save`` writes and ``symm::load`` reads);
    the path holds either its previous content or the complete checkpoint."""
    twin = cpp_twin(module)
    _copy_into(module, twin)
    _C.save(twin, os.fspath(path))


def load(module: torch.nn.Module, path) -> None:
    """Reads a checkpoint written by ``symm.save`` or C++ ``symm::save`` into a module of the same architecture;
    on any mismatch (another group, width or depth, a damaged or foreign file) raises RuntimeError with the C++
    message and leaves the module unchanged; a checkpoint of a model with another hidden_rep decomposition (or
    ours where the module has another) is such a mismatch."""
    twin = cpp_twin(module)
    ours, theirs = _paired(module, twin)
    with torch.no_grad():
        for k, t in ours.items():
            theirs[k].data = torch.empty(t.shape, dtype=t.dtype)
    try:
        _C.load(twin, os.fspath(path))
    except RuntimeError as e:
        if _STAND_IN not in str(e):
            raise
        # Its tensors are coefficients in the stand-in's own decomposition, not dense maps of the model.
        raise RuntimeError(f"{type(module).__name__}: {os.fspath(path)} was written by an earlier symm.save "
                           "through a stand-in group \"(Python only)\" for a model with a hidden_rep in another irrep "
                           "decomposition; such files no longer load. Convert the symm_learning model again "
                           "(symm.interop.from_symm_learning) or rebuild the model with its hidden_rep, train or copy "
                           "its weights, and save it again: the checkpoint then loads in C++ and Python") from None
    with torch.no_grad():
        for k, t in ours.items():
            t.copy_(theirs[k])


def architecture(module: torch.nn.Module) -> str:
    """The architecture fingerprint a checkpoint of module carries: one line per submodule and parameter, with
    `` decomposition=...`` (Representation.decomposition_fingerprint) on a module whose hidden_rep, or a residual
    block whose out_rep, is not in our irrep decomposition."""
    return _C.architecture(cpp_twin(module))

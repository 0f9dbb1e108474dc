"""Equivariant modules as torch.nn.Module subclasses, computed by the C++ library.

Every module holds its C++ twin (``_cpp``) and mirrors its submodule tree. Its Parameters and buffers are
the C++ module's own tensors, so Python optimisers, ``state_dict``/``load_state_dict``, ``.to()``,
``.double()`` and autograd act on exactly what the C++ forward computes with.
"""
from __future__ import annotations

import torch

from . import _C

__all__ = [
    "CppModule", "eLinear", "eAffine", "eRMSNorm", "eLayerNorm", "eMultiheadAttention", "RotaryAttention",
    "ALiBiAttention", "eTransformerEncoderLayer", "eTransformerEncoder", "eTransformerDecoderLayer",
]


class CppModule(torch.nn.Module):
    """A torch.nn.Module around a C++ symm module: same parameters, buffers, children and training mode."""

    def __init__(self, cpp, children: dict | None = None):
        super().__init__()
        self._cpp = cpp
        for name, t in _C.named_parameters(cpp):
            # A tensor flagged _is_param is a Parameter to torch.nn (isinstance and registration) while it stays
            # the very TensorImpl the C++ module reads; wrapping it in a new Parameter would detach the two.
            t._is_param = True
            self.register_parameter(name, t)
        for name, t in _C.named_buffers(cpp):
            self.register_buffer(name, t)
        children = children or {}
        for name, child in _C.named_children(cpp):
            given = children.get(name)
            self.add_module(name, given if given is not None and given._cpp is child else _wrap(child))

    def train(self, mode: bool = True):
        super().train(mode)
        _C.set_training(self._cpp, mode)
        return self

    def _apply(self, fn, recurse=True):
        # torch.nn.Module converts parameters in place (param.data = ...) but replaces buffers (and, with
        # torch.__future__ overwrite/swap settings, parameters): put the results back into the original
        # tensors, which the C++ module keeps using.
        before = {**{("p", k): v for k, v in self._parameters.items()}, **{("b", k): v for k, v in self._buffers.items()}}
        super()._apply(fn, recurse)
        for (kind, k), old in before.items():
            table = self._parameters if kind == "p" else self._buffers
            new = table.get(k)
            if old is None or new is None or new is old:
                continue
            with torch.no_grad():
                old.data = new.data
            if kind == "p" and new.grad is not None:
                old.grad = new.grad
            table[k] = old
        return self

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        # Copy into the shared tensors even when load_state_dict(assign=True) asks to replace them.
        local_metadata = {**local_metadata, "assign_to_params_buffers": False}
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

    @property
    def in_rep(self):
        return self._cpp.in_rep

    @property
    def out_rep(self):
        return self._cpp.out_rep

    def reset_parameters(self):
        self._cpp.reset_parameters()

    def extra_repr(self) -> str:
        return repr(self._cpp) if hasattr(type(self._cpp), "in_rep") else _C.module_name(self._cpp)

    def _place(self, device, dtype):
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)
        return self


def cpp_module(module: torch.nn.Module):
    """The C++ module behind a symm module; TypeError for anything else."""
    cpp = getattr(module, "_cpp", None)
    if cpp is None:
        raise TypeError(f"expected a symm.nn module, got {type(module).__name__}")
    return cpp


class _CppModuleList(CppModule):
    """A C++ torch::nn::ModuleList (the layers of a stack): indexable and iterable like torch.nn.ModuleList."""

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, i):
        return list(self._modules.values())[i]


def _wrap(cpp):
    cls = _WRAPPERS.get(type(cpp).__name__, CppModule)
    if cls is CppModule and _C.module_name(cpp) == "torch::nn::ModuleListImpl":
        cls = _CppModuleList
    obj = cls.__new__(cls)
    CppModule.__init__(obj, cpp)
    return obj


def _activation_name(activation) -> str:
    if isinstance(activation, str):
        return activation
    if isinstance(activation, torch.nn.GELU):
        return "gelu_tanh" if activation.approximate == "tanh" else "gelu"
    for cls, name in ((torch.nn.ReLU, "relu"), (torch.nn.SiLU, "silu"), (torch.nn.Tanh, "tanh")):
        if isinstance(activation, cls):
            return name
    raise ValueError(f"activation: expected torch.nn.GELU, ReLU, SiLU, Tanh or one of 'relu', 'gelu', 'gelu_tanh', "
                     f"'silu', 'tanh', got {activation!r}")


def _scheme(init_scheme) -> str:
    return "xavier_uniform" if init_scheme is None else init_scheme


class eLinear(CppModule):
    """y = W x + b with W in Hom_G(in_rep, out_rep), learned through its coefficients, b invariant."""

    def __init__(self, in_rep, out_rep, bias=True, init_scheme="xavier_uniform", device=None, dtype=None):
        super().__init__(_C.eLinear(in_rep, out_rep, bias, _scheme(init_scheme)))
        self._place(device, dtype)

    def forward(self, x):
        return self._cpp.forward(x)

    @property
    def weight(self):
        """Dense (out, in) weight (with autograd in training)."""
        return self._cpp.weight()

    @property
    def bias(self):
        return self._cpp.bias()

    def set_dense(self, weight, bias=None):
        """Sets the coefficients to the orthogonal projection of a dense weight (and bias) onto Hom_G."""
        self._cpp.set_dense(weight, bias)


class eAffine(CppModule):
    """y = Q diag(scale per irrep copy) Qᵀ x + b, b invariant."""

    def __init__(self, in_rep, bias=True, device=None, dtype=None):
        super().__init__(_C.eAffine(in_rep, bias))
        self._place(device, dtype)

    def forward(self, x):
        return self._cpp.forward(x)


class eRMSNorm(CppModule):
    def __init__(self, in_rep, eps=1e-5, equiv_affine=True, device=None, dtype=None):
        super().__init__(_C.eRMSNorm(in_rep, eps, equiv_affine))
        self._place(device, dtype)

    @property
    def eps(self):
        return self._cpp.eps

    def forward(self, x):
        return self._cpp.forward(x)


class eLayerNorm(CppModule):
    def __init__(self, in_rep, eps=1e-5, equiv_affine=True, bias=True, device=None, dtype=None):
        super().__init__(_C.eLayerNorm(in_rep, eps, equiv_affine, bias))
        self._place(device, dtype)

    @property
    def eps(self):
        return self._cpp.eps

    def forward(self, x):
        return self._cpp.forward(x)


class eMultiheadAttention(CppModule):
    """torch.nn.MultiheadAttention semantics, batch-first (B, T, D); heads own whole regular copies."""

    def __init__(self, in_rep, num_heads, dropout=0.0, bias=True, init_scheme="xavier_uniform", device=None, dtype=None):
        super().__init__(_C.eMultiheadAttention(in_rep, num_heads, dropout, bias, _scheme(init_scheme)))
        self._place(device, dtype)

    @property
    def num_heads(self):
        return self._cpp.num_heads

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        return self._cpp.forward(query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights, is_causal)


class _PositionalAttention(CppModule):
    @property
    def num_heads(self):
        return self._cpp.num_heads

    def forward(self, query, key, value, query_positions=None, key_positions=None, key_padding_mask=None,
                attn_mask=None, is_causal=False):
        return self._cpp.forward(query, key, value, query_positions, key_positions, key_padding_mask, attn_mask, is_causal)


class RotaryAttention(_PositionalAttention):
    """Rotary positions over pairs of regular copies within each head; (output, None)."""

    def __init__(self, in_rep, num_heads, dropout=0.0, bias=True, init_scheme="xavier_uniform", base=10000.0,
                 device=None, dtype=None):
        super().__init__(_C.RotaryAttention(in_rep, num_heads, dropout, bias, _scheme(init_scheme), base))
        self._place(device, dtype)


class ALiBiAttention(_PositionalAttention):
    """An invariant relative-position bias −slope_h·|p_i − p_j| on the logits; (output, None)."""

    def __init__(self, in_rep, num_heads, dropout=0.0, bias=True, init_scheme="xavier_uniform", learnable_slopes=False,
                 device=None, dtype=None):
        super().__init__(_C.ALiBiAttention(in_rep, num_heads, dropout, bias, _scheme(init_scheme), learnable_slopes))
        self._place(device, dtype)


class eTransformerEncoderLayer(CppModule):
    """The equivariant Transformer encoder layer with the API of symm_learning's eTransformerEncoderLayer."""

    def __init__(self, in_rep, self_attn, dim_feedforward=2048, dropout=0.1, activation=torch.nn.GELU(),
                 layer_norm_eps=1e-5, norm_first=True, norm_module="rmsnorm", bias=True, device=None, dtype=None,
                 init_scheme="xavier_uniform"):
        cpp = _C.eTransformerEncoderLayer(in_rep, cpp_module(self_attn), dim_feedforward, dropout,
                                          _activation_name(activation), layer_norm_eps, norm_first, norm_module, bias,
                                          _scheme(init_scheme))
        super().__init__(cpp, children={"self_attn": self_attn})
        self.norm_first = norm_first
        self._place(device, dtype)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False, *, src_positions=None,
                src_position_mask=None):
        return self._cpp.forward(src, src_mask, src_key_padding_mask, is_causal, src_positions, src_position_mask)

    def check_equivariance(self, batch_size=4, seq_len=5, samples=20, atol=1e-4, rtol=1e-4) -> dict:
        """Checks attention, feed-forward and the whole layer over group elements in eval mode; raises
        RuntimeError with the largest error and the failing element. Returns the relative errors."""
        return self._cpp.check_equivariance(batch_size, seq_len, samples, atol, rtol)


class eTransformerEncoder(CppModule):
    """A stack of num_layers clones of encoder_layer, then an optional final norm (eRMSNorm or eLayerNorm)."""

    def __init__(self, encoder_layer, num_layers, norm=None):
        cpp = _C.eTransformerEncoder(cpp_module(encoder_layer), num_layers, None if norm is None else cpp_module(norm))
        super().__init__(cpp, children={} if norm is None else {"norm": norm})

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=False, *, src_positions=None,
                src_position_mask=None):
        return self._cpp.forward(src, mask, src_key_padding_mask, is_causal, src_positions, src_position_mask)


class eTransformerDecoderLayer(CppModule):
    """Self-attention, cross-attention to the memory and the feed-forward block, each equivariant."""

    def __init__(self, in_rep, self_attn, multihead_attn, dim_feedforward=2048, dropout=0.1,
                 activation=torch.nn.GELU(), layer_norm_eps=1e-5, norm_first=True, norm_module="rmsnorm", bias=True,
                 device=None, dtype=None, init_scheme="xavier_uniform"):
        cpp = _C.eTransformerDecoderLayer(in_rep, cpp_module(self_attn), cpp_module(multihead_attn), dim_feedforward,
                                          dropout, _activation_name(activation), layer_norm_eps, norm_first,
                                          norm_module, bias, _scheme(init_scheme))
        super().__init__(cpp, children={"self_attn": self_attn, "cross_attn": multihead_attn})
        self._place(device, dtype)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False, *, tgt_positions=None,
                memory_positions=None):
        return self._cpp.forward(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask,
                                 tgt_is_causal, memory_is_causal, tgt_positions, memory_positions)


_WRAPPERS = {cls.__name__: cls for cls in (eLinear, eAffine, eRMSNorm, eLayerNorm, eMultiheadAttention, RotaryAttention,
                                           ALiBiAttention, eTransformerEncoderLayer, eTransformerEncoder,
                                           eTransformerDecoderLayer)}

"""The inference fast path of eTransformerEncoderLayer, in the spirit of torch.nn.TransformerEncoderLayer's:
dense weights made once per parameter change, the pre-norms' affine maps folded into the maps that follow them
(W·(S·n + b) + c = (W·S)·n + (W·b + c)), and no module calls. It is taken only when nothing needs the op-by-op
path: eval mode, autograd needing nothing, no hook on a submodule, no capture by torch.compile / torch.export,
no torch.func transform, no autocast; otherwise the layer runs its submodules as they are."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .attention import eMultiheadAttention
from .module import EvalCache, autocasting, survey, tracing
from .normalization import eLayerNorm, eRMSNorm

__all__ = ["FusedEval"]


def _activation_name(activation) -> str | None:
    """The name torch.ops.symm.encoder_layer_eval knows the activation by, or None (the Python path runs it)."""
    kind = type(activation)
    if kind is torch.nn.GELU:
        return {"none": "gelu", "tanh": "gelu_tanh"}.get(activation.approximate)
    return {torch.nn.ReLU: "relu", torch.nn.SiLU: "silu", torch.nn.Tanh: "tanh", torch.nn.Mish: "mish"}.get(kind)


def _centre(norm, x):
    """The centre torch.ops.symm.layer_normalise takes for the norm (None for eRMSNorm and uncentred)."""
    return norm._centre.to(x.dtype) if isinstance(norm, eLayerNorm) and norm.centred else None


def _normalise(norm, x):
    """The norm without its affine map (the layer has checked x)."""
    return torch.ops.symm.layer_normalise(x, _centre(norm, x), -1, norm.eps)


def _affine(norm):
    """(S, b) of the norm's affine map, or (None, None)."""
    if norm.affine is None:
        return None, None
    return norm.affine.scale_matrix(), norm.affine.bias_vector()


def _fold(linear, norm):
    """linear ∘ norm's affine as one (W, c)."""
    w, c = linear.weight, linear.bias
    s, b = _affine(norm)
    if s is None:
        return w, c
    folded_c = c if b is None else (torch.mv(w, b) if c is None else torch.addmv(c, w, b))
    return w @ s, folded_c


class FusedEval:
    """The layer's fast path and its cache of folded weights (EvalCache: empty after a deepcopy or pickle)."""

    def __init__(self, layer):
        self.supported = (type(layer.self_attn) is eMultiheadAttention and layer.norm_first
                          and all(isinstance(n, (eRMSNorm, eLayerNorm)) and (n.affine is None or n.affine.learnable)
                                  for n in (layer.norm1, layer.norm2)))
        self.cache = EvalCache()

    def active(self, layer, src) -> list | None:
        """The layer's parameters when the fast path may run, else None."""
        if not self.supported or layer.training or tracing() or src.requires_grad and torch.is_grad_enabled():
            return None
        if src.device.type == "meta" or torch._C._functorch.is_functorch_wrapped_tensor(src) or autocasting(src):
            return None
        params, hooked = survey(layer)
        if hooked or torch.is_grad_enabled() and any(p.requires_grad for p in params):
            return None
        return params

    def weights(self, layer, params):
        attn, ff = layer.self_attn, layer.feedforward

        def compute():
            return (*_fold(attn.in_proj, layer.norm1), attn.out_proj.weight, attn.out_proj.bias,
                    *_fold(ff.linear1, layer.norm2), ff.linear2.weight, ff.linear2.bias)
        return self.cache.get(params, compute)

    def forward(self, layer, src, params, mask, key_padding_mask, is_causal):
        w_in, b_in, w_out, b_out, w1, b1, w2, b2 = self.weights(layer, params)
        attn = layer.self_attn
        activation = _activation_name(layer.feedforward.activation)
        if mask is None and key_padding_mask is None and not is_causal and activation is not None:
            # The whole layer in one operator of the functional core, as the C++ module runs it.
            n1, n2 = layer.norm1, layer.norm2
            return torch.ops.symm.encoder_layer_eval(src, w_in, b_in, w_out, b_out, w1, b1, w2, b2, attn.num_heads,
                                                     _centre(n1, src), n1.eps, _centre(n2, src), n2.eps, activation)
        batch, length = src.shape[0], src.shape[1]
        heads = F.linear(_normalise(layer.norm1, src), w_in, b_in).view(batch, length, 3, attn.num_heads, attn.head_dim)
        q, k, v = heads.permute(2, 0, 3, 1, 4).unbind(0)
        if mask is None and key_padding_mask is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
        else:
            out = attn._attend(q, k, v, attn._mask(q, k, mask, key_padding_mask), is_causal, False, True)[0]
        x = src + F.linear(out.transpose(1, 2).reshape(batch, length, -1), w_out, b_out)
        return x + F.linear(layer.feedforward.activation(F.linear(_normalise(layer.norm2, x), w1, b1)), w2, b2)

"""eTransformerEncoderLayer: the equivariant Transformer encoder layer with the API of
torch.nn.TransformerEncoderLayer (batch-first) and of symm_learning's eTransformerEncoderLayer. Every linear
map commutes with the group, so f(ρ(g)x) = ρ(g)f(x) with ρ acting on the feature axis of every token."""
from __future__ import annotations

import torch

from .attention import AttentionBase
from .feedforward import eFeedForward
from .fused import FusedEval
from .isotypic import IsotypicExecution
from .linear import _check_execution
from .module import check_device_and_dtype, check_features, eModule
from .normalization import eLayerNorm, eRMSNorm

__all__ = ["eTransformerEncoderLayer"]

#: The seed's default activation; each layer gets its own GELU for it.
DEFAULT_ACTIVATION = torch.nn.GELU()


def make_norm(module, kind, rep, eps, bias, dtype):
    if kind == "rmsnorm":
        return eRMSNorm(rep, eps=eps, dtype=dtype)
    if kind == "layernorm":
        return eLayerNorm(rep, eps=eps, bias=bias, dtype=dtype)
    raise ValueError(f"{module}: norm_module must be 'rmsnorm' or 'layernorm', got {kind!r}")


def check_attention(module, what, attn, rep):
    if not isinstance(attn, AttentionBase):
        raise TypeError(f"{module}: {what} must be a symm.nn eMultiheadAttention, RotaryAttention or ALiBiAttention, "
                        f"got {type(attn).__name__}")
    if not attn.in_rep.same(rep):
        raise ValueError(f"{module}: {what} acts on {attn.in_rep.name} (size {attn.in_rep.size}) but the layer's in_rep "
                         f"is {rep.name} (size {rep.size})")


def attend(attn, query, key, mask, key_padding_mask, is_causal, query_positions=None, key_positions=None,
           query_position_mask=None, key_position_mask=None):
    """One attention call of a layer (key is value): positions reach positional backends only."""
    if attn.uses_positions:
        return attn(query, key, key, query_positions, key_positions, key_padding_mask, mask, is_causal,
                    query_position_mask=query_position_mask, key_position_mask=key_position_mask)[0]
    return attn(query, key, key, key_padding_mask=key_padding_mask, need_weights=False, attn_mask=mask,
                is_causal=is_causal)[0]


def layer_activation(activation):
    return torch.nn.GELU() if activation is DEFAULT_ACTIVATION else activation


def check_dropout(module, dropout):
    if not 0 <= dropout < 1:
        raise ValueError(f"{module}: dropout must be in [0, 1), got {dropout}")


class eTransformerEncoderLayer(eModule):
    """Self-attention (eMultiheadAttention or a positional backend, pre-built on in_rep) and the feed-forward
    block, each with its norm (pre-norm by default) and residual; eval changes dropout only."""

    def __init__(self, in_rep, self_attn, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation=DEFAULT_ACTIVATION, layer_norm_eps: float = 1e-5, norm_first: bool = True,
                 norm_module: str = "rmsnorm", bias: bool = True, device=None, dtype=None,
                 init_scheme: str | None = "xavier_uniform", *, execution: str = "automatic"):
        super().__init__(in_rep)
        name = "eTransformerEncoderLayer"
        check_attention(name, "self_attn", self_attn, in_rep)
        check_dropout(name, dropout)
        self.execution = _check_execution(name, execution)
        self.in_features, self.norm_first, self.norm_module = in_rep.size, norm_first, norm_module
        self.self_attn = self_attn
        self.feedforward = eFeedForward(in_rep, dim_feedforward, layer_activation(activation), dropout, bias,
                                        init_scheme, dtype=dtype)
        self.norm1 = make_norm(name, norm_module, in_rep, layer_norm_eps, bias, dtype)
        self.norm2 = make_norm(name, norm_module, in_rep, layer_norm_eps, bias, dtype)
        self.dropout1 = torch.nn.Dropout(dropout)
        self.dropout2 = torch.nn.Dropout(dropout)
        self._isotypic = IsotypicExecution(self, self.execution, [self_attn], [self.norm1, self.norm2], self.feedforward)
        self._fused = FusedEval(self)
        self._place(device, dtype)

    def reset_parameters(self):
        self._reset_constants()
        for m in (self.self_attn, self.feedforward, self.norm1, self.norm2):
            m.reset_parameters()

    def _attention_block(self, x, mask, key_padding_mask, is_causal, positions, position_mask):
        return self.dropout1(attend(self.self_attn, x, x, mask, key_padding_mask, is_causal, positions, positions,
                                    position_mask, position_mask))

    def _feedforward_block(self, x):
        return self.dropout2(self.feedforward(x))

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False, *, src_positions=None,
                src_position_mask=None):
        """src (B, T, D); masks as torch.nn.TransformerEncoderLayer (batch-first); positions (B, T) and the
        position mask (B, T) bool reach positional backends."""
        check_features("eTransformerEncoderLayer", src, self.in_features, "src")
        if src.dim() != 3:
            raise RuntimeError(f"eTransformerEncoderLayer: expected src of shape (B, T, {self.in_features}), got "
                               f"{tuple(src.shape)}")
        check_device_and_dtype("eTransformerEncoderLayer", src, self.feedforward.linear1.weight_dof, "src")
        if self._isotypic.active(self, src):
            return self._forward_isotypic(src, src_mask, src_key_padding_mask, is_causal, src_positions, src_position_mask)
        params = self._fused.active(self, src) if self.execution != "isotypic" else None
        if params is not None:
            return self._fused.forward(self, src, params, src_mask, src_key_padding_mask, is_causal)
        x = src
        if self.norm_first:
            h = self.norm1(x)
            x = x + self._attention_block(h, src_mask, src_key_padding_mask, is_causal, src_positions, src_position_mask)
            return x + self._feedforward_block(self.norm2(x))
        x = self.norm1(x + self._attention_block(x, src_mask, src_key_padding_mask, is_causal, src_positions,
                                                 src_position_mask))
        return self.norm2(x + self._feedforward_block(x))

    def _forward_isotypic(self, src, mask, key_padding_mask, is_causal, positions, position_mask):
        """forward with the residual stream in the isotypic layout (IsotypicExecution)."""
        iso, shape, batch = self._isotypic, src.shape, src.shape[0]
        space = iso.space(self)

        def attention(z):
            return iso.dropout(self, self.dropout1, self.self_attn.forward_isotypic(
                z, batch, mask, key_padding_mask, is_causal, positions, position_mask), shape)

        def feedforward(z):
            return iso.dropout(self, self.dropout2, self.feedforward.forward_isotypic(z), shape)

        z = iso.to_isotypic(self, src)
        if self.norm_first:
            z = z + attention(self.norm1.forward_isotypic(z, space))
            z = z + feedforward(self.norm2.forward_isotypic(z, space))
        else:
            z = self.norm1.forward_isotypic(z + attention(z), space)
            z = self.norm2.forward_isotypic(z + feedforward(z), space)
        return iso.from_isotypic(self, z, shape)

    @torch.no_grad()
    def check_equivariance(self, batch_size=4, seq_len=5, samples=20, atol=1e-4, rtol=1e-4) -> dict:
        """Checks the attention block, the feed-forward block and the whole layer over group elements (all of
        them when |G| <= samples) in eval mode; raises RuntimeError with the largest error and the failing
        element. Returns the relative errors."""
        was_training = self.training
        self.eval()
        try:
            like = next(self.parameters())
            x = torch.randn(batch_size, seq_len, self.in_features, dtype=like.dtype, device=like.device)
            order = self.in_rep.group.order
            elements = range(order) if order <= samples else torch.randperm(order)[:samples].tolist()
            mats = {g: self.in_rep(g).to(x) for g in elements}
            attention = lambda t: self._attention_block(self.norm1(t) if self.norm_first else t, None, None, False, None, None)
            feedforward = lambda t: self._feedforward_block(self.norm2(t) if self.norm_first else t)
            report, worst = {"worst_element": 0}, (0.0, None)
            for block, f in (("attention", attention), ("feedforward", feedforward), ("layer", self)):
                y = f(x)
                scale = max(y.abs().max().item(), 1e-30)
                report[block] = 0.0
                for g, m in mats.items():
                    expected = y @ m.T
                    diff = (f(x @ m.T) - expected).abs()
                    report[block] = max(report[block], diff.max().item() / scale)
                    excess = (diff - (atol + rtol * expected.abs())).max().item()
                    if excess > worst[0]:
                        worst = (excess, block)
                        report["worst_element"] = g
        finally:
            self.train(was_training)
        if worst[1] is not None:
            raise RuntimeError(f"eTransformerEncoderLayer.check_equivariance: the {worst[1]} block is not equivariant at "
                               f"group element {report['worst_element']} (exceeds atol={atol}, rtol={rtol} by {worst[0]:.3g}; "
                               f"relative errors {report})")
        return report

    def extra_repr(self) -> str:
        return (f"in={self.in_rep.name}, heads={self.self_attn.num_heads}, dim_feedforward={self.feedforward.hidden_size}, "
                f"norm={self.norm_module}, norm_first={self.norm_first}, dropout={self.dropout1.p}")

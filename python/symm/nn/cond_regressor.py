"""Conditional Transformer regressors, the backbone of diffusion and flow-matching policies: a horizon of input
tokens X (noisy actions) is regressed to output tokens (a velocity or noise estimate) given condition tokens Z
(observations) and the optimisation step k (flow time or diffusion step).

eCondTransformerRegressor is exactly equivariant: f(ρ_in(g)X, k, ρ_cond(g)Z) = ρ_out(g) f(X, k, Z). Tokens are
embedded into embedding_dim/|G| regular copies; the step embedding and the learned positional embeddings are
projected onto the invariant subspace, so adding them commutes with the group. CondTransformerRegressor is the
same architecture from torch.nn modules, for baselines. Both have the C++ modules' state_dict keys.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import Representation
from .attention import eMultiheadAttention
from .decoder_layer import eTransformerDecoderLayer
from .encoder import eTransformerEncoder
from .encoder_layer import eTransformerEncoderLayer
from .linear import eLinear
from .mlp import eMLP
from .module import eModule
from .normalization import eLayerNorm, eRMSNorm

__all__ = ["eCondTransformerRegressor", "CondTransformerRegressor", "PreNormBlock", "sinusoidal_embedding"]


def sinusoidal_embedding(k: torch.Tensor, dim: int) -> torch.Tensor:
    """The sinusoidal embedding of a step k (B) → (B, dim): [sin(k ω_i), cos(k ω_i)] with
    ω_i = 10000^(−i/(dim/2 − 1)), zero-padded when dim is odd."""
    half = dim // 2
    scale = math.log(10000.0) / (half - 1) if half > 1 else 0.0
    freq = torch.exp(torch.arange(half, dtype=k.dtype, device=k.device) * -scale)
    arg = k.reshape(-1, 1) * freq.unsqueeze(0)
    emb = torch.cat([arg.sin(), arg.cos()], -1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def _check_inputs(module, X, k, Z, in_dim, cond_dim, in_horizon, cond_horizon) -> torch.Tensor:
    """Checks the shapes shared by both regressors; the step as a (B) tensor of X's dtype and device."""
    if not (isinstance(X, torch.Tensor) and X.dim() == 3 and X.shape[2] == in_dim and 1 <= X.shape[1] <= in_horizon):
        raise ValueError(f"{module}: expected X of shape (B, 1..{in_horizon}, {in_dim}), got "
                         f"{tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__}")
    if not (isinstance(Z, torch.Tensor) and Z.dim() == 3 and Z.shape[2] == cond_dim and 1 <= Z.shape[1] <= cond_horizon):
        raise ValueError(f"{module}: expected Z of shape (B, 1..{cond_horizon}, {cond_dim}), got "
                         f"{tuple(Z.shape) if isinstance(Z, torch.Tensor) else type(Z).__name__}")
    if X.shape[0] != Z.shape[0]:
        raise ValueError(f"{module}: X and Z must have the same batch size, got {X.shape[0]} and {Z.shape[0]}")
    if not X.is_floating_point() or X.dtype != Z.dtype:
        raise ValueError(f"{module}: X and Z must be floating point of the same dtype, got {X.dtype} and {Z.dtype}")
    batch = X.shape[0]
    k = torch.as_tensor(k, device=X.device).to(X.dtype)
    if k.numel() != 1 and k.numel() != batch:
        raise ValueError(f"{module}: the step k must be a scalar or hold one value per batch element ({batch}), "
                         f"got shape {tuple(k.shape)}")
    return k.reshape(-1).expand(batch)


def _causal_masks(tx: int, tm: int, device):
    """Causal masks (True = not allowed): input token t sees input tokens ≤ t, and condition tokens s ≤ t + 1
    (token 0 is the step, token s ≥ 1 the s-th observation)."""
    self_mask = torch.ones(tx, tx, dtype=torch.bool, device=device).triu(1)
    t = torch.arange(tx, device=device).unsqueeze(1)
    s = torch.arange(tm, device=device).unsqueeze(0)
    return self_mask, s > t + 1


def _check_common(module, embedding_dim, num_attention_heads, in_horizon, cond_horizon, num_layers, num_cond_layers,
                  p_drop_emb, p_drop_attn, norm_module):
    if in_horizon <= 0 or cond_horizon <= 0:
        raise ValueError(f"{module}: in_horizon and cond_horizon must be positive, got {in_horizon} and {cond_horizon}")
    if num_layers <= 0 or num_cond_layers < 0:
        raise ValueError(f"{module}: num_layers must be positive and num_cond_layers >= 0, got {num_layers} and "
                         f"{num_cond_layers}")
    if not (0 <= p_drop_emb < 1 and 0 <= p_drop_attn < 1):
        raise ValueError(f"{module}: dropout probabilities must be in [0, 1), got {p_drop_emb} and {p_drop_attn}")
    if norm_module not in ("rmsnorm", "layernorm"):
        raise ValueError(f"{module}: norm_module must be 'rmsnorm' or 'layernorm', got {norm_module!r}")


def _reset_all(root: torch.nn.Module):
    """reset_parameters of every submodule that owns parameters (each resets its own), and the constants of every
    equivariant one (a module built on the meta device gets them back after to_empty)."""
    for m in root.modules():
        if m is root:
            continue
        reset = getattr(m, "reset_parameters", None) or getattr(m, "_reset_parameters", None)  # MultiheadAttention
        if m._parameters and reset is not None:
            reset()
        elif isinstance(m, eModule):
            m._reset_constants()
    with torch.no_grad():
        root.pos_emb.zero_()
        root.cond_pos_emb.zero_()


class eCondTransformerRegressor(eModule):
    """f(X, k, Z) with f(ρ_in(g)X, k, ρ_cond(g)Z) = ρ_out(g) f(X, k, Z) for every g; X (B, Tx ≤ in_horizon, in_rep),
    k a scalar or (B) step, Z (B, Tz ≤ cond_horizon, cond_rep) → (B, Tx, out_rep)."""

    def __init__(self, in_rep: Representation, cond_rep: Representation, out_rep: Representation, in_horizon: int,
                 cond_horizon: int, num_layers: int, num_attention_heads: int, embedding_dim: int, p_drop_emb: float = 0.1,
                 p_drop_attn: float = 0.1, causal_attn: bool = False, num_cond_layers: int = 0,
                 norm_module: str = "rmsnorm", init_scheme: str = "xavier_uniform", device=None, dtype=None):
        super().__init__(in_rep, out_rep)
        name = "eCondTransformerRegressor"
        G = in_rep.group
        if cond_rep.group != G or out_rep.group != G:
            raise ValueError(f"{name}: in_rep, cond_rep and out_rep must be of one group, got {G.name}, "
                             f"{cond_rep.group.name} and {out_rep.group.name}")
        if embedding_dim <= 0 or embedding_dim % G.order:
            raise ValueError(f"{name}: embedding_dim ({embedding_dim}) must be a positive multiple of |{G.name}| = "
                             f"{G.order} (whole regular copies)")
        copies = embedding_dim // G.order
        if num_attention_heads <= 0 or copies % num_attention_heads:
            raise ValueError(f"{name}: embedding_dim {embedding_dim} gives {copies} regular copies of {G.name}, which "
                             f"num_attention_heads {num_attention_heads} does not divide (each head owns whole copies)")
        _check_common(name, embedding_dim, num_attention_heads, in_horizon, cond_horizon, num_layers, num_cond_layers,
                      p_drop_emb, p_drop_attn, norm_module)
        self.cond_rep = cond_rep
        self.in_horizon, self.cond_horizon, self.embedding_dim = in_horizon, cond_horizon, embedding_dim
        self.num_layers, self.num_cond_layers, self.num_attention_heads = num_layers, num_cond_layers, num_attention_heads
        self.causal_attn, self.norm_module, self.init_scheme = causal_attn, norm_module, init_scheme
        self.embedding_rep = rep = Representation.regular(G).copies(copies)
        kw = dict(device=device, dtype=dtype)
        self.input_emb = eLinear(in_rep, rep, init_scheme=init_scheme, **kw)
        self.cond_emb = eLinear(cond_rep, rep, init_scheme=init_scheme, **kw)
        self.pos_emb = torch.nn.Parameter(torch.zeros(1, in_horizon, embedding_dim, **kw))
        self.cond_pos_emb = torch.nn.Parameter(torch.zeros(1, cond_horizon + 1, embedding_dim, **kw))
        self.dropout = torch.nn.Dropout(p_drop_emb)

        def attention():
            return eMultiheadAttention(rep, num_attention_heads, dropout=p_drop_attn, init_scheme=init_scheme, **kw)

        layer_kw = dict(dim_feedforward=4 * embedding_dim, dropout=p_drop_attn, norm_first=True, norm_module=norm_module,
                        init_scheme=init_scheme, **kw)
        if num_cond_layers > 0:
            self.cond_encoder = eTransformerEncoder(eTransformerEncoderLayer(rep, attention(), **layer_kw), num_cond_layers)
        else:
            self.cond_mlp = eMLP(rep, rep, [4 * embedding_dim], activation=torch.nn.Mish(), init_scheme=init_scheme, **kw)
        self.decoder = torch.nn.ModuleList(
            eTransformerDecoderLayer(rep, attention(), attention(), **layer_kw) for _ in range(num_layers))
        self.norm = eRMSNorm(rep, eps=1e-5, **kw) if norm_module == "rmsnorm" else eLayerNorm(rep, eps=1e-5, **kw)
        self.head = eLinear(rep, out_rep, init_scheme=init_scheme, **kw)
        # The orthonormal basis (D, n) of Fix(embedding_rep): a constant of the group, not state.
        self._constant("invariant_basis", rep.invariant_basis, dtype)
        self._place(device, dtype)

    def project_invariant(self, x: torch.Tensor) -> torch.Tensor:
        basis = self.invariant_basis
        return (x @ basis) @ basis.T

    def reset_parameters(self):
        self._reset_constants()
        _reset_all(self)

    def forward(self, X: torch.Tensor, opt_step, Z: torch.Tensor) -> torch.Tensor:
        steps = _check_inputs("eCondTransformerRegressor", X, opt_step, Z, self.in_rep.size, self.cond_rep.size,
                              self.in_horizon, self.cond_horizon)
        tx, tz = X.shape[1], Z.shape[1]
        # Condition tokens: the step (invariant), then the embedded observations; invariant positions on both.
        step_token = self.project_invariant(sinusoidal_embedding(steps, self.embedding_dim)).unsqueeze(1)
        cond = torch.cat([step_token, self.cond_emb(Z)], 1)
        cond = self.dropout(cond + self.project_invariant(self.cond_pos_emb[:, :tz + 1]))
        cond = self.cond_encoder(cond) if self.num_cond_layers > 0 else self.cond_mlp(cond)
        x = self.dropout(self.input_emb(X) + self.project_invariant(self.pos_emb[:, :tx]))
        self_mask = cross_mask = None
        if self.causal_attn:
            self_mask, cross_mask = _causal_masks(tx, tz + 1, X.device)
        for layer in self.decoder:
            x = layer(x, cond, tgt_mask=self_mask, memory_mask=cross_mask)
        return self.head(self.norm(x))

    def extra_repr(self) -> str:
        return (f"in={self.in_rep.name}, cond={self.cond_rep.name}, out={self.out_rep.name}, "
                f"embedding={self.embedding_rep.name}, layers={self.num_layers}, cond_layers={self.num_cond_layers}, "
                f"heads={self.num_attention_heads}, causal={self.causal_attn}, norm={self.norm_module}")


class PreNormBlock(torch.nn.Module):
    """A pre-norm Transformer block from torch.nn modules: self-attention, optional cross-attention to a memory,
    and a GELU feed-forward block. The plain regressor's encoder (no cross-attention) and decoder layers."""

    def __init__(self, dim: int, heads: int, dim_feedforward: int, dropout: float, cross: bool, norm_module: str,
                 device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)

        def norm():
            return torch.nn.RMSNorm(dim, eps=1e-5, **kw) if norm_module == "rmsnorm" else torch.nn.LayerNorm(dim, eps=1e-5, **kw)

        self.cross = cross
        self.self_attn = torch.nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True, **kw)
        if cross:
            self.cross_attn = torch.nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True, **kw)
        self.linear1 = torch.nn.Linear(dim, dim_feedforward, **kw)
        self.linear2 = torch.nn.Linear(dim_feedforward, dim, **kw)
        self.norm1, self.norm2 = norm(), norm()
        if cross:
            self.norm3 = norm()
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, x, memory=None, self_mask=None, cross_mask=None):
        h = self.norm1(x)
        x = x + self.dropout(self.self_attn(h, h, h, attn_mask=self_mask, need_weights=False)[0])
        ff_norm = self.norm2
        if self.cross:
            h = self.norm2(x)
            x = x + self.dropout(self.cross_attn(h, memory, memory, attn_mask=cross_mask, need_weights=False)[0])
            ff_norm = self.norm3
        return x + self.dropout(self.linear2(self.dropout(F.gelu(self.linear1(ff_norm(x))))))


class CondTransformerRegressor(torch.nn.Module):
    """The architecture of eCondTransformerRegressor on plain features, from torch.nn modules (a baseline)."""

    def __init__(self, in_dim: int, cond_dim: int, out_dim: int, in_horizon: int, cond_horizon: int, num_layers: int,
                 num_attention_heads: int, embedding_dim: int, p_drop_emb: float = 0.1, p_drop_attn: float = 0.1,
                 causal_attn: bool = False, num_cond_layers: int = 0, norm_module: str = "rmsnorm", device=None,
                 dtype=None):
        super().__init__()
        name = "CondTransformerRegressor"
        if min(in_dim, cond_dim, out_dim) <= 0:
            raise ValueError(f"{name}: in_dim, cond_dim and out_dim must be positive, got {in_dim}, {cond_dim}, {out_dim}")
        if embedding_dim <= 0 or num_attention_heads <= 0 or embedding_dim % num_attention_heads:
            raise ValueError(f"{name}: embedding_dim ({embedding_dim}) must be a positive multiple of "
                             f"num_attention_heads ({num_attention_heads})")
        _check_common(name, embedding_dim, num_attention_heads, in_horizon, cond_horizon, num_layers, num_cond_layers,
                      p_drop_emb, p_drop_attn, norm_module)
        self.in_dim, self.cond_dim, self.out_dim = in_dim, cond_dim, out_dim
        self.in_horizon, self.cond_horizon, self.embedding_dim = in_horizon, cond_horizon, embedding_dim
        self.num_layers, self.num_cond_layers, self.num_attention_heads = num_layers, num_cond_layers, num_attention_heads
        self.causal_attn, self.norm_module = causal_attn, norm_module
        kw = dict(device=device, dtype=dtype)
        dim = embedding_dim
        self.input_emb = torch.nn.Linear(in_dim, dim, **kw)
        self.cond_emb = torch.nn.Linear(cond_dim, dim, **kw)
        self.pos_emb = torch.nn.Parameter(torch.zeros(1, in_horizon, dim, **kw))
        self.cond_pos_emb = torch.nn.Parameter(torch.zeros(1, cond_horizon + 1, dim, **kw))
        self.dropout = torch.nn.Dropout(p_drop_emb)
        block = dict(heads=num_attention_heads, dim_feedforward=4 * dim, dropout=p_drop_attn, norm_module=norm_module, **kw)
        if num_cond_layers > 0:
            self.cond_encoder = torch.nn.ModuleList(PreNormBlock(dim, cross=False, **block) for _ in range(num_cond_layers))
        else:
            self.cond_mlp = torch.nn.Sequential(torch.nn.Linear(dim, 4 * dim, **kw), torch.nn.Mish(),
                                                torch.nn.Linear(4 * dim, dim, **kw))
        self.decoder = torch.nn.ModuleList(PreNormBlock(dim, cross=True, **block) for _ in range(num_layers))
        self.norm = (torch.nn.RMSNorm(dim, eps=1e-5, **kw) if norm_module == "rmsnorm"
                     else torch.nn.LayerNorm(dim, eps=1e-5, **kw))
        self.head = torch.nn.Linear(dim, out_dim, **kw)

    def reset_parameters(self):
        _reset_all(self)

    def forward(self, X: torch.Tensor, opt_step, Z: torch.Tensor) -> torch.Tensor:
        steps = _check_inputs("CondTransformerRegressor", X, opt_step, Z, self.in_dim, self.cond_dim, self.in_horizon,
                              self.cond_horizon)
        tx, tz = X.shape[1], Z.shape[1]
        cond = torch.cat([sinusoidal_embedding(steps, self.embedding_dim).unsqueeze(1), self.cond_emb(Z)], 1)
        cond = self.dropout(cond + self.cond_pos_emb[:, :tz + 1])
        if self.num_cond_layers > 0:
            for layer in self.cond_encoder:
                cond = layer(cond)
        else:
            cond = self.cond_mlp(cond)
        x = self.dropout(self.input_emb(X) + self.pos_emb[:, :tx])
        self_mask = cross_mask = None
        if self.causal_attn:
            self_mask, cross_mask = _causal_masks(tx, tz + 1, X.device)
        for layer in self.decoder:
            x = layer(x, cond, self_mask, cross_mask)
        return self.head(self.norm(x))

    def extra_repr(self) -> str:
        return (f"in={self.in_dim}, cond={self.cond_dim}, out={self.out_dim}, embedding={self.embedding_dim}, "
                f"layers={self.num_layers}, cond_layers={self.num_cond_layers}, heads={self.num_attention_heads}, "
                f"causal={self.causal_attn}, norm={self.norm_module}")

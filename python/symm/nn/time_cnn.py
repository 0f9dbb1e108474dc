"""Time-series encoders of symm_learning's models.time_cnn, and its plain MLP.

eTimeCNNEncoder: eConv1d blocks (each halving the horizon by a stride-2 convolution or a max pool), an optional
eRMSNorm over the channels, a pointwise activation (hidden channels are whole regular copies in the permutation
basis, where it commutes with the group), then an eMLP head, or an iMLP head when out_rep is trivial. TimeCNNEncoder
and MLP: the same from torch.nn modules, the unconstrained baselines. All three have the C++ modules' state_dict
keys, so ``symm.save`` / ``symm.load`` exchange checkpoints with C++ ``symm::save`` / ``symm::load``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import ops
from .activation import check_activation
from .conv import eConv1d
from .mlp import DEFAULT_ACTIVATION, _regular_copies, eMLP, hidden_regular, iMLP
from .module import InputError, check_device_and_dtype, check_features, eModule
from .normalization import eRMSNorm

__all__ = ["MLP", "eTimeCNNEncoder", "TimeCNNEncoder"]

_DOWNSAMPLES = ("stride", "pooling")


def _activation(activation):
    """symm_learning's shared default ReLU becomes the model's own."""
    return torch.nn.ReLU() if activation is DEFAULT_ACTIVATION else activation


def _horizon_after(name: str, horizon: int, blocks: int, downsample: str) -> int:
    """Frames left after the blocks: ceil(H/2) per stride-2 convolution, floor(H/2) per max pool."""
    if downsample not in _DOWNSAMPLES:
        raise ValueError(f"{name}: downsample must be 'stride' or 'pooling', got {downsample!r}")
    if int(horizon) <= 0:
        raise ValueError(f"{name}: expected a time horizon > 0, got {horizon}")
    if blocks == 0:
        raise ValueError(f"{name}: hidden_channels must hold at least one convolution block")
    h = int(horizon)
    for _ in range(blocks):
        h = (h + 1) // 2 if downsample == "stride" else h // 2
    if h <= 0:
        raise ValueError(f"{name}: a horizon of {horizon} is too short for {blocks} pooling blocks (each halves it)")
    return h


def _check_series(name: str, x, channels: int, horizon: int, like: torch.Tensor):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected the input to be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3 or x.shape[1] != channels or x.shape[2] != horizon:
        raise InputError(f"{name}: expected an input (N, {channels}, {horizon}), got shape {tuple(x.shape)}")
    check_device_and_dtype(name, x, like)


def _positive_widths(name: str, what: str, widths) -> list[int]:
    widths = [int(w) for w in widths]
    if any(w <= 0 for w in widths):
        raise ValueError(f"{name}: {what} must be positive, got {widths}")
    return widths


class MLP(torch.nn.Module):
    """Linear → (BatchNorm1d) → activation per hidden layer, then a linear head; x (..., in_dim) → (..., out_dim).
    ``activation`` is one module for every hidden layer or a list of one per layer, as symm_learning's."""

    def __init__(self, in_dim: int, out_dim: int, hidden_units, activation=DEFAULT_ACTIVATION, batch_norm: bool = False,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        if in_dim <= 0 or out_dim <= 0:
            raise ValueError(f"MLP: expected in_dim and out_dim > 0, got {in_dim} and {out_dim}")
        hidden_units = _positive_widths("MLP", "hidden_units", hidden_units)
        if not hidden_units:
            raise ValueError("MLP: hidden_units must hold at least one layer (without, use a Linear)")
        if isinstance(activation, (list, tuple)):
            if len(activation) != len(hidden_units):
                raise ValueError(f"MLP: expected one activation per hidden layer ({len(hidden_units)}), got "
                                 f"{len(activation)}")
            activations = list(activation)
        else:
            activations = [_activation(activation)] * len(hidden_units)
        self.in_dim, self.out_dim, self.hidden_units, self.batch_norm = in_dim, out_dim, hidden_units, batch_norm
        widths = [in_dim, *hidden_units, out_dim]
        factory = dict(device=device, dtype=dtype)
        self.linears = torch.nn.ModuleList(torch.nn.Linear(a, b, bias=bias, **factory)
                                           for a, b in zip(widths[:-1], widths[1:]))
        self.batch_norms = torch.nn.ModuleList(torch.nn.BatchNorm1d(u, **factory) for u in hidden_units) if batch_norm \
            else torch.nn.ModuleList()
        self.activations = torch.nn.ModuleList(activations)

    def reset_parameters(self):
        for m in [*self.linears, *self.batch_norms]:
            m.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() == 0 or x.shape[-1] != self.in_dim:
            raise InputError(f"MLP: expected an input with last dimension {self.in_dim}, got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        for i, act in enumerate(self.activations):
            x = self.linears[i](x)
            if self.batch_norm:
                x = self.batch_norms[i](x)
            x = act(x)
        return self.linears[-1](x)

    def extra_repr(self) -> str:
        return f"in={self.in_dim}, hidden={self.hidden_units}, out={self.out_dim}, batch_norm={self.batch_norm}"


class eTimeCNNEncoder(eModule):
    """x (N, in_rep.size, time_horizon) → (N, out_rep.size): f(ρ_in(g)x) = ρ_out(g) f(x) (an invariant f when
    out_rep has trivial irreps only). Each block is eConv1d(kernel 3, padding 1; stride 2 with downsample='stride')
    → eRMSNorm over the channels (batch_norm, eps 1e-6) → activation (→ max pool 2 with 'pooling'); each block's
    width is rounded up to whole regular copies. The features are flattened frame after frame (head_in_rep is the
    last block's representation once per remaining frame, then in_rep with append_last_frame). Every hidden width,
    of the blocks and the head, is copies of hidden_rep (default: Representation.regular; see
    symm.nn.mlp.hidden_regular)."""

    def __init__(self, in_rep, out_rep, hidden_channels, time_horizon: int, activation=DEFAULT_ACTIVATION,
                 batch_norm: bool = False, bias: bool = True, mlp_hidden=(128,), downsample: str = "stride",
                 append_last_frame: bool = False, init_scheme: str | None = "xavier_uniform", device=None, dtype=None,
                 hidden_rep=None):
        super().__init__(in_rep, out_rep)
        name = "eTimeCNNEncoder"
        G = in_rep.group
        if out_rep.group != G:
            raise ValueError(f"{name}: in_rep is of {G.name} but out_rep of {out_rep.group.name}")
        hidden_channels = _positive_widths(name, "hidden_channels", hidden_channels)
        self.time_horizon = int(time_horizon)
        self.time_horizon_out = _horizon_after(name, self.time_horizon, len(hidden_channels), downsample)
        init_scheme = "xavier_uniform" if init_scheme is None else init_scheme
        self.downsample, self.append_last_frame, self.batch_norm = downsample, append_last_frame, batch_norm
        self.bias, self.init_scheme, self.mlp_hidden = bias, init_scheme, list(mlp_hidden)
        stride = 2 if downsample == "stride" else 1
        self.hidden_rep = hidden_regular(name, G, hidden_rep)
        reps = [in_rep] + [_regular_copies(G, c, self.hidden_rep) for c in hidden_channels]
        factory = dict(device=device, dtype=dtype)
        self.convs = torch.nn.ModuleList(eConv1d(a, b, 3, init_scheme=init_scheme, stride=stride, padding=1, bias=bias,
                                                 **factory) for a, b in zip(reps[:-1], reps[1:]))
        self.norms = torch.nn.ModuleList(eRMSNorm(r, eps=1e-6, **factory) for r in reps[1:]) if batch_norm \
            else torch.nn.ModuleList()
        for copies in {r.size // G.order for r in reps[1:]}:
            check_activation(name, activation, G, copies)
        self.activation = _activation(activation)
        # Where a block's convolution runs in the isotypic basis, its norm runs there too (the mean square is the
        # same in any orthonormal basis, and the affine's scales are diagonal there): the convolution's last
        # change of basis then carries the scales, and the dense (D, D) scale map goes.
        self._fused = []
        for i, conv in enumerate(self.convs):
            fused = batch_norm and conv.isotypic and self.norms[i].affine is not None and \
                torch.equal(self.norms[i].affine._masters["_q"], reps[i + 1].change_of_basis)
            self._fused.append(bool(fused))
            if fused:
                columns = conv.iso_columns_out()
                self._constant(f"_iso_copy{i}", self.norms[i].affine._masters["_copy_of"].index_select(0, columns))
        head_in = reps[-1].copies(self.time_horizon_out)
        self.head_in_rep = head_in + in_rep if append_last_frame else head_in
        if all(G.irreps[k].is_trivial for k in out_rep.irreps):
            self.head = iMLP(self.head_in_rep, out_rep.size, self.mlp_hidden, activation=self.activation, bias=bias,
                             init_scheme=init_scheme, hidden_rep=self.hidden_rep, **factory)
        else:
            self.head = eMLP(self.head_in_rep, out_rep, self.mlp_hidden, activation=self.activation, bias=bias,
                             init_scheme=init_scheme, hidden_rep=self.hidden_rep, **factory)
        self._place(device, None)

    def reset_parameters(self):
        self._reset_constants()
        for m in [*self.convs, *self.norms, self.head]:
            m.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_series("eTimeCNNEncoder", x, self.in_rep.size, self.time_horizon, self.convs[0].weight_dof)
        h = x
        for i, conv in enumerate(self.convs):
            if self._fused[i]:
                h = self._fused_block(i, conv, h)
            else:
                h = conv(h)
                if self.batch_norm:  # eRMSNorm over the channels, dim 1 here
                    norm = self.norms[i]
                    check_features("eRMSNorm", h.transpose(1, 2), norm.in_features)
                    h = ops.rms_normalise(h, norm.eps, 1)
                    if norm.affine is not None:
                        h = norm.affine(h.transpose(1, 2)).transpose(1, 2)
            h = self.activation(h)
            if self.downsample == "pooling":
                h = F.max_pool1d(h, 2, 2)
        z = h.transpose(1, 2).reshape(x.shape[0], -1)  # time-major: frame after frame, as head_in_rep
        if self.append_last_frame:
            z = torch.cat([z, x[:, :, -1]], 1)
        return self.head(z)

    def _fused_block(self, i, conv, h):
        """conv → eRMSNorm in the convolution's isotypic basis: w (B, m, b, T) normalised over its channels, then
        y = Q̃ diag(scales) w per copy."""
        norm = self.norms[i]
        w = conv.forward_isotypic(h)
        n, m, b, t = w.shape
        w = ops.rms_normalise(w.view(n, m * b, t), norm.eps, 1).view(n, m, b, t)
        scale = norm.affine.scale_dof.index_select(0, getattr(self, f"_iso_copy{i}")).view(m, 1, b)
        return torch.matmul(conv._iso_q_out * scale, w).view(n, m * b, t)

    def extra_repr(self) -> str:
        return (f"in={self.in_rep.name}, out={self.out_rep.name}, blocks={len(self.convs)}, downsample={self.downsample}, "
                f"horizon={self.time_horizon}->{self.time_horizon_out}, head={type(self.head).__name__}")


class TimeCNNEncoder(torch.nn.Module):
    """The unconstrained baseline: x (N, in_dim, horizon) → (N, out_dim) through torch.nn.Conv1d blocks (RMS
    normalisation over the channels with normalize, eps 1e-6, a learnable weight per block), flattened channel-major
    as symm_learning's, and an MLP head whose last weight is orthogonal at initialisation."""

    def __init__(self, in_dim: int, out_dim: int, hidden_channels, horizon: int, activation=DEFAULT_ACTIVATION,
                 normalize: bool = False, bias: bool = True, mlp_hidden=(128,), downsample: str = "stride",
                 append_last_frame: bool = False, init_scheme: str | None = "xavier_uniform", device=None, dtype=None):
        super().__init__()
        name = "TimeCNNEncoder"
        if in_dim <= 0 or out_dim <= 0:
            raise ValueError(f"{name}: expected in_dim and out_dim > 0, got {in_dim} and {out_dim}")
        hidden_channels = _positive_widths(name, "hidden_channels", hidden_channels)
        self.in_dim, self.out_dim, self.horizon_in = in_dim, out_dim, int(horizon)
        self.horizon_out = _horizon_after(name, self.horizon_in, len(hidden_channels), downsample)
        # init_scheme is symm_learning's argument; its baseline keeps torch's initialisation either way.
        self.normalize, self.downsample, self.append_last_frame = normalize, downsample, append_last_frame
        stride = 2 if downsample == "stride" else 1
        widths = [in_dim, *hidden_channels]
        factory = dict(device=device, dtype=dtype)
        self.convs = torch.nn.ModuleList(torch.nn.Conv1d(a, b, 3, stride=stride, padding=1, bias=bias, **factory)
                                         for a, b in zip(widths[:-1], widths[1:]))
        self.norm_weights = torch.nn.ParameterList(torch.nn.Parameter(torch.ones(c, **factory))
                                                   for c in hidden_channels) if normalize else torch.nn.ParameterList()
        self.activation = _activation(activation)
        flat = widths[-1] * self.horizon_out + (in_dim if append_last_frame else 0)
        self.head = MLP(flat, out_dim, list(mlp_hidden), activation=self.activation, bias=bias, **factory)
        self._orthogonal_head()

    @torch.no_grad()
    def _orthogonal_head(self):
        torch.nn.init.orthogonal_(self.head.linears[-1].weight)

    def reset_parameters(self):
        for conv in self.convs:
            conv.reset_parameters()
        with torch.no_grad():
            for w in self.norm_weights:
                w.fill_(1.0)
        self.head.reset_parameters()
        self._orthogonal_head()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_series("TimeCNNEncoder", x, self.in_dim, self.horizon_in, self.convs[0].weight)
        h = x
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if self.normalize:  # torch.nn.RMSNorm over the channels
                h = h * torch.rsqrt(h.square().mean(1, keepdim=True) + 1e-6) * self.norm_weights[i].view(1, -1, 1)
            h = self.activation(h)
            if self.downsample == "pooling":
                h = F.max_pool1d(h, 2, 2)
        z = h.reshape(x.shape[0], -1)  # channel-major, as symm_learning's baseline
        if self.append_last_frame:
            z = torch.cat([z, x[:, :, -1]], 1)
        return self.head(z)

    def extra_repr(self) -> str:
        return (f"in={self.in_dim}, out={self.out_dim}, blocks={len(self.convs)}, downsample={self.downsample}, "
                f"horizon={self.horizon_in}->{self.horizon_out}")

"""The diffusion-policy 1-D conditional U-Net (Chi et al. 2023) of symm_learning's models.diffusion, with the
C++ modules' (symm/nn/unet.h) structure and state_dict keys.

eConditionalUnet1D: every channel map an eConv1d / eConvTranspose1d, eRMSNorm over the channels, a pointwise
activation on regular copies in the permutation basis, and FiLM through a non-learnable eAffine whose scales (one
per irrep copy) and invariant bias are predicted from the irrep norms of the condition, which are invariant; so
f(ρ_X(g)x, ρ_Z(g)z, ρ_C(g)c, t) = ρ_X(g) f(x, z, c, t). ConditionalUnet1D: symm_learning's unconstrained baseline
on torch.nn modules, with its keys.

As the C++ modules, where symm_learning 0.8.1 cannot run these follow its documented contract (output length =
input length): every decoder stage of the equivariant U-Net up-samples to exactly 2L (output_padding 1), and its
second local-condition block is added at full resolution, after the decoder.
"""
from __future__ import annotations

import math

import torch

from .. import Representation
from .activation import check_activation
from .affine import eAffine
from .conv import eConv1d, eConvTranspose1d
from .mlp import DEFAULT_ACTIVATION, _regular_copies, hidden_regular
from .module import InputError, check_device_and_dtype, eModule
from .normalization import eRMSNorm
from .pooling import IrrepSubspaceNormPooling

__all__ = ["SinusoidalPosEmb", "eConditionalResidualBlock1D", "eConditionalUnet1D", "Conv1dBlock", "Downsample1d",
           "Upsample1d", "ConditionalResidualBlock1D", "ConditionalUnet1D"]


def _activation(activation):
    return torch.nn.ReLU() if activation is DEFAULT_ACTIVATION else activation


def _shape(t):
    return tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__


def _check_kernel(name, kernel_size):
    if kernel_size <= 0 or kernel_size % 2 != 1:
        raise ValueError(f"{name}: kernel_size must be odd (padding kernel_size/2 keeps the horizon), got {kernel_size}")


def _check_levels(name, down_dims, step_dim, kernel_size):
    down_dims = [int(d) for d in down_dims]
    if not down_dims:
        raise ValueError(f"{name}: down_dims must hold at least one level")
    if any(d <= 0 for d in down_dims):
        raise ValueError(f"{name}: down_dims must be positive, got {down_dims}")
    if step_dim < 2 or step_dim % 2:
        raise ValueError(f"{name}: diffusion_step_embed_dim must be even and >= 2 (sin and cos halves), got {step_dim}")
    _check_kernel(name, kernel_size)
    return down_dims


def _check_sample(name, x, channels, multiple, like):
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[1] != channels:
        raise InputError(f"{name}: expected a sample (B, {channels}, L), got {_shape(x)}")
    if x.shape[2] == 0 or x.shape[2] % multiple:
        raise InputError(f"{name}: the horizon L must be a positive multiple of {multiple} (each of the down-samplings "
                         f"halves it and the decoder doubles it back), got L = {x.shape[2]}")
    check_device_and_dtype(name, x, like, "sample")


def _check_cond(name, what, t, width, batch, where):
    """A condition of shape (B, width) (or, where given, (B, width, L)) that the model was built for."""
    if width is None:
        if t is not None:
            raise InputError(f"{name}: a {what} was given but the model has no {where}")
        return
    if t is None:
        raise InputError(f"{name}: expected a {what} of shape ({batch}, {width}) for its {where}, got None")
    if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[0] != batch or t.shape[1] != width:
        raise InputError(f"{name}: expected a {what} ({batch}, {width}), got {_shape(t)}")


def _timesteps(name, t, sample):
    """Timesteps as symm_learning takes them (a number, a scalar, (1) or (B)), as (B) in the sample's dtype."""
    b = sample.shape[0]
    t = torch.as_tensor(t, device=sample.device)
    if not (t.dim() == 0 or (t.dim() == 1 and t.shape[0] in (1, b))):
        raise InputError(f"{name}: expected a timestep that is a scalar, (1) or ({b}), got shape {tuple(t.shape)}")
    return t.reshape(-1).to(sample.dtype).expand(b)


def _step_encoder(d, factory):
    return torch.nn.Sequential(SinusoidalPosEmb(d), torch.nn.Linear(d, 4 * d, **factory), torch.nn.Mish(),
                               torch.nn.Linear(4 * d, d, **factory))


def _levels(down, mid, up, x, cond, after_first=None):
    """Both U-Nets' levels: each encoder level two blocks (after_first, if given, added after the very first) and a
    down-sampler, keeping its output as a skip; the middle blocks; each decoder level the input joined with the
    skips in reverse, two blocks and an up-sampler."""
    skips = []
    for i, (first, second, resample) in enumerate(down):
        x = first(x, cond)
        if i == 0 and after_first is not None:
            x = x + after_first
        x = second(x, cond)
        skips.append(x)
        x = resample(x)
    for block in mid:
        x = block(x, cond)
    for first, second, resample in up:
        x = resample(second(first(torch.cat([x, skips.pop()], 1), cond), cond))
    return x


class SinusoidalPosEmb(torch.nn.Module):
    """emb(t) = [sin(t·ω_i), cos(t·ω_i)], ω_i = 10000^(−i/(dim/2 − 1)), i < dim/2: timesteps (B) → (B, dim)."""

    def __init__(self, dim: int):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"SinusoidalPosEmb: dim must be even and >= 2, got {dim}")
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.Tensor) or t.dim() != 1:
            raise InputError(f"SinusoidalPosEmb: expected timesteps (B), got {_shape(t)}")
        t = t if t.is_floating_point() else t.to(torch.get_default_dtype())
        half = self.dim // 2
        freq = torch.exp(torch.arange(half, device=t.device, dtype=t.dtype) * -(math.log(10000.0) / max(half - 1, 1)))
        arg = t[:, None] * freq[None, :]
        return torch.cat([arg.sin(), arg.cos()], -1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


# ---------------------------------------------------------------------------------------------------------------
# Equivariant


class eConditionalResidualBlock1D(eModule):
    """y = act(norm2(conv2(FiLM_c(act(norm1(conv1(x))))))) + residual(x); FiLM_c is a non-learnable eAffine with the
    scales and bias mish(Linear(irrep norms of c)), invariant in c. x (B, in_rep.size, L), cond (B, cond_rep.size);
    out_rep must be regular copies in the permutation basis (the activation is pointwise)."""

    def __init__(self, in_rep, out_rep, cond_rep, kernel_size: int = 3, cond_predict_scale: bool = True,
                 activation=DEFAULT_ACTIVATION, normalize: bool = True, init_scheme: str | None = "xavier_uniform",
                 device=None, dtype=None):
        super().__init__(in_rep, out_rep)
        name = "eConditionalResidualBlock1D"
        G = in_rep.group
        if out_rep.group != G or cond_rep.group != G:
            raise ValueError(f"{name}: in_rep, out_rep and cond_rep must be of one group, got {G.name}, "
                             f"{out_rep.group.name} and {cond_rep.group.name}")
        if not cond_predict_scale:
            raise ValueError(f"{name}: only cond_predict_scale=True is supported (as symm_learning)")
        _check_kernel(name, kernel_size)
        copies = out_rep.regular_copies
        if copies is None or not out_rep.same(_regular_copies(G, copies * G.order)):
            raise ValueError(f"{name}: out_rep must be regular copies in the permutation basis (the activation is "
                             f"pointwise), got {out_rep.name}")
        check_activation(name, activation, G, copies)
        init_scheme = "xavier_uniform" if init_scheme is None else init_scheme
        self.cond_rep, self.kernel_size, self.normalize, self.init_scheme = cond_rep, kernel_size, normalize, init_scheme
        factory = dict(device=device, dtype=dtype)

        def conv(a, b, k):
            return eConv1d(a, b, k, init_scheme=init_scheme, padding=k // 2, **factory)

        self.conv1 = conv(in_rep, out_rep, kernel_size)
        self.conv2 = conv(out_rep, out_rep, kernel_size)
        self.norm1 = eRMSNorm(out_rep, eps=1e-6, **factory) if normalize else None
        self.norm2 = eRMSNorm(out_rep, eps=1e-6, **factory) if normalize else None
        self.activation = _activation(activation)
        self.affine = eAffine(out_rep, learnable=False, **factory)
        self.film_dims = self.affine.num_copies + self.affine.num_fix
        pool = IrrepSubspaceNormPooling(cond_rep, **factory)
        self.cond_encoder = torch.nn.Sequential(pool, torch.nn.Linear(pool.num_copies, self.film_dims, **factory),
                                                torch.nn.Mish())
        self.residual_conv = None if in_rep.same(out_rep) else conv(in_rep, out_rep, 1)

    def reset_parameters(self):
        for m in (self.conv1, self.conv2, self.norm1, self.norm2, self.affine, self.cond_encoder[0],
                  self.cond_encoder[1], self.residual_conv):
            if m is not None:
                m.reset_parameters()

    def _norm(self, norm, x):
        return x if norm is None else norm(x.transpose(1, 2)).transpose(1, 2)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        name = "eConditionalResidualBlock1D"
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[1] != self.in_rep.size:
            raise InputError(f"{name}: expected an input (B, {self.in_rep.size}, L), got {_shape(x)}")
        if not isinstance(cond, torch.Tensor) or cond.dim() != 2 or cond.shape[0] != x.shape[0] \
                or cond.shape[1] != self.cond_rep.size:
            raise InputError(f"{name}: expected a condition ({x.shape[0]}, {self.cond_rep.size}), got {_shape(cond)}")
        h = self.activation(self._norm(self.norm1, self.conv1(x)))
        film = self.cond_encoder(cond).unsqueeze(1)  # (B, 1, film_dims): the same FiLM at every frame
        nc, nf = self.affine.num_copies, self.affine.num_fix
        h = self.affine(h.transpose(1, 2), film[..., :nc], film[..., nc:] if nf else None).transpose(1, 2)
        h = self.activation(self._norm(self.norm2, self.conv2(h)))
        return h + (x if self.residual_conv is None else self.residual_conv(x))

    def extra_repr(self) -> str:
        return (f"in={self.in_rep.name}, out={self.out_rep.name}, cond={self.cond_rep.name}, "
                f"kernel_size={self.kernel_size}, normalize={self.normalize}")


class eConditionalUnet1D(eModule):
    """sample (B, in_rep.size, L), timestep (a number, a scalar tensor, (1) or (B)), local_cond
    (B, local_cond_rep.size, L), film_cond (B, global_cond_rep.size) → (B, in_rep.size, L); L must be a multiple of
    horizon_multiple = 2^(levels − 1). Each level's width is rounded up to whole regular copies; cond_rep is
    global_cond_rep ⊕ diffusion_step_embed_dim trivial copies (the invariant step embedding). The levels are copies
    of hidden_rep (default: Representation.regular; see symm.nn.mlp.hidden_regular), whose irrep copies the norms
    and the FiLM scale."""

    def __init__(self, in_rep, local_cond_rep=None, global_cond_rep=None, diffusion_step_embed_dim: int = 256,
                 down_dims=(256, 512, 1024), kernel_size: int = 3, cond_predict_scale: bool = True,
                 activation=DEFAULT_ACTIVATION, normalize: bool = True, downsample: str = "stride",
                 init_scheme: str | None = "xavier_uniform", device=None, dtype=None, hidden_rep=None):
        super().__init__(in_rep)
        name = "eConditionalUnet1D"
        G = in_rep.group
        down_dims = _check_levels(name, down_dims, diffusion_step_embed_dim, kernel_size)
        if downsample not in ("stride", "pooling"):
            raise ValueError(f"{name}: downsample must be 'stride' or 'pooling', got {downsample!r}")
        for rep in (local_cond_rep, global_cond_rep):
            if rep is not None and rep.group != G:
                raise ValueError(f"{name}: the condition representations must be of in_rep's group {G.name}, got "
                                 f"{rep.group.name}")
        init_scheme = "xavier_uniform" if init_scheme is None else init_scheme
        self.local_cond_rep, self.global_cond_rep = local_cond_rep, global_cond_rep
        self.diffusion_step_embed_dim, self.down_dims, self.downsample = diffusion_step_embed_dim, down_dims, downsample
        self.kernel_size, self.normalize, self.init_scheme = kernel_size, normalize, init_scheme
        self.horizon_multiple = 1 << (len(down_dims) - 1)
        self.hidden_rep = hidden_regular(name, G, hidden_rep)
        reps = [in_rep] + [_regular_copies(G, d, self.hidden_rep) for d in down_dims]
        steps = Representation.trivial(G, diffusion_step_embed_dim)
        self.cond_rep = steps if global_cond_rep is None else global_cond_rep + steps
        activation = _activation(activation)
        self.activation = activation
        factory = dict(device=device, dtype=dtype)

        def res(a, b):
            return eConditionalResidualBlock1D(a, b, self.cond_rep, kernel_size, cond_predict_scale, activation,
                                               normalize, init_scheme, **factory)

        def stride2(rep, transposed):
            if transposed:  # output_padding 1: exactly 2L frames
                return eConvTranspose1d(rep, rep, 3, init_scheme=init_scheme, stride=2, padding=1, output_padding=1,
                                        **factory)
            return eConv1d(rep, rep, 3, init_scheme=init_scheme, stride=2, padding=1, **factory)

        self.diffusion_step_encoder = _step_encoder(diffusion_step_embed_dim, factory)
        self.local_cond_encoder = None if local_cond_rep is None else \
            torch.nn.ModuleList([res(local_cond_rep, reps[1]), res(local_cond_rep, reps[1])])
        levels = len(down_dims)
        self.down_modules = torch.nn.ModuleList()
        for i in range(levels):
            if i + 1 == levels:
                down = torch.nn.Identity()
            else:
                down = stride2(reps[i + 1], False) if downsample == "stride" else torch.nn.MaxPool1d(2, 2)
            self.down_modules.append(torch.nn.ModuleList([res(reps[i], reps[i + 1]), res(reps[i + 1], reps[i + 1]), down]))
        self.mid_modules = torch.nn.ModuleList([res(reps[-1], reps[-1]), res(reps[-1], reps[-1])])
        # Decoder: levels − 1 stages, deepest first, each undoing one down-sampling (the skip of level 0 is unused,
        # as in the diffusion-policy original); x and the skip of level i arrive in reps[i + 1].
        self.up_modules = torch.nn.ModuleList()
        for i in range(levels - 1, 0, -1):
            up = stride2(reps[i], True) if downsample == "stride" else torch.nn.Upsample(scale_factor=2, mode="nearest")
            self.up_modules.append(torch.nn.ModuleList([res(reps[i + 1] + reps[i + 1], reps[i]), res(reps[i], reps[i]), up]))
        self.final_conv = eConv1d(reps[1], reps[1], kernel_size, init_scheme=init_scheme, padding=kernel_size // 2,
                                  **factory)
        self.final_norm = eRMSNorm(reps[1], eps=1e-6, **factory) if normalize else None
        self.final_proj = eConv1d(reps[1], in_rep, 1, init_scheme=init_scheme, **factory)

    def reset_parameters(self):
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, sample: torch.Tensor, timestep, local_cond: torch.Tensor | None = None,
                film_cond: torch.Tensor | None = None) -> torch.Tensor:
        name = "eConditionalUnet1D"
        _check_sample(name, sample, self.in_rep.size, self.horizon_multiple, self.final_proj.weight_dof)
        b, horizon = sample.shape[0], sample.shape[2]
        _check_cond(name, "film_cond", film_cond, None if self.global_cond_rep is None else self.global_cond_rep.size,
                    b, "global_cond_rep")
        if self.local_cond_rep is None:
            _check_cond(name, "local_cond", local_cond, None, b, "local_cond_rep")
        elif local_cond is not None:
            c = self.local_cond_rep.size
            if not isinstance(local_cond, torch.Tensor) or local_cond.dim() != 3 or local_cond.shape[0] != b \
                    or local_cond.shape[1] != c or local_cond.shape[2] != horizon:
                raise InputError(f"{name}: expected a local_cond ({b}, {c}, {horizon}), got {_shape(local_cond)}")
        steps = self.diffusion_step_encoder(_timesteps(name, timestep, sample))
        cond = steps if film_cond is None else torch.cat([film_cond, steps], -1)
        local = None if local_cond is None else [block(local_cond, cond) for block in self.local_cond_encoder]
        x = _levels(self.down_modules, self.mid_modules, self.up_modules, sample, cond,
                    None if local is None else local[0])
        if local is not None:
            x = x + local[1]
        x = self.final_conv(x)
        if self.final_norm is not None:
            x = self.final_norm(x.transpose(1, 2)).transpose(1, 2)
        return self.final_proj(self.activation(x))

    def extra_repr(self) -> str:
        s = f"in={self.in_rep.name}"
        if self.local_cond_rep is not None:
            s += f", local_cond={self.local_cond_rep.name}"
        if self.global_cond_rep is not None:
            s += f", global_cond={self.global_cond_rep.name}"
        return s + f", step_embed={self.diffusion_step_embed_dim}, down_dims={self.down_dims}, downsample={self.downsample}"


# ---------------------------------------------------------------------------------------------------------------
# Plain baseline


class Conv1dBlock(torch.nn.Module):
    """Conv1d(padding k/2) → GroupNorm(n_groups) → Mish (keys block.0 … block.2, as symm_learning's)."""

    def __init__(self, inp_channels: int, out_channels: int, kernel_size: int, n_groups: int = 8):
        super().__init__()
        if n_groups <= 0 or out_channels % n_groups:
            raise ValueError(f"Conv1dBlock: n_groups={n_groups} must divide the GroupNorm's {out_channels} channels")
        self.inp_channels, self.out_channels, self.kernel_size, self.n_groups = inp_channels, out_channels, kernel_size, n_groups
        self.block = torch.nn.Sequential(torch.nn.Conv1d(inp_channels, out_channels, kernel_size, padding=kernel_size // 2),
                                         torch.nn.GroupNorm(n_groups, out_channels), torch.nn.Mish())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class Downsample1d(torch.nn.Module):
    """Conv1d(dim, dim, 3, stride 2, padding 1): halves the horizon."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.conv = torch.nn.Conv1d(dim, dim, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample1d(torch.nn.Module):
    """ConvTranspose1d(dim, dim, 4, stride 2, padding 1): doubles the horizon exactly."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.conv = torch.nn.ConvTranspose1d(dim, dim, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ConditionalResidualBlock1D(torch.nn.Module):
    """y = blocks[1](FiLM_c(blocks[0](x))) + residual(x), FiLM from mish(Linear(c)) (scale and bias with
    cond_predict_scale, a bias only otherwise); x (B, in_channels, L), cond (B, cond_dim)."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int = 3, n_groups: int = 8,
                 cond_predict_scale: bool = False):
        super().__init__()
        name = "ConditionalResidualBlock1D"
        if min(in_channels, out_channels, cond_dim) <= 0:
            raise ValueError(f"{name}: expected positive widths, got in_channels={in_channels}, "
                             f"out_channels={out_channels}, cond_dim={cond_dim}")
        _check_kernel(name, kernel_size)
        self.in_channels, self.out_channels, self.cond_dim = in_channels, out_channels, cond_dim
        self.kernel_size, self.n_groups, self.cond_predict_scale = kernel_size, n_groups, cond_predict_scale
        self.blocks = torch.nn.ModuleList([Conv1dBlock(in_channels, out_channels, kernel_size, n_groups),
                                           Conv1dBlock(out_channels, out_channels, kernel_size, n_groups)])
        film = out_channels * (2 if cond_predict_scale else 1)
        self.cond_encoder = torch.nn.Sequential(torch.nn.Linear(cond_dim, film), torch.nn.Mish())
        self.residual_conv = torch.nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        name = "ConditionalResidualBlock1D"
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[1] != self.in_channels:
            raise InputError(f"{name}: expected an input (B, {self.in_channels}, L), got {_shape(x)}")
        if not isinstance(cond, torch.Tensor) or cond.dim() != 2 or cond.shape[0] != x.shape[0] \
                or cond.shape[1] != self.cond_dim:
            raise InputError(f"{name}: expected a condition ({x.shape[0]}, {self.cond_dim}), got {_shape(cond)}")
        h = self.blocks[0](x)
        embed = self.cond_encoder(cond).unsqueeze(-1)  # (B, film, 1)
        if self.cond_predict_scale:
            sb = embed.view(x.shape[0], 2, self.out_channels, 1)
            h = sb[:, 0] * h + sb[:, 1]
        else:
            h = h + embed
        h = self.blocks[1](h)
        return h + (x if self.residual_conv is None else self.residual_conv(x))

    def extra_repr(self) -> str:
        return f"in={self.in_channels}, out={self.out_channels}, cond={self.cond_dim}"


class ConditionalUnet1D(torch.nn.Module):
    """symm_learning's baseline: sample (B, input_dim, L), timestep (a number, a scalar, (1) or (B)), local_cond
    (B, local_cond_dim), repeated over time and joined to the sample, film_cond (B, global_cond_dim) →
    (B, input_dim, L); L must be a multiple of 2^(levels − 1). n_groups must divide every width."""

    def __init__(self, input_dim: int, local_cond_dim: int | None = None, global_cond_dim: int | None = None,
                 diffusion_step_embed_dim: int = 16, down_dims=(32, 64), kernel_size: int = 3, n_groups: int = 1,
                 cond_predict_scale: bool = True):
        super().__init__()
        name = "ConditionalUnet1D"
        if input_dim <= 0:
            raise ValueError(f"{name}: input_dim must be positive, got {input_dim}")
        down_dims = _check_levels(name, down_dims, diffusion_step_embed_dim, kernel_size)
        for d in (local_cond_dim, global_cond_dim):
            if d is not None and d <= 0:
                raise ValueError(f"{name}: local_cond_dim and global_cond_dim must be positive when given, got {d}")
        start = input_dim + (local_cond_dim or 0)
        if n_groups <= 0 or any(w % n_groups for w in [start, *down_dims]):
            raise ValueError(f"{name}: n_groups={n_groups} must divide input_dim + local_cond_dim = {start} and every "
                             f"width of down_dims {down_dims}")
        self.input_dim, self.local_cond_dim, self.global_cond_dim = input_dim, local_cond_dim, global_cond_dim
        self.diffusion_step_embed_dim, self.down_dims = diffusion_step_embed_dim, down_dims
        self.kernel_size, self.n_groups, self.cond_predict_scale = kernel_size, n_groups, cond_predict_scale
        self.horizon_multiple = 1 << (len(down_dims) - 1)
        cond_dim = diffusion_step_embed_dim + (global_cond_dim or 0)

        def res(a, b):
            return ConditionalResidualBlock1D(a, b, cond_dim, kernel_size, n_groups, cond_predict_scale)

        dims = [start, *down_dims]
        levels = len(down_dims)
        self.diffusion_step_encoder = _step_encoder(diffusion_step_embed_dim, {})
        self.down_modules = torch.nn.ModuleList(
            torch.nn.ModuleList([res(dims[i], dims[i + 1]), res(dims[i + 1], dims[i + 1]),
                                 torch.nn.Identity() if i + 1 == levels else Downsample1d(dims[i + 1])])
            for i in range(levels))
        self.mid_modules = torch.nn.ModuleList([res(dims[-1], dims[-1]), res(dims[-1], dims[-1])])
        # symm_learning's decoder: every level, deepest first, ending at the input width (all skips used).
        self.up_modules = torch.nn.ModuleList(
            torch.nn.ModuleList([res(2 * dims[i + 1], dims[i]), res(dims[i], dims[i]),
                                 torch.nn.Identity() if i == 0 else Upsample1d(dims[i])])
            for i in range(levels - 1, -1, -1))
        self.final_conv = torch.nn.Sequential(Conv1dBlock(start, start, kernel_size, n_groups),
                                              torch.nn.Conv1d(start, input_dim, 1))

    def forward(self, sample: torch.Tensor, timestep, local_cond: torch.Tensor | None = None,
                film_cond: torch.Tensor | None = None) -> torch.Tensor:
        name = "ConditionalUnet1D"
        _check_sample(name, sample, self.input_dim, self.horizon_multiple, self.final_conv[1].weight)
        b = sample.shape[0]
        _check_cond(name, "film_cond", film_cond, self.global_cond_dim, b, "global_cond_dim")
        _check_cond(name, "local_cond", local_cond, self.local_cond_dim, b, "local_cond_dim")
        steps = self.diffusion_step_encoder(_timesteps(name, timestep, sample))
        cond = steps if film_cond is None else torch.cat([film_cond, steps], -1)
        x = sample if local_cond is None else \
            torch.cat([sample, local_cond.unsqueeze(-1).expand(-1, -1, sample.shape[2])], 1)
        return self.final_conv(_levels(self.down_modules, self.mid_modules, self.up_modules, x, cond))

    def extra_repr(self) -> str:
        s = f"input_dim={self.input_dim}"
        if self.local_cond_dim is not None:
            s += f", local_cond_dim={self.local_cond_dim}"
        if self.global_cond_dim is not None:
            s += f", global_cond_dim={self.global_cond_dim}"
        return s + f", step_embed={self.diffusion_step_embed_dim}, down_dims={self.down_dims}"

"""eConv1d and eConvTranspose1d: 1-D (transposed) convolutions over time whose every tap commutes with the group
acting on the channels. Input (B, C_in, T) or (C_in, T) as torch's Conv1d, C_in = in_rep.size.

Each tap W_k ∈ Hom_G(ρ_in, ρ_out) is learned through its coefficients in the HomBasis that eLinear and the C++
convolutions use: ``weight_dof`` is (groups·K, dim), row g·K + k is tap k of channel group g; the bias lies in
Fix(ρ_out) (``bias_dof``, its coordinates in an orthonormal basis). The state dict is the C++ module's, so
``symm.save`` / ``symm.load`` exchange checkpoints with C++ ``symm::save`` / ``symm::load``. Stride, padding of any
mode, dilation and output padding act on every channel alike, so they commute with the channel action.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import ops
from .linear import _INIT_SCHEMES, init_coefficients
from .module import EvalCache, InputError, check_device_and_dtype, eModule

__all__ = ["eConv1d", "eConvTranspose1d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_BASIS_EXPANSIONS = ("isotypic_expansion", "memory_heavy")


def _positive_int(module, name, value, minimum=1):
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{module}: expected {name} to be an int >= {minimum}, got {value!r}")
    return int(value)


class _eConvBase(eModule):
    _NAME = ""
    _TRANSPOSED = False

    def __init__(self, in_rep, out_rep, kernel_size, basis_expansion, init_scheme, stride, padding, output_padding,
                 dilation, groups, bias, padding_mode, device, dtype):
        super().__init__(in_rep, out_rep)
        name = self._NAME
        if in_rep.group != out_rep.group:
            raise ValueError(f"{name}: in_rep is of group {in_rep.group.name} but out_rep of {out_rep.group.name}")
        if basis_expansion not in _BASIS_EXPANSIONS:
            raise ValueError(f"{name}: unknown basis_expansion {basis_expansion!r}: expected one of "
                             f"{', '.join(_BASIS_EXPANSIONS)} (both give the same maps here)")
        init_scheme = "xavier_uniform" if init_scheme is None else init_scheme
        if init_scheme not in _INIT_SCHEMES:
            raise ValueError(f"{name}: unknown init_scheme {init_scheme!r}: expected one of {', '.join(_INIT_SCHEMES)}")
        self.kernel_size = _positive_int(name, "kernel_size", kernel_size)
        self.stride = _positive_int(name, "stride", stride)
        self.dilation = _positive_int(name, "dilation", dilation)
        self.groups = _positive_int(name, "groups", groups)
        if isinstance(padding, str):
            if self._TRANSPOSED or padding not in ("valid", "same"):
                raise ValueError(f"{name}: expected padding to be an int >= 0"
                                 f"{'' if self._TRANSPOSED else ', valid or same'}, got {padding!r}")
            if padding == "same" and self.stride != 1:
                raise ValueError(f"{name}: padding='same' needs stride 1 (as torch's), got stride {self.stride}")
            self.padding = padding
        else:
            self.padding = _positive_int(name, "padding", padding, minimum=0)
        if padding_mode not in (("zeros",) if self._TRANSPOSED else _PADDING_MODES):
            allowed = "zeros (as torch's)" if self._TRANSPOSED else "zeros, reflect, replicate or circular"
            raise ValueError(f"{name}: padding_mode must be {allowed}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.output_padding = _positive_int(name, "output_padding", output_padding, minimum=0)
        if self._TRANSPOSED:
            if not (self.output_padding < self.stride or self.output_padding < self.dilation):
                raise ValueError(f"{name}: output_padding must be smaller than stride or dilation ({self.stride}, "
                                 f"{self.dilation}), got {self.output_padding}")
        elif self.output_padding != 0:
            raise ValueError(f"{name}: output_padding is for the transposed convolution, got {self.output_padding}")
        self.init_scheme, self.basis_expansion = init_scheme, basis_expansion
        self.in_channels, self.out_channels = in_rep.size, out_rep.size
        c = ops.conv_constants(name, in_rep, out_rep, self.groups, init_scheme)
        self._n_in, self._n_out = c.n_in, c.n_out
        self._layout, self._n_synthesis = c.linear.layout, len(c.linear.tensors)
        for i, t in enumerate(c.linear.tensors):
            self._constant(f"_synthesis{i}", t, dtype)
        self._constant("_init_std", c.init_std, dtype)
        self._constant("_fix", out_rep.invariant_basis, dtype)
        like = dict(device=self._fix.device, dtype=self._fix.dtype)
        self.weight_dof = torch.nn.Parameter(torch.empty(self.groups * self.kernel_size, c.dim, **like))
        n_fix = self._fix.shape[1]
        self.bias_dof = torch.nn.Parameter(torch.empty(n_fix, **like)) if bias and n_fix > 0 else None
        self._m_in_fix = in_rep.invariant_basis.shape[1]
        self._weight_cache, self._bias_cache = EvalCache(), EvalCache()
        plan = ops.conv_isotypic_plan(in_rep, out_rep, c.linear) if self.groups == 1 else None
        self.isotypic = plan is not None
        if plan is not None:
            self._iso_units, self._iso_widths = plan.units, (plan.widths(0), plan.widths(1))
            self._iso_m = (plan.m_in, plan.m_out, plan.r)
            for name in ("q_in", "q_out", "synthesis"):
                self._constant(f"_iso_{name}", getattr(plan, name), dtype)
            self._iso_columns_out = plan.columns_out  # the shared CPU master, read only
            # Fix(ρ_out) in each unit's output channels: the bias reaches only the units where it is nonzero (the
            # one of the trivial irrep), added by their convolutions.
            fix = out_rep.invariant_basis
            k, b = plan.m_out, plan.q_out.shape[0]
            pieces = (plan.q_out.T @ fix.reshape(k, b, -1)).split(self._iso_widths[1], 1)  # (k, width, n_fix)
            iso_fix = []
            for unit, f in zip(plan.units, pieces):
                nonzero = f.numel() > 0 and float(f.abs().max()) > 1e-12
                if nonzero and unit[0] == "kron":  # Fix(ρ) lies in the trivial irrep, never a Kronecker unit
                    raise AssertionError("eConv1d: an invariant bias on a Kronecker unit")
                iso_fix.append((f.transpose(0, 1) if unit[0] == "group" else f).reshape(-1, fix.shape[1])
                               if nonzero else None)
            self._iso_bias_units = tuple(j for j, f in enumerate(iso_fix) if f is not None)
            if fix.shape[1] > 0 and self._iso_bias_units:
                self._constant("_iso_fix", torch.cat([iso_fix[j] for j in self._iso_bias_units]), dtype)
            self._iso_indexed = self._n_synthesis > 1  # hom_tiles' tile_index
            if self._iso_indexed:
                self._constant("_iso_index", c.linear.tensors[1])
            self._iso_cache = EvalCache()
        self.reset_parameters()
        self._place(device, dtype)

    @property
    def has_bias(self) -> bool:
        return self.bias_dof is not None

    def reset_parameters(self):
        self._reset_constants()
        with torch.no_grad():
            init_coefficients(self.weight_dof, self._init_std, self.init_scheme)
            if self.bias_dof is not None:
                # symm_learning's (and the C++ module's) bound: 1/sqrt(trivial copies of in_rep).
                bound = 1.0 / math.sqrt(self._m_in_fix) if self._m_in_fix > 0 else 0.0
                self.bias_dof.uniform_(-bound, bound)

    def taps(self) -> torch.Tensor:
        """Dense taps (groups·K, C_out/groups, C_in/groups), differentiable in weight_dof."""
        # Through eLinear's structured synthesis (all taps at once for the tile layout, else one at a time): a
        # dense (n_out·n_in, dim) synthesis matrix is dim times the size of a tap (1 GiB in float32 for 16
        # regular copies of D8) and its product as slow.
        synthesis = [getattr(self, f"_synthesis{i}") for i in range(self._n_synthesis)]
        if self._layout.tiles:
            # hom_tiles for every tap at once: φ (rows, m_out, m_in, r) times the tiles (r, s_out·s_in), one product.
            tiles = synthesis[0]
            r, s_out, s_in = tiles.shape
            m_out = self._layout.m[0]
            theta = self.weight_dof if len(synthesis) == 1 else self.weight_dof.index_select(1, synthesis[1].view(-1))
            rows = theta.shape[0]
            w = torch.mm(theta.reshape(-1, r), tiles.view(r, -1)).view(rows, m_out, -1, s_out, s_in)
            return w.permute(0, 1, 3, 2, 4).reshape(rows, m_out * s_out, -1)
        return torch.stack([ops.linear_weight(row, synthesis, self._layout) for row in self.weight_dof])

    def _kernel(self) -> torch.Tensor:
        raise NotImplementedError

    @property
    def weight(self) -> torch.Tensor:
        """The dense kernel as torch's (Conv1d: (C_out, C_in/groups, K); ConvTranspose1d: (C_in, C_out/groups,
        K)); cached in eval when autograd needs nothing."""
        return self._weight_cache.value_for(self, [self.weight_dof], self._kernel)

    @property
    def bias(self) -> torch.Tensor | None:
        if self.bias_dof is None:
            return None
        return self._bias_cache.value_for(self, [self.bias_dof], lambda: torch.mv(self._fix, self.bias_dof))

    def _check_input(self, x):
        name, c = self._NAME, self.in_channels
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected the input to be a torch.Tensor, got {type(x).__name__}")
        if x.dim() not in (2, 3) or x.shape[-2] != c:
            raise InputError(f"{name}: expected an input (B, {c}, T) or ({c}, T) ({c} channels: the representation's "
                             f"size), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InputError(f"{name}: expected a floating-point input, got {x.dtype}")
        check_device_and_dtype(name, x, self.weight_dof)

    @torch.no_grad()
    def set_taps(self, taps: torch.Tensor, bias: torch.Tensor | None = None):
        """Sets the coefficients to the orthogonal projection of dense taps (groups·K, C_out/groups, C_in/groups)
        onto Hom_G and the bias to the projection of a dense (C_out) bias onto Fix(ρ_out)."""
        rows = self.weight_dof.shape[0]
        if tuple(taps.shape) != (rows, self._n_out, self._n_in):
            raise ValueError(f"{self._NAME}.set_taps: expected taps of shape [{rows}, {self._n_out}, {self._n_in}], "
                             f"got {list(taps.shape)}")
        basis = ops.conv_constants(self._NAME, self.in_rep, self.out_rep, self.groups, self.init_scheme).basis
        cpu = taps.detach().to("cpu", torch.float64)
        self.weight_dof.copy_(torch.stack([basis.coefficients(cpu[r]) for r in range(rows)]))
        if bias is not None and self.bias_dof is not None:
            if tuple(bias.shape) != (self.out_channels,):
                raise ValueError(f"{self._NAME}.set_taps: expected a bias of shape [{self.out_channels}], "
                                 f"got {list(bias.shape)}")
            self.bias_dof.copy_(self._masters["_fix"].T @ bias.detach().to("cpu", torch.float64))

    def extra_repr(self) -> str:
        s = (f"in={self.in_rep.name}, out={self.out_rep.name}, kernel_size={self.kernel_size}, stride={self.stride}, "
             f"padding={self.padding}")
        if self.output_padding:
            s += f", output_padding={self.output_padding}"
        s += f", dilation={self.dilation}, groups={self.groups}, bias={self.has_bias}"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s + f", dof={self.weight_dof.numel()}"

    def _isotypic_kernels(self) -> tuple:
        """The taps in the isotypic bases, straight from the coefficients: one kernel per unit of
        ops.ConvIsotypicPlan ("group": (g·m_out, m_in, K); "kron": Θ (m_out·mult_out, m_in·mult_in, K); "plain":
        (m_out·c_out, m_in·c_in, K)), and the biases of the units where Fix(ρ_out) lies (None for the others)."""
        m_in, m_out, r = self._iso_m
        theta = self.weight_dof
        if self._iso_indexed:
            theta = theta.index_select(1, self._iso_index)
        k = theta.shape[0]
        # (S, K·m_out·m_in): every unit's block entries, for all taps and pairs of copies at once.
        p = torch.mm(self._iso_synthesis.t(), theta.reshape(-1, r).t())
        kernels, row = [], 0
        for kind, count, ci, co, _ in self._iso_units:
            if kind == "group":
                block = p[row:row + count].view(count, k, m_out, m_in)
                kernels.append(block.permute(0, 2, 3, 1).reshape(count * m_out, m_in, k))
                row += count
            else:
                block = p[row:row + co * ci].view(co, ci, k, m_out, m_in)
                kernels.append(block.permute(3, 0, 4, 1, 2).reshape(m_out * co, m_in * ci, k))
                row += co * ci
        if self._TRANSPOSED:  # conv_transpose1d's weight is (C_in, C_out / groups, K)
            kernels = [w.view(count, m_out, m_in, k).transpose(1, 2).reshape(count * m_in, m_out, k) if kind == "group"
                       else w.transpose(0, 1) for (kind, count, *_), w in zip(self._iso_units, kernels)]
        biases = [None] * len(kernels)
        if self.bias_dof is not None and self._iso_bias_units:
            b = torch.mv(self._iso_fix, self.bias_dof)
            sizes = [m_out * self._iso_widths[1][j] for j in self._iso_bias_units]
            for j, bj in zip(self._iso_bias_units, b.split(sizes)):
                biases[j] = bj
        return tuple(kernels), tuple(biases)

    def _isotypic_conv(self, x, padding, iso_out=False):
        kernels, biases = self._iso_cache.value_for(self, [self.weight_dof, self.bias_dof], self._isotypic_kernels)
        batched = x.dim() == 3
        x = x if batched else x.unsqueeze(0)
        n, t = x.shape[0], x.shape[-1]
        m_in, m_out, _ = self._iso_m
        qi, qo = self._iso_q_in, self._iso_q_out
        # Q̃ᵀ per copy, then each unit's columns of every copy: one product and one split for all units.
        z = torch.matmul(qi.t(), x.reshape(n, m_in, qi.shape[0], t)).split(self._iso_widths[0], 2)
        if self._TRANSPOSED:
            conv = lambda v, w, bias, groups=1: F.conv_transpose1d(v, w, bias, self.stride, padding, self.output_padding,
                                                                   groups, self.dilation)
        else:
            conv = lambda v, w, bias, groups=1: F.conv1d(v, w, bias, self.stride, padding, self.dilation, groups)
        parts = []
        for (kind, count, ci, co, d), piece, w, bias in zip(self._iso_units, z, kernels, biases):
            if kind == "group":  # channels (irrep, copy)
                y = conv(piece.transpose(1, 2).reshape(n, count * m_in, t), w, bias, count)
                parts.append(y.view(n, count, m_out, -1).transpose(1, 2))
            elif kind == "kron":  # the d components along the batch, channels (copy, multiplicity)
                v = piece.view(n, m_in, ci, d, t).permute(3, 0, 1, 2, 4).reshape(d * n, m_in * ci, t)
                y = conv(v, w, bias)
                parts.append(y.view(d, n, m_out, co, -1).permute(1, 2, 3, 0, 4).reshape(n, m_out, co * d, -1))
            else:
                y = conv(piece.reshape(n, m_in * ci, t), w, bias)
                parts.append(y.view(n, m_out, co, -1))
        y = torch.cat(parts, 2)
        if iso_out:
            return y
        y = torch.matmul(qo, y).view(n, -1, y.shape[-1])
        return y if batched else y.squeeze(0)


class eConv1d(_eConvBase):
    """y[t] = Σ_k W_k x[t·stride + k·dilation − padding] + b with W_k ∈ Hom_G(ρ_in, ρ_out) and b ∈ Fix(ρ_out):
    conv(ρ_in(g)x) = ρ_out(g) conv(x). The forward is ``F.conv1d`` with the synthesised kernel, or, where both
representations are regular copies of a group of order >= 8 (``isotypic``), a few ``F.conv1d`` in the
isotypic basis (ops.ConvIsotypicPlan: one grouped over the 1-dim irreps, one per other irrep, over Θ only where
the block is Θ ⊗ I_d), whose kernels come straight from the coefficients: for D8, 28·m² multiply-adds per tap
and step against the dense kernel's 256·m².

    Arguments as symm_learning's eConv1d (in_rep, out_rep, kernel_size=3, basis_expansion, init_scheme) and then
    torch's Conv1d keywords (stride, padding: an int, 'valid' or 'same', dilation, groups, bias, padding_mode,
    device, dtype). groups > 1 needs in_rep and out_rep to be ``groups`` equal representations side by side.
    """
    _NAME = "eConv1d"

    def __init__(self, in_rep, out_rep, kernel_size: int = 3, basis_expansion: str = "isotypic_expansion",
                 init_scheme: str | None = "xavier_uniform", *, stride=1, padding=0, dilation=1, groups: int = 1,
                 bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_rep, out_rep, kernel_size, basis_expansion, init_scheme, stride, padding, 0, dilation, groups,
                         bias, padding_mode, device, dtype)

    def _kernel(self):
        g, k = self.groups, self.kernel_size
        t = self.taps()  # (g·K, n_out, n_in)
        return t.view(g, k, self._n_out, self._n_in).permute(0, 2, 3, 1).reshape(g * self._n_out, self._n_in, k)

    def _pads(self):
        """(left, right) samples added to the time axis."""
        if self.padding == "valid":
            return 0, 0
        if self.padding == "same":
            total = self.dilation * (self.kernel_size - 1)
            return total // 2, total - total // 2
        return self.padding, self.padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x, False)

    def forward_isotypic(self, x: torch.Tensor) -> torch.Tensor:
        """Where ``isotypic``: the output before its last change of basis, w (B, m_out, b, T_out) with
        y = Q̃_out w per copy (Q̃_out = ``_iso_q_out``: the block of Q_out with its columns grouped by irrep, those
        of ``iso_columns_out()``); batched input only. For a caller that acts there (the encoder's norm)."""
        if not self.isotypic or x.dim() != 3:
            raise InputError("eConv1d.forward_isotypic: needs an isotypic module and a batched input (B, C, T)")
        return self._forward(x, True)

    def iso_columns_out(self) -> torch.Tensor:
        """int64 (C_out): the column of out_rep's change of basis behind each channel of forward_isotypic's w."""
        m_out, b = self._iso_m[1], self._iso_q_out.shape[0]
        return (torch.arange(m_out).unsqueeze(1) * b + self._iso_columns_out.unsqueeze(0)).reshape(-1)

    def _forward(self, x, iso_out):
        self._check_input(x)
        left, right = self._pads()
        t = x.shape[-1]
        span = self.dilation * (self.kernel_size - 1) + 1
        if t + left + right < span:
            raise InputError(f"eConv1d: the input has {t} time steps ({t + left + right} padded) but the dilated "
                             f"kernel spans {span}")
        if self.padding_mode == "zeros" or left + right == 0:
            return self._conv(x, self.padding if isinstance(self.padding, str) else left, iso_out)
        if self.padding_mode == "reflect" and max(left, right) >= t:
            raise InputError(f"eConv1d: padding_mode reflect needs padding < the {t} time steps of the input, "
                             f"got padding {max(left, right)}")
        if self.padding_mode == "circular" and max(left, right) > t:
            raise InputError(f"eConv1d: padding_mode circular needs padding <= the {t} time steps of the input, "
                             f"got padding {max(left, right)}")
        batched = x.dim() == 3
        padded = F.pad(x if batched else x.unsqueeze(0), (left, right), mode=self.padding_mode)
        y = self._conv(padded, 0, iso_out)
        return y if batched else y.squeeze(0)

    def _conv(self, x, padding, iso_out=False):
        if self.isotypic:
            return self._isotypic_conv(x, padding, iso_out)
        return F.conv1d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)

class eConvTranspose1d(_eConvBase):
    """The adjoint of eConv1d along time (torch's ConvTranspose1d), every tap still in Hom_G(ρ_in, ρ_out); the
    forward is ``F.conv_transpose1d`` with the synthesised (C_in, C_out/groups, K) kernel, or, where eConv1d runs
    ``isotypic``, a few ``F.conv_transpose1d`` in the isotypic basis with the same units' kernels transposed.

    Arguments as symm_learning's eConvTranspose1d, then torch's ConvTranspose1d keywords (stride, padding,
    output_padding, dilation, groups, bias, padding_mode='zeros' only, device, dtype).
    """
    _NAME = "eConvTranspose1d"
    _TRANSPOSED = True

    def __init__(self, in_rep, out_rep, kernel_size: int = 3, basis_expansion: str = "isotypic_expansion",
                 init_scheme: str | None = "xavier_uniform", *, stride=1, padding=0, output_padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_rep, out_rep, kernel_size, basis_expansion, init_scheme, stride, padding, output_padding,
                         dilation, groups, bias, padding_mode, device, dtype)

    def _kernel(self):
        g, k = self.groups, self.kernel_size
        t = self.taps()  # (g·K, n_out, n_in); torch's transposed weight is (C_in, C_out/g, K)
        return t.view(g, k, self._n_out, self._n_in).permute(0, 3, 2, 1).reshape(g * self._n_in, self._n_out, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        t = x.shape[-1]
        t_out = ((t - 1) * self.stride - 2 * self.padding + self.dilation * (self.kernel_size - 1)
                 + self.output_padding + 1)
        if t < 1 or t_out < 1:
            raise InputError(f"eConvTranspose1d: an input of {t} time steps gives {t_out} output steps with these "
                             f"options; expected at least 1")
        if self.isotypic:
            return self._isotypic_conv(x, self.padding)
        return F.conv_transpose1d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)

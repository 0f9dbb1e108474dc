"""eLinear: a linear map that commutes with the group, learned through its Hom_G coefficients, and
InvariantBias: a learnable vector of the fixed space Fix(ρ)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import _C
from .module import EvalCache, check_device_and_dtype, check_features, eModule, use_eval_cache
from . import ops

__all__ = ["eLinear", "InvariantBias"]

_INIT_SCHEMES = ("xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal")
_EXECUTIONS = ("automatic", "dense", "isotypic")


def init_coefficients(dof: torch.Tensor, init_std: torch.Tensor, init_scheme: str):
    """Draws Hom_G coefficients in place with the standard deviation of each for the scheme: uniform on
    ±std·√3, or normal."""
    if init_scheme.endswith("uniform"):
        dof.uniform_(-1.0, 1.0).mul_(init_std * math.sqrt(3.0))
    else:
        dof.normal_().mul_(init_std)


def _iso_buffer(name: str) -> str:
    """The buffer of an isotypic constant (names like index.0 are not attribute names)."""
    return "_iso_" + name.replace(".", "_")


def _check_execution(module: str, execution: str) -> str:
    if execution not in _EXECUTIONS:
        raise ValueError(f"{module}: unknown execution {execution!r}: expected automatic, dense or isotypic")
    return execution


class eLinear(eModule):
    """y = W x + b with ρ_out(g) W = W ρ_in(g) and b ∈ Fix(ρ_out).

    W is synthesised from ``weight_dof`` (its coordinates in the basis of Hom_G) on every forward where
    autograd needs it, in eval mode too; only when it needs nothing (no grad mode, or no parameter requires
    grad) and nothing is being traced is the dense W cached in eval. The forward is then
    ``F.linear(x, W, b)``.
    """

    def __init__(self, in_rep, out_rep, bias: bool = True, init_scheme: str | None = "xavier_uniform",
                 device=None, dtype=None, *, execution: str = "automatic"):
        super().__init__(in_rep, out_rep)
        if in_rep.group != out_rep.group:
            raise ValueError(f"eLinear: in_rep is of group {in_rep.group.name} but out_rep of {out_rep.group.name}")
        init_scheme = "xavier_uniform" if init_scheme is None else init_scheme
        if init_scheme not in _INIT_SCHEMES:
            raise ValueError(f"eLinear: unknown init_scheme {init_scheme!r}: expected one of {', '.join(_INIT_SCHEMES)}")
        self.init_scheme = init_scheme
        # automatic is dense, as in C++: measured faster on the CPU at every benchmarked size (bench/RESULTS.md).
        self.execution = _check_execution("eLinear", execution)
        self.in_features, self.out_features = in_rep.size, out_rep.size
        try:
            c = ops.linear_constants(in_rep, out_rep, init_scheme)
        except RuntimeError as e:  # the group engine's refusal (a zero-dimensional Hom_G), as a bad argument
            raise ValueError(str(e)) from None
        self._layout, self._n_synthesis = c.layout, len(c.tensors)
        for i, t in enumerate(c.tensors):
            self._constant(f"_synthesis{i}", t, dtype)
        self._constant("_init_std", c.init_std, dtype)
        self._constant("_fix", c.fix, dtype)
        self.weight_dof = torch.nn.Parameter(torch.empty(c.dim, device=self._fix.device, dtype=self._fix.dtype))
        n_fix = c.fix.shape[1]
        self.bias_dof = (torch.nn.Parameter(torch.empty(n_fix, device=self._fix.device, dtype=self._fix.dtype))
                         if bias and n_fix > 0 else None)
        # The isotypic constants always: a layer may run this map in the isotypic basis (forward_isotypic).
        self._iso_layout, tensors = ops.isotypic_constants(in_rep, out_rep)
        for name, t in tensors.items():
            self._constant(_iso_buffer(name), t, dtype)
        self._weight_cache, self._bias_cache, self._iso_cache = EvalCache(), EvalCache(), EvalCache()
        self._iso_chunk_caches = {}  # (begin, count) of forward_isotypic's output chunks → EvalCache
        self.reset_parameters()
        self._place(device, dtype)

    def reset_parameters(self):
        self._reset_constants()
        with torch.no_grad():
            init_coefficients(self.weight_dof, self._init_std, self.init_scheme)
            if self.bias_dof is not None:
                bound = 1.0 / math.sqrt(self.in_features)
                self.bias_dof.uniform_(-bound, bound)

    def _synthesis(self):
        return [getattr(self, f"_synthesis{i}") for i in range(self._n_synthesis)]

    @property
    def weight(self) -> torch.Tensor:
        """Dense (out, in) weight: synthesised with autograd, or the eval cache when autograd needs nothing."""
        return self._weight_cache.value_for(
            self, [self.weight_dof], lambda: ops.linear_weight(self.weight_dof, self._synthesis(), self._layout))

    @property
    def bias(self) -> torch.Tensor | None:
        """Dense bias (out), or None without one."""
        if self.bias_dof is None:
            return None
        return self._bias_cache.value_for(self, [self.bias_dof], lambda: torch.mv(self._fix, self.bias_dof))

    def forward(self, x: torch.Tensor, rows: tuple[int, int] | None = None) -> torch.Tensor:
        """W x + b; with ``rows = (start, stop)`` only output features [start, stop) (attention's Q, K or V
        of the fused in_proj, computed through the module so that its hooks fire)."""
        check_features("eLinear", x, self.in_features)
        check_device_and_dtype("eLinear", x, self.weight_dof)
        if self.execution == "isotypic" and rows is None:
            return self._forward_isotypic(x)
        w, b = self.weight, self.bias
        if rows is not None:
            w, b = w[rows[0]:rows[1]], None if b is None else b[rows[0]:rows[1]]
        return F.linear(x, w, b)

    def _iso_tensors(self) -> dict:
        return {name: getattr(self, _iso_buffer(name)) for name in self._iso_layout.names}

    def _iso_operands(self, tensors, chunks=None):
        """The block operands (of output chunks [begin, begin + count) for chunks = (begin, count)), cached in eval
        per chunk range; a range's cache is made where it is first used, never under a tracer or autograd."""
        params = [self.weight_dof, self.bias_dof]
        compute = lambda: ops.isotypic_operands(self.weight_dof, self.bias_dof, tensors, self._iso_layout, chunks)
        if not use_eval_cache(self, params):
            return compute()
        cache = self._iso_cache if chunks is None else self._iso_chunk_caches.setdefault(tuple(chunks), EvalCache())
        return cache.get(params, compute)

    def _forward_isotypic(self, x: torch.Tensor) -> torch.Tensor:
        tensors = self._iso_tensors()
        return ops.isotypic_linear(x, self._iso_operands(tensors), tensors, self._iso_layout)

    def forward_isotypic(self, z: torch.Tensor, chunks=None) -> torch.Tensor:
        """The map on features already in the isotypic layouts: z (D_in, N) → (D_out, N), one batched product per
        group of irrep blocks (a layer running in the isotypic basis calls it; no hooks fire). chunks = (begin,
        count): only output chunks [begin, begin + count) (regular copies of out_rep), rows r·count + c."""
        layout = self._iso_layout
        if chunks is not None and tuple(chunks) == (0, layout.m_out):
            chunks = None
        w, b = self._iso_operands(self._iso_tensors(), chunks)
        return torch.ops.symm.isotypic_blocks(z, w, b, list(layout.in_rows),
                                              ops.isotypic_out_rows(layout, None if chunks is None else chunks[1]))

    @property
    def isotypic_multiply_adds(self) -> int:
        """Multiply-adds per token of forward_isotypic (the dense map's: in_features · out_features)."""
        return self._iso_layout.multiply_adds

    @torch.no_grad()
    def set_dense(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        """Sets the coefficients to the orthogonal projection of a dense (out, in) weight (and bias) onto Hom_G."""
        basis = _C.HomBasis(self.in_rep, self.out_rep)
        self.weight_dof.copy_(basis.coefficients(weight.detach().to("cpu", torch.float64)))
        if bias is not None and self.bias_dof is not None:
            if bias.shape != (self.out_features,):
                raise ValueError(f"eLinear.set_dense: expected a bias of shape [{self.out_features}], got {list(bias.shape)}")
            self.bias_dof.copy_(self._masters["_fix"].T @ bias.detach().to("cpu", torch.float64))

    def extra_repr(self) -> str:
        return (f"in={self.in_rep.name}, out={self.out_rep.name}, bias={self.bias_dof is not None}, "
                f"dof={self.weight_dof.numel()}, execution={self.execution}")


class InvariantBias(eModule):
    """x + b with b ∈ Fix(ρ), learned through its coordinates in an orthonormal basis of Fix(ρ) (zeros at
    initialisation); the identity when Fix(ρ) = 0."""

    def __init__(self, in_rep, device=None, dtype=None):
        super().__init__(in_rep)
        self.in_features = in_rep.size
        self._constant("_fix", in_rep.invariant_basis, dtype)
        self.bias_dof = torch.nn.Parameter(torch.zeros(self._fix.shape[1], device=self._fix.device, dtype=self._fix.dtype))
        self.reset_parameters()
        self._place(device, dtype)

    def reset_parameters(self):
        self._reset_constants()
        with torch.no_grad():
            self.bias_dof.zero_()

    @property
    def bias(self) -> torch.Tensor:
        return torch.mv(self._fix, self.bias_dof)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_features("InvariantBias", x, self.in_features)
        if self.bias_dof.numel() == 0:
            return x
        check_device_and_dtype("InvariantBias", x, self.bias_dof)
        return x + self.bias

    def extra_repr(self) -> str:
        return f"rep={self.in_rep.name}, dof={self.bias_dof.numel()}"

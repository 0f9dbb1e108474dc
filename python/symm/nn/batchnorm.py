"""eBatchNorm1d: batch normalisation that commutes with the group. The statistics are the symmetric ones: the
mean is projected onto Fix(ρ) and there is one variance per irrep copy (the mean square of the copy's isotypic
coordinates over its d_k components), so y = Q·diag(1/√(σ²+ε))·Qᵀ(x − μ) commutes with ρ(g). Train/eval
semantics, momentum (None: the cumulative average) and running statistics as torch's BatchNorm1d; the affine
map is an eAffine (one scale per irrep copy, bias in Fix(ρ)). State dict as the C++ module's: affine.*,
running_mean (C), running_var (copies), num_batches_tracked (shape (1), int64). The forward folds the affine's
scales into the normalisation (both scale irrep copies in the basis Q), so a training step has two products with
Q; eval is one dense map, cached while autograd needs nothing."""
from __future__ import annotations

import torch

from . import ops
from .affine import eAffine
from .module import EvalCache, InputError, check_device_and_dtype, default_device, eModule

__all__ = ["eBatchNorm1d"]


class eBatchNorm1d(eModule):
    """x (B, C) or (B, C, T) with C = in_rep.size, as torch's BatchNorm1d; the statistics are taken over B (and T)."""

    def __init__(self, in_rep, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None):
        super().__init__(in_rep)
        if not eps > 0:
            raise ValueError(f"eBatchNorm1d: expected eps > 0, got {eps}")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"eBatchNorm1d: expected momentum in [0, 1] or None, got {momentum}")
        self.eps, self.momentum, self.track_running_stats = eps, momentum, track_running_stats
        self.num_features = in_rep.size
        self.num_copies = len(in_rep.irreps)
        fix = in_rep.invariant_basis
        self._constant("_q", in_rep.change_of_basis, dtype)
        # Regular copies have Q block diagonal (one |G|×|G| block per copy): the products with Q then cost m times
        # less as one batched product of the blocks. Measured at one thread: faster for D8's 16×16 blocks, slower
        # for C2's 2×2 (B32 T64), hence blocks of at least 8.
        b = in_rep.group.order
        q = in_rep.change_of_basis
        k = q.shape[0] // b if b >= 8 and q.shape[0] % b == 0 and q.shape[0] > b else 0
        blocks = torch.stack([q[i * b:(i + 1) * b, i * b:(i + 1) * b] for i in range(k)]) if k else None
        self.block_diagonal = blocks is not None and torch.equal(torch.block_diag(*blocks), q)
        if self.block_diagonal:
            self._constant("_q_blocks", blocks, dtype)
        self._constant("_proj", fix @ fix.T, dtype)
        self._constant("_dims", torch.tensor([float(in_rep.group.irrep(k).dim) for k in in_rep.irreps],
                                             dtype=torch.float64, device="cpu"), dtype)
        self._constant("_copy_of", ops.column_copies(in_rep))
        self.affine = eAffine(in_rep, bias=True, dtype=dtype) if affine else None
        self._eval_cache = EvalCache()
        like = dict(device=self._q.device, dtype=self._q.dtype)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(self.num_features, **like))
            self.register_buffer("running_var", torch.ones(self.num_copies, **like))
            # Shape (1), not torch's 0-dim: symm::load reads every stored tensor as a vector or matrix.
            self.register_buffer("num_batches_tracked", torch.zeros(1, dtype=torch.long, device=self._q.device))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None
        self.reset_parameters()
        self._place(device, dtype)

    def reset_running_stats(self):
        if self.track_running_stats and self.running_mean.device.type != "meta":
            with torch.no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1.0)
                self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self._reset_constants()
        self.reset_running_stats()
        if self.affine is not None:
            self.affine.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.num_features
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"eBatchNorm1d: expected the input to be a torch.Tensor, got {type(x).__name__}")
        if x.dim() not in (2, 3) or x.shape[1] != c:
            raise InputError(f"eBatchNorm1d: expected an input (B, {c}) or (B, {c}, T) ({c} channels: the "
                             f"representation's size), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InputError(f"eBatchNorm1d: expected a floating-point input, got {x.dtype}")
        check_device_and_dtype("eBatchNorm1d", x, self._q)
        n = x.numel() // c
        if self.training and n <= 1:
            raise InputError(f"eBatchNorm1d: expected more than 1 value per channel when training, got input shape "
                             f"{tuple(x.shape)}")
        # The channel axis is 1 for (B, C, T): maps act on it by matmul, without transposing x.
        timed = x.dim() == 3
        dims = (0, 2) if timed else (0,)
        blocked = self.block_diagonal

        def channels(m, v):
            """m (C, C), or its diagonal blocks (k, b, b) where blocked, applied to the channels of v."""
            if not blocked:
                return torch.matmul(m, v) if timed else v @ m.T
            k, b = m.shape[0], m.shape[1]
            if timed:
                return torch.matmul(m, v.view(v.shape[0], k, b, v.shape[2])).view(v.shape)
            return torch.einsum("kij,nkj->nki", m, v.view(v.shape[0], k, b)).reshape(v.shape)

        def blocks_of(m):
            return torch.stack([m[i * b:(i + 1) * b, i * b:(i + 1) * b] for i in range(c // b)]) if blocked else m

        def column(v):
            return v.unsqueeze(-1) if timed else v

        q = self._q_blocks if blocked else self._q
        b = q.shape[-1]
        q_t = q.transpose(-1, -2)
        affine = self.affine
        # The affine scales whole irrep copies in the same basis, so it folds into the normalisation's scale.
        scale = affine._expand(affine.scale_dof) if affine is not None else None
        bias = affine.bias_vector() if affine is not None else None
        if self.training or not self.track_running_stats:
            mean = torch.mv(self._proj, x.mean(dims))
            z = channels(q_t, x - column(mean))
            var = torch.zeros(self.num_copies, dtype=x.dtype, device=x.device).index_add(
                0, self._copy_of, z.square().mean(dims)) / self._dims
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked.item())
                    self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                    # torch's running variance is the unbiased one.
                    self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)), alpha=m)
            s = torch.rsqrt(var + self.eps).index_select(0, self._copy_of)
            a = s if scale is None else s * scale
            # Blockwise, the scales ride on the columns of Q's blocks: no pass over z for them (9-13% of a
            # training step for D8 and O at one thread; with a dense Q the product's gradient in the (C, C) map
            # costs more than the pass, 13% slower for C2).
            y = channels(q * a.view(q.shape[0], 1, b), z) if blocked else channels(q, z * column(a))
        else:
            # Eval is one affine map y = A x + (b − A μ), A = Q·diag(s)·Qᵀ: one product instead of three.
            def dense():
                s = torch.rsqrt(self.running_var + self.eps).index_select(0, self._copy_of)
                a = (self._q * (s if scale is None else s * scale)) @ self._q.T
                return blocks_of(a), -torch.mv(a, self.running_mean)
            params = [self.running_mean, self.running_var] + ([affine.scale_dof] if affine is not None else [])
            a, shift = self._eval_cache.value_for(self, params, dense)
            y = channels(a, x) + column(shift)
        return y + column(bias) if bias is not None else y

    def extra_repr(self) -> str:
        return (f"rep={self.in_rep.name}, copies={self.num_copies}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine is not None}, track_running_stats={self.track_running_stats}")

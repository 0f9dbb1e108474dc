"""eBatchNorm1d: batch normalisation that commutes with the group. The statistics are the symmetric ones: the
mean is projected onto Fix(ρ) and there is one variance per irrep copy (the mean square of the copy's isotypic
coordinates over its d_k components), so y = Q·diag(1/√(σ²+ε))·Qᵀ(x − μ) commutes with ρ(g). Train/eval
semantics, momentum (None: the cumulative average) and running statistics as torch's BatchNorm1d; the affine
map is an eAffine (one scale per irrep copy, bias in Fix(ρ)). State dict as the C++ module's: affine.*,
running_mean (C), running_var (copies), num_batches_tracked (shape (1), int64). Training is one
operator, torch.ops.symm.batch_norm_train (the affine's scales fold into the normalisation: both scale irrep copies
in the basis Q); eval is one dense map, cached while autograd needs nothing."""
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
        # Regular copies have Q block diagonal (one |G|×|G| block per copy): torch.ops.symm.batch_norm_train
        # then multiplies by the blocks alone (`_basis`, else Q itself as one block), and so does eval where the
        # blocks are at least 8 (measured at one thread: one batched product of D8's 16×16 blocks beats the dense
        # one, of C2's 2×2 ones not).
        b = in_rep.group.order
        q = in_rep.change_of_basis
        k = q.shape[0] // b if q.shape[0] % b == 0 and q.shape[0] > b else 0
        blocks = torch.stack([q[i * b:(i + 1) * b, i * b:(i + 1) * b] for i in range(k)]) if k else None
        blocked = blocks is not None and torch.equal(torch.block_diag(*blocks), q)
        self.block_diagonal = blocked and b >= 8
        self._constant("_q", q, dtype)
        self._constant("_basis", blocks if blocked else q.unsqueeze(0), dtype)
        irreps = [in_rep.group.irrep(k) for k in in_rep.irreps]
        self._constant("_dims", torch.tensor([float(i.dim) for i in irreps], dtype=torch.float64, device="cpu"), dtype)
        self._constant("_trivial", torch.tensor([float(i.is_trivial) for i in irreps for _ in range(i.dim)],
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
        affine = self.affine
        bias = affine.bias_vector() if affine is not None else None
        if self.training or not self.track_running_stats:
            y, mean, var = torch.ops.symm.batch_norm_train(x, self._basis, self._copy_of, self._dims, self._trivial,
                                                           affine.scale_dof if affine is not None else None, bias,
                                                           self.eps)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked.item())
                    self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                    # torch's running variance is the unbiased one.
                    self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)), alpha=m)
            return y
        # Eval is one affine map y = A x + (b − A μ), A = Q·diag(s)·Qᵀ, cached while autograd needs nothing; the
        # channel axis is 1 for (B, C, T): A acts on it by matmul, without transposing x.
        timed = x.dim() == 3
        blocked = self.block_diagonal

        def dense():
            s = torch.rsqrt(self.running_var + self.eps).index_select(0, self._copy_of)
            if affine is not None:
                s = s * affine._expand(affine.scale_dof)
            a = (self._q * s) @ self._q.T
            shift = -torch.mv(a, self.running_mean)
            if blocked:
                b = self._basis.shape[-1]
                a = torch.stack([a[i * b:(i + 1) * b, i * b:(i + 1) * b] for i in range(self._basis.shape[0])])
            return a, shift

        params = [self.running_mean, self.running_var] + ([affine.scale_dof] if affine is not None else [])
        a, shift = self._eval_cache.value_for(self, params, dense)
        if not blocked:
            y = torch.matmul(a, x) if timed else x @ a.T
        elif timed:
            y = torch.matmul(a, x.view(x.shape[0], a.shape[0], a.shape[1], x.shape[2])).view(x.shape)
        else:
            y = torch.einsum("kij,nkj->nki", a, x.view(x.shape[0], a.shape[0], a.shape[1])).reshape(x.shape)
        if bias is not None:
            shift = shift + bias
        return y + shift.unsqueeze(-1) if timed else y + shift

    def extra_repr(self) -> str:
        return (f"rep={self.in_rep.name}, copies={self.num_copies}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine is not None}, track_running_stats={self.track_running_stats}")

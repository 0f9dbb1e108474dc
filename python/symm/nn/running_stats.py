"""EMAStats and eEMAStats (symm_learning.nn.EMAStats, eEMAStats; C++ src/nn/running_stats.cpp): exponential moving
averages of the means, covariances and cross-covariance of two streams x (N, D_x) and y (N, D_y). Training
forwards update them, eval forwards leave them; the data pass through unchanged. The equivariant one keeps
invariant means and covariances in Hom_G, stored as Hom_G coefficients (state dict as the C++ module's).

After a training forward the statistics carry the gradient of the current batch (the previous state is detached:
S_t = (1 − α)·detach(S_{t−1}) + α·S_batch), so a loss may use them; the buffers are updated in place, so run such
a loss's backward before the next training forward."""
from __future__ import annotations

import torch

from .. import linalg, stats
from .module import InputError, check_device_and_dtype, eModule

__all__ = ["EMAStats", "eEMAStats"]


def _check_momentum(name, momentum):
    if not 0.0 < momentum <= 1.0:
        raise ValueError(f"{name}: momentum must be in (0, 1], got {momentum}")


def _check_inputs(name, x, y, dx, dy, like):
    for what, t, d in (("x", x, dx), ("y", y, dy)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected {what} to be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 2 or t.shape[1] != d:
            raise InputError(f"{name}: expected {what} of shape (N, {d}), got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise InputError(f"{name}: expected a floating-point {what}, got {t.dtype}")
        check_device_and_dtype(name, t, like)
    if x.shape[0] != y.shape[0]:
        raise InputError(f"{name}: x and y need the same number of samples, got {x.shape[0]} and {y.shape[0]}")


class _EMABase:
    def _set(self, name, batch, first):
        """S_t = (1 − α)·detach(S_{t−1}) + α·S_batch, written as the buffer (carrying this batch's gradient)."""
        old = getattr(self, name)
        a = self.momentum
        new = batch if first else old.detach() * (1.0 - a) + batch * a
        self._buffers[name] = new.to(old.dtype)

    @property
    def mean_x(self):
        return self.running_mean_x

    @property
    def mean_y(self):
        return self.running_mean_y

    def _centres(self, mx, my):
        if self.center_with_running_mean and int(self.num_batches_tracked) > 0:
            return self.running_mean_x.detach(), self.running_mean_y.detach()
        return mx, my


class EMAStats(_EMABase, torch.nn.Module):
    """Running means, covariances (D_x, D_x), (D_y, D_y) and cross-covariance (D_x, D_y), over N − 1."""

    def __init__(self, dim_x: int, dim_y: int | None = None, momentum: float = 0.1, eps: float = 1e-6,
                 center_with_running_mean: bool = True, device=None, dtype=None):
        super().__init__()
        _check_momentum("EMAStats", momentum)
        dim_y = dim_x if dim_y is None else dim_y
        if not (dim_x > 0 and dim_y > 0):
            raise ValueError(f"EMAStats: dim_x and dim_y must be positive, got {dim_x} and {dim_y}")
        self.dim_x, self.dim_y, self.momentum, self.eps = dim_x, dim_y, momentum, eps
        self.num_features_x, self.num_features_y = dim_x, dim_y  # symm_learning's names
        self.center_with_running_mean = center_with_running_mean
        kw = dict(device=device, dtype=dtype)
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long, device=device))
        self.register_buffer("running_mean_x", torch.zeros(dim_x, **kw))
        self.register_buffer("running_mean_y", torch.zeros(dim_y, **kw))
        self.register_buffer("running_cov_xx", torch.eye(dim_x, **kw))
        self.register_buffer("running_cov_yy", torch.eye(dim_y, **kw))
        self.register_buffer("running_cov_xy", torch.zeros(dim_x, dim_y, **kw))

    def reset_parameters(self):
        with torch.no_grad():
            for n in ("num_batches_tracked", "running_mean_x", "running_mean_y", "running_cov_xy"):
                self._buffers[n] = getattr(self, n).detach().zero_()
            for n in ("running_cov_xx", "running_cov_yy"):
                t = getattr(self, n).detach()
                self._buffers[n] = t.copy_(torch.eye(t.shape[0], dtype=t.dtype, device=t.device))

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        _check_inputs("EMAStats", x, y, self.dim_x, self.dim_y, self.running_mean_x)
        if not self.training:
            return x, y
        n = x.shape[0]
        if n < 2:
            raise InputError(f"EMAStats: training needs at least 2 samples per batch (covariances divide by N - 1), got {n}")
        mx, my = x.mean(0), y.mean(0)
        cx, cy = self._centres(mx, my)
        xc, yc = x - cx, y - cy
        first = int(self.num_batches_tracked) == 0
        self._set("running_mean_x", mx, first)
        self._set("running_mean_y", my, first)
        self._set("running_cov_xx", xc.T @ xc / (n - 1), first)
        self._set("running_cov_yy", yc.T @ yc / (n - 1), first)
        self._set("running_cov_xy", xc.T @ yc / (n - 1), first)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
        return x, y

    @property
    def cov_xx(self):
        return self.running_cov_xx

    @property
    def cov_yy(self):
        return self.running_cov_yy

    @property
    def cov_xy(self):
        return self.running_cov_xy

    def extra_repr(self) -> str:
        return (f"dim_x={self.dim_x}, dim_y={self.dim_y}, momentum={self.momentum}, eps={self.eps}, "
                f"center_with_running_mean={self.center_with_running_mean}")


class eEMAStats(_EMABase, eModule):
    """Running invariant means and covariances in Hom_G: the second moments about the centre over N (as
    symm_learning's eEMAStats), projected: C_xx ∈ End_G(ρ_x), C_yy ∈ End_G(ρ_y), C_xy (D_x, D_y) ∈ Hom_G(ρ_y, ρ_x),
    each kept as its coefficients (running_cov_*_dof); cov_xx, cov_yy, cov_xy are the dense matrices."""

    def __init__(self, x_rep, y_rep=None, momentum: float = 0.1, eps: float = 1e-6,
                 center_with_running_mean: bool = True, device=None, dtype=None):
        y_rep = x_rep if y_rep is None else y_rep
        super().__init__(x_rep, y_rep)
        _check_momentum("eEMAStats", momentum)
        if x_rep.group != y_rep.group:
            raise ValueError(f"eEMAStats: x_rep and y_rep must be of the same group, got {x_rep.group.name} and "
                             f"{y_rep.group.name}")
        self.x_rep, self.y_rep = x_rep, y_rep
        self.momentum, self.eps, self.center_with_running_mean = momentum, eps, center_with_running_mean
        kw = dict(device=device, dtype=dtype or torch.get_default_dtype())
        like = torch.empty(0, **kw)
        dims = [linalg._hom(a, b, like)[0] for a, b in ((x_rep, x_rep), (y_rep, y_rep), (y_rep, x_rep))]
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long, device=device))
        self.register_buffer("running_mean_x", torch.zeros(x_rep.size, **kw))
        self.register_buffer("running_mean_y", torch.zeros(y_rep.size, **kw))
        self.register_buffer("running_cov_xx_dof", torch.zeros(dims[0], **kw))
        self.register_buffer("running_cov_yy_dof", torch.zeros(dims[1], **kw))
        self.register_buffer("running_cov_xy_dof", torch.zeros(dims[2], **kw))
        self.reset_parameters()

    def reset_parameters(self):
        with torch.no_grad():
            for n in ("num_batches_tracked", "running_mean_x", "running_mean_y", "running_cov_xy_dof"):
                self._buffers[n] = getattr(self, n).detach().zero_()
            if self.running_mean_x.device.type == "meta":
                return
            for n, rep in (("running_cov_xx_dof", self.x_rep), ("running_cov_yy_dof", self.y_rep)):
                t = getattr(self, n).detach()
                eye = torch.eye(rep.size, dtype=t.dtype, device=t.device)
                self._buffers[n] = t.copy_(linalg.equiv_orthogonal_projection_coefficients(eye, rep, rep))

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        _check_inputs("eEMAStats", x, y, self.x_rep.size, self.y_rep.size, self.running_mean_x)
        if not self.training:
            return x, y
        if x.shape[0] < 1:
            raise InputError("eEMAStats: training needs at least 1 sample per batch, got 0")
        mx, my = stats.mean(x, self.x_rep), stats.mean(y, self.y_rep)
        cx, cy = self._centres(mx, my)
        xc, yc = x - cx, y - cy
        n = x.shape[0]
        first = int(self.num_batches_tracked) == 0
        coef = linalg.equiv_orthogonal_projection_coefficients
        self._set("running_mean_x", mx, first)
        self._set("running_mean_y", my, first)
        self._set("running_cov_xx_dof", coef(xc.T @ xc / n, self.x_rep, self.x_rep), first)
        self._set("running_cov_yy_dof", coef(yc.T @ yc / n, self.y_rep, self.y_rep), first)
        self._set("running_cov_xy_dof", coef(xc.T @ yc / n, self.y_rep, self.x_rep), first)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
        return x, y

    @property
    def cov_xx(self):
        return linalg.equiv_linear_map(self.running_cov_xx_dof, self.x_rep, self.x_rep)

    @property
    def cov_yy(self):
        return linalg.equiv_linear_map(self.running_cov_yy_dof, self.y_rep, self.y_rep)

    @property
    def cov_xy(self):
        return linalg.equiv_linear_map(self.running_cov_xy_dof, self.y_rep, self.x_rep)

    def extra_repr(self) -> str:
        return (f"x={self.x_rep.name}, y={self.y_rep.name}, momentum={self.momentum}, eps={self.eps}, "
                f"center_with_running_mean={self.center_with_running_mean}")

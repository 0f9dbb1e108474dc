"""The feed-forward block's activation: any module (or function) that is equivariant on the hidden
features, whole regular copies in the permutation basis, where ρ(g) permutes coordinates within each copy.
Any pointwise function is; a module whose parameters act per channel is not, in general."""
from __future__ import annotations

import copy

import torch

__all__ = ["check_activation"]


def _random_parameters(activation):
    """A copy of activation with its parameters redrawn: what holds for every parameter value holds for
    these, while a check at initial values (PReLU's slopes all 0.25) would pass a per-channel module."""
    if not isinstance(activation, torch.nn.Module):
        return activation
    probe = copy.deepcopy(activation).to("cpu", torch.float64)
    with torch.no_grad():
        for p in probe.parameters():
            p.uniform_(0.1, 2.0)
    return probe


def check_activation(module: str, activation, group, copies: int, samples: int = 8, rtol: float = 1e-9):
    """Raises ValueError unless activation(ρ(g) h) = ρ(g) activation(h) for random h over `copies` regular
    copies of `group` and up to `samples` group elements."""
    if not callable(activation):
        raise ValueError(f"{module}: activation must be a torch.nn.Module or a callable, got {activation!r}")
    if isinstance(activation, torch.nn.Module) and any(
            p.device.type == "meta" for p in list(activation.parameters()) + list(activation.buffers())):
        return  # nothing to evaluate; checked when built on a real device
    n = group.order
    probe = _random_parameters(activation)
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(2, 3, copies, n, generator=gen, dtype=torch.float64, device="cpu")
    try:
        y = probe(h.reshape(2, 3, copies * n))
    except Exception as e:  # noqa: BLE001 - the activation's own error, reported with what was tried
        raise ValueError(f"{module}: activation {activation!r} failed on a (2, 3, {copies * n}) float64 input: {e}") from e
    if not isinstance(y, torch.Tensor) or y.shape != (2, 3, copies * n):
        raise ValueError(f"{module}: activation {activation!r} must map (2, 3, {copies * n}) to the same shape, got "
                         f"{getattr(y, 'shape', type(y).__name__)}")
    y = y.reshape(2, 3, copies, n)
    step = max(1, n // samples)
    for g in range(1, n, step):
        perm = torch.tensor([group.mul(g, k) for k in range(n)], device="cpu")  # ρ(g) e_k = e_{gk}
        gh = torch.empty_like(h)
        gh[..., perm] = h
        gy = torch.empty_like(y)
        gy[..., perm] = y
        got = probe(gh.reshape(2, 3, copies * n)).reshape(2, 3, copies, n)
        err = (got - gy).abs().max().item()
        if err > rtol * max(gy.abs().max().item(), 1.0):
            raise ValueError(f"{module}: activation {activation!r} is not equivariant on the hidden features (regular "
                             f"copies of {group.name} in the permutation basis): |f(g·h) - g·f(h)| = {err:.3g} at "
                             f"group element {g}; use a pointwise activation (same function on every channel)")

"""FlowPolicy: the real-time control step of a flow-matching policy on a conditional Transformer regressor.

The regressor (symm.nn.eCondTransformerRegressor or CondTransformerRegressor) is compiled, once, in its current
weights into the dense float32 program it computes in eval mode (C++ ``symm::nn::FlowPolicy``): the observation
tokens are encoded once per control step, each cross-attention's keys and values from them once for all flow
steps, and the step tokens of the fixed time grid are constants. Later changes to the module's weights do not
reach a policy already built; build a new one after training.

    policy = symm.FlowPolicy(model, flow_steps=10, chunk=2, predicts_action=True)
    actions = policy.act(observations)          # (B, cond_horizon, cond) → (B, chunk, action)
"""
from __future__ import annotations

import torch

from . import _C
from .checkpoint import cpp_copy
from .nn import CondTransformerRegressor, eCondTransformerRegressor

__all__ = ["FlowPolicy"]


class FlowPolicy:
    """Euler steps of the flow from noise (t = 0) to the action chunk (t = 1); the regressor sees the step
    k = step_scale · t. ``predicts_action``: the regressor outputs the clean chunk â (step j moves x by
    (â − x)/(n − j)), else the velocity (x += v/n). ``chunk``: actions returned per step, 0 for the horizon."""

    def __init__(self, model: torch.nn.Module, flow_steps: int = 10, step_scale: float = 100.0, chunk: int = 0,
                 predicts_action: bool = False):
        if not isinstance(model, (eCondTransformerRegressor, CondTransformerRegressor)):
            raise TypeError(f"FlowPolicy: expected a symm.nn.eCondTransformerRegressor or CondTransformerRegressor, "
                            f"got {type(model).__name__}")
        self._policy = _C.FlowPolicy(cpp_copy(model), flow_steps, step_scale, chunk, predicts_action)
        self.flow_steps, self.step_scale, self.predicts_action = flow_steps, step_scale, predicts_action

    horizon = property(lambda self: self._policy.horizon)
    chunk = property(lambda self: self._policy.chunk)
    action_dim = property(lambda self: self._policy.action_dim)
    cond_horizon = property(lambda self: self._policy.cond_horizon)
    cond_dim = property(lambda self: self._policy.cond_dim)

    def act(self, observations: torch.Tensor, noise: torch.Tensor | None = None,
            generator: torch.Generator | None = None) -> torch.Tensor:
        """One control step: observations (B, cond_horizon, cond_dim) and noise (B, horizon, action_dim), both
        float32 on the CPU (noise drawn from N(0, 1) with ``generator`` when not given) → (B, chunk, action_dim).
        Bad input raises RuntimeError naming what came, before any work."""
        if noise is None:
            batch = observations.shape[0] if observations.dim() == 3 else 1
            noise = torch.randn(batch, self.horizon, self.action_dim, generator=generator)
        return self._policy.act(observations, noise)

    def act_into(self, observations: torch.Tensor, noise: torch.Tensor, out: torch.Tensor) -> None:
        """act into ``out`` (B, chunk, action_dim), contiguous float32: no allocation once this batch size (or a
        larger one) has run."""
        self._policy.act_into(observations, noise, out)

    def velocity(self, X: torch.Tensor, step: int, observations: torch.Tensor) -> torch.Tensor:
        """The compiled regressor's output for X (B, horizon, action_dim) at grid step ``step`` (k = step_scale ·
        step / flow_steps): the regressor's eval forward, for comparison."""
        return self._policy.velocity(X, step, observations)

    def __repr__(self) -> str:
        return (f"FlowPolicy(horizon={self.horizon}, chunk={self.chunk}, action_dim={self.action_dim}, "
                f"cond_horizon={self.cond_horizon}, cond_dim={self.cond_dim}, flow_steps={self.flow_steps}, "
                f"predicts_action={self.predicts_action})")

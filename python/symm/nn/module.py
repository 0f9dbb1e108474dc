"""What every equivariant module shares: its representations, the constants derived from them (held as
non-persistent buffers, computed once per representation by the group engine), input checks, and the
eval-mode cache of dense maps that is used only when autograd needs nothing."""
from __future__ import annotations

import torch

from .. import _C


__all__ = ["eModule", "InputError"]


class InputError(ValueError, RuntimeError):
    """A bad input to a forward (shape, width, dtype): a ValueError, and a RuntimeError as the C++ modules'
    checks and the older Python modules raise."""


def tracing() -> bool:
    """Whether a forward is being captured (torch.compile, torch.export, jit.trace, ONNX): then nothing is
    cached, and no check reads tensor values."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing()


def autocasting(x: torch.Tensor) -> bool:
    """Whether autocast is on for x's device (never on the meta device, which autocast does not know)."""
    return x.device.type != "meta" and torch.is_autocast_enabled(x.device.type)


def default_device() -> torch.device:
    """The device factory functions use now (a `with torch.device(...)` context included)."""
    return torch.empty(0).device


class eModule(torch.nn.Module):
    """Base of the equivariant modules: in_rep, out_rep and constant buffers.

    A constant is registered with ``_constant(name, master)``: ``master`` is a CPU tensor from the group
    engine (float64, or int64 for an index); the buffer is its copy on the construction device, in the
    module's floating dtype for floating constants. It is not in the state dict (it is derived from the
    representations) and follows ``.to()``. ``reset_parameters()`` refills it from the master, so that a
    module built on the meta device and materialised with ``to_empty`` gets its constants back.
    """

    def __init__(self, in_rep, out_rep=None):
        super().__init__()
        self.in_rep = in_rep
        self.out_rep = in_rep if out_rep is None else out_rep
        self._masters: dict[str, torch.Tensor] = {}

    def _constant(self, name: str, master: torch.Tensor, dtype=None):
        self._masters[name] = master
        # A copy always: the masters are shared by every module on the same representations.
        value = master.to(device=default_device(),
                          dtype=(dtype or torch.get_default_dtype()) if master.is_floating_point() else None, copy=True)
        self.register_buffer(name, value, persistent=False)

    def _reset_constants(self):
        with torch.no_grad():
            for name, master in self._masters.items():
                if getattr(self, name).device.type != "meta":
                    getattr(self, name).copy_(master)

    def _apply(self, fn, recurse=True):
        # A dtype move rounds through the old dtype: refill from the float64 masters, as C++ Constants do.
        super()._apply(fn, recurse)
        self._reset_constants()
        return self

    def reset_parameters(self):
        self._reset_constants()

    def _place(self, device, dtype):
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)


def check_features(module: str, x: torch.Tensor, features: int, what: str = "input"):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{module}: expected {what} to be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 0 or x.shape[-1] != features:
        raise RuntimeError(f"{module}: expected {what} with last dimension {features} (the representation's size), "
                           f"got shape {tuple(x.shape)}")


def check_device_and_dtype(module: str, x: torch.Tensor, like: torch.Tensor, what: str = "input"):
    if x.device != like.device:
        raise RuntimeError(f"{module}: {what} is on {x.device} but the module's parameters are on {like.device}")
    if x.dtype != like.dtype and not torch.is_autocast_enabled(x.device.type):
        raise RuntimeError(f"{module}: {what} has dtype {x.dtype} but the module's parameters have {like.dtype}")


def _hooked(m: torch.nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or getattr(m, "_backward_pre_hooks", None))


def survey(module: torch.nn.Module):
    """(parameters, whether a submodule or a global hook would see a forward) in one pass over the tree: a fast
    path's checks in a few µs, where ``parameters()`` and ``modules()`` cost tens at batch 1. Parameters as
    ``parameters()`` lists them (a parametrized tensor's original included), shared ones possibly twice."""
    g = torch.nn.modules.module
    hooked = bool(g._global_forward_hooks or g._global_forward_pre_hooks or g._global_backward_hooks or
                  getattr(g, "_global_backward_pre_hooks", None))
    params = []

    def visit(m, top):
        nonlocal hooked
        params.extend(p for p in m._parameters.values() if p is not None)
        hooked = hooked or (not top and _hooked(m))  # the module's own hooks fire on any path
        for child in m._modules.values():
            if child is not None:
                visit(child, False)

    visit(module, True)
    return params, hooked


def use_eval_cache(module: torch.nn.Module, params) -> bool:
    """Whether an eval forward may take a dense map cached from ``params``: only when autograd needs nothing
    from them and nothing is being traced; never for meta or transformed (torch.func) tensors."""
    if module.training or tracing():
        return False
    for p in params:
        if p is None:
            continue
        if torch.is_grad_enabled() and p.requires_grad:
            return False
        if p.device.type == "meta" or torch._C._functorch.is_functorch_wrapped_tensor(p):
            return False
    return True


class EvalCache:
    """One dense map of eval mode, recomputed when its parameters change. Parameters are compared by value
    (optimisers, loading, ``.data`` assignments and device moves may change them without touching what a
    version counter or identity would see); the coefficients are far smaller than the maps made from them.
    The value is made outside inference mode and without grad, so that a first forward under
    ``torch.inference_mode()`` cannot leave an inference tensor for later autograd forwards. Not copied
    (a deepcopy or pickle starts empty)."""

    def __init__(self):
        self.keys = None
        self.value = None

    def value_for(self, module, params, compute):
        """The cached value where ``use_eval_cache(module, params)`` allows it, else ``compute()`` afresh."""
        return self.get(params, compute) if use_eval_cache(module, params) else compute()

    def get(self, params, compute):
        params = [p for p in params if p is not None]
        if self.keys is None or not _C.equal_all(self.keys, params):
            with torch.inference_mode(False), torch.no_grad():
                self.value = compute()
                self.keys = [p.detach().clone() for p in params]
        return self.value

    def __deepcopy__(self, memo):
        return EvalCache()

    def __reduce__(self):
        return EvalCache, ()

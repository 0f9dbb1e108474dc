"""eTransformerEncoderLayer's inference fast path (symm.nn.fused): equal to the op-by-op forward, taken only in
eval when autograd needs nothing and no submodule has a hook, and following every parameter change."""
import copy

import pytest
import torch

import symm

R = symm.Representation


def layer_pair(norm="rmsnorm", dtype=torch.float64, spec="C8", copies=4):
    rep = R.regular(symm.group(spec)).copies(copies)
    layer = symm.nn.eTransformerEncoderLayer(rep, symm.nn.eMultiheadAttention(rep, 2), 3 * rep.size, dropout=0.1,
                                             norm_module=norm, execution="dense", dtype=dtype)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return rep, layer.eval()


def op_by_op(layer, *args, **kw):
    """The layer's forward through its submodules: a no-op hook on one of them keeps it off the fast path."""
    handle = layer.norm1.register_forward_hook(lambda m, i, o: None)
    try:
        assert not layer._fused.active(layer, args[0])
        return layer(*args, **kw)
    finally:
        handle.remove()


@pytest.mark.parametrize("norm", ["rmsnorm", "layernorm"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_fast_path_equals_op_by_op(norm, dtype, tol):
    rep, layer = layer_pair(norm, dtype)
    x = torch.randn(3, 6, rep.size, dtype=dtype)
    padding = torch.zeros(3, 6, dtype=torch.bool)
    padding[2, 4:] = True
    float_mask = torch.randn(6, 6, dtype=dtype)
    with torch.no_grad():
        assert layer._fused.active(layer, x)
        for kw in ({}, {"src_key_padding_mask": padding}, {"is_causal": True}, {"src_mask": float_mask}):
            torch.testing.assert_close(layer(x, **kw), op_by_op(layer, x, **kw), rtol=tol, atol=tol)


def test_fast_path_only_when_nothing_needs_the_op_by_op_path():
    rep, layer = layer_pair()
    x = torch.randn(2, 4, rep.size, dtype=torch.float64)
    assert not layer._fused.active(layer, x)  # autograd on, parameters require grad
    with torch.no_grad():
        assert layer._fused.active(layer, x)
        layer.train()
        assert not layer._fused.active(layer, x)
        layer.eval()
    layer.requires_grad_(False)
    assert layer._fused.active(layer, x) and not layer._fused.active(layer, x.requires_grad_())
    rotary = symm.nn.eTransformerEncoderLayer(rep, symm.nn.RotaryAttention(rep, 2), 32).eval()
    with torch.no_grad():
        assert not rotary._fused.active(rotary, x.float().detach())


def test_fast_path_follows_parameters():
    rep, layer = layer_pair("layernorm")
    x = torch.randn(2, 5, rep.size, dtype=torch.float64)
    with torch.no_grad():
        layer(x)
        layer.norm2.affine.scale_dof.mul_(1.5)
        layer.norm1.affine.bias_dof.add_(0.3)
        layer.self_attn.in_proj.weight_dof.mul_(0.5)
        torch.testing.assert_close(layer(x), op_by_op(layer, x), rtol=1e-12, atol=1e-12)
    clone = copy.deepcopy(layer)
    with torch.no_grad(), torch.inference_mode():
        torch.testing.assert_close(clone(x), layer(x), rtol=1e-12, atol=1e-12)
    # A first fast forward under inference_mode leaves nothing that a later autograd forward would save.
    layer.train()
    layer(x).sum().backward()
    assert all(p.grad is not None for p in layer.parameters())

"""eLinear(execution="isotypic"): the same map as the dense path (outputs and gradients), equivariant, with the
eval cache and the module contracts of the dense path."""
import copy

import pytest
import torch

import symm
from conftest import act

R = symm.Representation


def _pairs():
    """(name, in_rep, out_rep): regular copies (several chunks), an output irrep absent from the input (a group
    without weight), C-type (C8) and H-type (Q8) irreps, a scrambled basis."""
    d4, c8, q8 = symm.group("D4"), symm.group("C8"), symm.group("Q8")
    reg = R.regular(d4)
    q = torch.linalg.qr(torch.randn(16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))[0]
    return [
        ("D4 regular", reg.copies(3), reg.copies(2)),
        ("D4 absent irrep", R.irrep(d4, 1) + R.trivial(d4, 2), R.irrep(d4, 1) + R.irrep(d4, 4) + R.trivial(d4, 1)),
        ("C8", R.regular(c8).copies(2), R.regular(c8) + R.irrep(c8, 2)),
        ("Q8", R.regular(q8).copies(2), R.regular(q8) + R.trivial(q8, 1)),
        ("D4 scrambled", reg.copies(2).change_basis(q, "scrambled"), reg),
    ]


PAIRS = _pairs()


@pytest.mark.parametrize("name,rep_in,rep_out", PAIRS, ids=[p[0] for p in PAIRS])
def test_isotypic_equals_dense_outputs_and_gradients(name, rep_in, rep_out):
    dense = symm.nn.eLinear(rep_in, rep_out).double()
    iso = symm.nn.eLinear(rep_in, rep_out, execution="isotypic").double()
    with torch.no_grad():
        dense.bias_dof.normal_()
    iso.load_state_dict(dense.state_dict())
    x = torch.randn(4, 3, rep_in.size, dtype=torch.float64)
    y = dense(x)
    torch.testing.assert_close(iso(x), y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(iso(x[0, 0]), y[0, 0], rtol=1e-12, atol=1e-12)  # one unbatched vector
    r = torch.randn_like(y)
    g_dense = torch.autograd.grad((dense(x) * r).sum(), [dense.weight_dof, dense.bias_dof])
    xi = x.clone().requires_grad_()
    g_iso = torch.autograd.grad((iso(xi) * r).sum(), [iso.weight_dof, iso.bias_dof, xi])
    for a, b in zip(g_iso, g_dense):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_iso[2], r @ dense.weight, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_isotypic_is_equivariant(dtype, tol):
    for name, rep_in, rep_out in PAIRS:
        layer = symm.nn.eLinear(rep_in, rep_out, execution="isotypic").to(dtype)
        with torch.no_grad():
            layer.bias_dof.normal_()
        for train in (True, False):
            layer.train(train)
            x = torch.randn(5, rep_in.size, dtype=dtype)
            y = layer(x)
            worst = max((layer(act(rep_in, g, x)) - act(rep_out, g, y)).abs().max().item()
                        for g in range(rep_in.group.order)) / y.abs().max().item()
            assert worst < tol, f"{name} train={train}: {worst:.3g}"


def test_isotypic_eval_cache_follows_parameters_and_leaves_autograd():
    rep_in, rep_out = PAIRS[0][1], PAIRS[0][2]
    layer = symm.nn.eLinear(rep_in, rep_out, execution="isotypic").eval()
    x = torch.randn(2, rep_in.size)
    with torch.no_grad():
        y0 = layer(x)
        layer.weight_dof.mul_(2)
        assert torch.allclose(layer(x) - layer.bias, 2 * (y0 - layer.bias), atol=1e-5)
    with torch.inference_mode():
        layer(x)
    # eval() changes no autograd: a forward with grad still reaches the coefficients.
    layer(x).sum().backward()
    assert layer.weight_dof.grad is not None and layer.weight_dof.grad.abs().sum() > 0
    clone = copy.deepcopy(layer)
    torch.testing.assert_close(clone(x), layer(x))
    assert "execution=isotypic" in layer.extra_repr()


def test_isotypic_compiles():
    rep_in, rep_out = PAIRS[3][1], PAIRS[3][2]  # Q8: H-type blocks
    layer = symm.nn.eLinear(rep_in, rep_out, execution="isotypic")
    x = torch.randn(6, rep_in.size)
    # Symbolic batch extents: the kernels read the feature extents only.
    torch._dynamo.reset()
    compiled = torch.compile(layer, fullgraph=True, dynamic=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), layer(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(compiled(x[:3]), layer(x[:3]), rtol=1e-5, atol=1e-5)


def test_layers_refuse_isotypic_by_name():
    rep = PAIRS[0][1]
    # The decoder's cross-attention has no isotypic form with positions.
    with pytest.raises(ValueError, match="eTransformerDecoderLayer: execution='isotypic' needs eMultiheadAttention,"):
        symm.nn.eTransformerDecoderLayer(rep, symm.nn.RotaryAttention(rep, 1), symm.nn.eMultiheadAttention(rep, 1),
                                         32, execution="isotypic")
    with pytest.raises(ValueError, match="unknown execution 'fast'"):
        symm.nn.eLinear(rep, rep, execution="fast")

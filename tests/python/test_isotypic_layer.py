"""eTransformerEncoderLayer in the isotypic basis (symm.nn.isotypic): the same function as the op-by-op dense
path (outputs, input and coefficient gradients) for every attention backend, norm and norm placement, equivariant,
and taken only when nothing needs the op-by-op path (hooks, a non-pointwise activation, compile)."""
import pytest
import torch

import symm
from conftest import act

R = symm.Representation
ATTENTIONS = {"mha": symm.nn.eMultiheadAttention, "alibi": symm.nn.ALiBiAttention, "rotary": symm.nn.RotaryAttention}


def perturbed_pair(make):
    """(make("dense"), make("isotypic")) with equal, perturbed parameters (non-trivial norm affines and biases)."""
    dense, iso = make("dense"), make("isotypic")
    with torch.no_grad():
        for p in dense.parameters():
            p.add_(0.2 * torch.randn_like(p))
    iso.load_state_dict(dense.state_dict())
    return dense, iso


def layers(spec="D8", copies=4, heads=2, attention="mha", dtype=torch.float64, **kw):
    """(rep, dense, isotypic) encoder layers."""
    rep = R.regular(symm.group(spec)).copies(copies)
    return rep, *perturbed_pair(lambda execution: symm.nn.eTransformerEncoderLayer(
        rep, ATTENTIONS[attention](rep, heads), 3 * rep.size, dropout=0.0, execution=execution, dtype=dtype, **kw))


CASES = [("D8", 4, 2, "mha", "rmsnorm", True), ("D8", 4, 2, "mha", "layernorm", False),
         ("C8", 4, 2, "alibi", "layernorm", True), ("D8", 6, 2, "rotary", "rmsnorm", True),
         ("D8", 6, 2, "rotary", "layernorm", False), ("O", 2, 1, "mha", "rmsnorm", False),
         ("Q8", 4, 4, "mha", "layernorm", True)]


@pytest.mark.parametrize("spec,copies,heads,attention,norm,norm_first", CASES)
def test_isotypic_layer_equals_dense(spec, copies, heads, attention, norm, norm_first):
    rep, dense, iso = layers(spec, copies, heads, attention, norm_module=norm, norm_first=norm_first)
    x = torch.randn(3, 5, rep.size, dtype=torch.float64)
    padding = torch.zeros(3, 5, dtype=torch.bool)
    padding[1, 3:] = True
    for mask, causal in ((None, False), (padding, False), (None, True)):
        assert iso._isotypic.active(iso, x) and not dense._isotypic.active(dense, x)
        xd, xi = x.clone().requires_grad_(), x.clone().requires_grad_()
        yd = dense(xd, src_key_padding_mask=mask, is_causal=causal, src_mask=None)
        yi = iso(xi, src_key_padding_mask=mask, is_causal=causal, src_mask=None)
        torch.testing.assert_close(yi, yd, rtol=1e-11, atol=1e-11)
        r = torch.randn_like(yd)
        gd = torch.autograd.grad((yd * r).sum(), [xd, *dense.parameters()])
        gi = torch.autograd.grad((yi * r).sum(), [xi, *iso.parameters()])
        for (name, _), a, b in zip([("input", None), *dense.named_parameters()], gi, gd):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_isotypic_layer_is_equivariant(dtype, tol):
    rep, _, iso = layers("D8", 4, 2, "rotary", dtype=dtype, norm_module="layernorm")
    for train in (True, False):
        iso.train(train)
        x = torch.randn(2, 6, rep.size, dtype=dtype)
        with torch.no_grad():
            y = iso(x)
            worst = max((iso(act(rep, g, x)) - act(rep, g, y)).abs().max().item()
                        for g in range(rep.group.order)) / y.abs().max().item()
        assert worst < tol, f"train={train}: {worst:.3g}"


def test_isotypic_layer_dropout_trains():
    """Dropout in training: the branches' dropout in the representation's basis, the hidden one in the permutation
    basis; equivariant in law, so the check is that it drops, trains and stays finite."""
    rep = R.regular(symm.group("D4")).copies(4)
    layer = symm.nn.eTransformerEncoderLayer(rep, symm.nn.eMultiheadAttention(rep, 2), 64, dropout=0.5,
                                             execution="isotypic")
    x = torch.randn(2, 5, rep.size)
    a, b = layer(x), layer(x)
    assert not torch.allclose(a, b)
    a.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
    layer.eval()
    torch.testing.assert_close(layer(x), layer(x))


def test_hooks_take_the_op_by_op_path():
    rep, dense, iso = layers("D8", 4, 2, "mha")
    x = torch.randn(2, 5, rep.size, dtype=torch.float64)
    seen = []
    handle = iso.feedforward.linear1.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    assert not iso._isotypic.active(iso, x)
    torch.testing.assert_close(iso(x), dense(x), rtol=1e-11, atol=1e-11)
    assert seen == [(2, 5, iso.feedforward.hidden_size)]
    handle.remove()
    assert iso._isotypic.active(iso, x)
    # The layer's own hooks do not need the op-by-op path.
    iso.register_forward_hook(lambda m, i, o: seen.append("layer"))
    assert iso._isotypic.active(iso, x)
    iso(x)
    assert seen[-1] == "layer"


def test_parameters_are_read_as_attributes():
    """functional_call swaps the coefficients the isotypic path reads."""
    rep, dense, iso = layers("D8", 4, 2, "mha")
    x = torch.randn(2, 5, rep.size, dtype=torch.float64)
    swapped = {k: 2 * v for k, v in dense.state_dict().items()}
    want = torch.func.functional_call(dense, swapped, (x,))
    got = torch.func.functional_call(iso, swapped, (x,))
    torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-11)
    assert not torch.allclose(got, iso(x))


def test_automatic_follows_the_multiply_adds():
    large = R.regular(symm.group("D8")).copies(8)
    small = R.regular(symm.group("C2")).copies(16)
    auto = lambda rep: symm.nn.eTransformerEncoderLayer(rep, symm.nn.eMultiheadAttention(rep, 2), 4 * rep.size)
    assert auto(large)._isotypic.modes == {True: True, False: True}
    assert auto(small)._isotypic.modes == {True: False, False: False}


def test_isotypic_needs_a_pointwise_activation():
    rep = R.regular(symm.group("D4")).copies(2)
    per_copy = lambda h: h.unflatten(-1, (-1, 8)).softmax(-1).flatten(-2)  # equivariant, but not pointwise
    with pytest.raises(ValueError, match="execution='isotypic' needs.*pointwise"):
        symm.nn.eTransformerEncoderLayer(rep, symm.nn.eMultiheadAttention(rep, 1), 32, activation=per_copy,
                                         execution="isotypic")
    layer = symm.nn.eTransformerEncoderLayer(rep, symm.nn.eMultiheadAttention(rep, 1), 32, activation=per_copy)
    assert not layer._isotypic.active(layer, torch.randn(1, 2, rep.size))


def test_compiled_and_exported_isotypic_layer_take_any_batch_and_length():
    rep, dense, iso = layers("D8", 4, 2, "rotary", dtype=torch.float32)
    x = torch.randn(2, 5, rep.size)
    torch._dynamo.reset()
    compiled = torch.compile(iso, fullgraph=True, dynamic=True, backend="aot_eager")
    for shape in ((2, 5), (3, 7)):
        x = torch.randn(*shape, rep.size, requires_grad=True)
        y = compiled(x)
        torch.testing.assert_close(y, dense(x), rtol=1e-4, atol=1e-4)
        g, = torch.autograd.grad(y.square().sum(), [x])
        torch.testing.assert_close(g, torch.autograd.grad(dense(x).square().sum(), [x])[0], rtol=1e-4, atol=1e-4)
    batch, length = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("length", min=2, max=64)
    exported = torch.export.export(iso.eval(), (torch.randn(2, 5, rep.size),),
                                   dynamic_shapes={"src": {0: batch, 1: length}})
    x = torch.randn(4, 9, rep.size)
    torch.testing.assert_close(exported.module()(x), dense.eval()(x), rtol=1e-4, atol=1e-4)


def test_vmap_over_the_isotypic_layer():
    rep, dense, iso = layers("D8", 4, 2, "mha")
    x = torch.randn(3, 2, 5, rep.size, dtype=torch.float64)
    torch.testing.assert_close(torch.vmap(iso)(x), torch.vmap(dense)(x), rtol=1e-11, atol=1e-11)


def decoders(spec="D8", copies=4, heads=2, dtype=torch.float64, **kw):
    """(rep, dense, isotypic) decoder layers."""
    rep = R.regular(symm.group(spec)).copies(copies)
    return rep, *perturbed_pair(lambda execution: symm.nn.eTransformerDecoderLayer(
        rep, symm.nn.eMultiheadAttention(rep, heads), symm.nn.eMultiheadAttention(rep, heads), 3 * rep.size,
        dropout=0.0, execution=execution, dtype=dtype, **kw))


@pytest.mark.parametrize("spec,copies,heads,norm,norm_first", [("D8", 4, 2, "rmsnorm", True), ("C8", 4, 2, "layernorm", False),
                                                               ("O", 2, 1, "layernorm", True), ("Q8", 4, 4, "rmsnorm", False)])
def test_isotypic_decoder_layer_equals_dense(spec, copies, heads, norm, norm_first):
    rep, dense, iso = decoders(spec, copies, heads, norm_module=norm, norm_first=norm_first)
    tgt, memory = torch.randn(3, 5, rep.size, dtype=torch.float64), torch.randn(3, 7, rep.size, dtype=torch.float64)
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[1, 4:] = True
    for kw in ({}, {"memory_key_padding_mask": padding, "tgt_is_causal": True},
               {"memory_mask": torch.randn(5, 7, dtype=torch.float64)}):
        assert iso._isotypic.active(iso, tgt) and not dense._isotypic.active(dense, tgt)
        xd, md = tgt.clone().requires_grad_(), memory.clone().requires_grad_()
        xi, mi = tgt.clone().requires_grad_(), memory.clone().requires_grad_()
        yd, yi = dense(xd, md, **kw), iso(xi, mi, **kw)
        torch.testing.assert_close(yi, yd, rtol=1e-11, atol=1e-11)
        r = torch.randn_like(yd)
        gd = torch.autograd.grad((yd * r).sum(), [xd, md, *dense.parameters()])
        gi = torch.autograd.grad((yi * r).sum(), [xi, mi, *iso.parameters()])
        for (name, _), a, b in zip([("tgt", None), ("memory", None), *dense.named_parameters()], gi, gd):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_isotypic_decoder_layer_is_equivariant(dtype, tol):
    rep, _, iso = decoders("D8", 4, 2, dtype=dtype, norm_module="layernorm")
    for train in (True, False):
        iso.train(train)
        tgt, memory = torch.randn(2, 6, rep.size, dtype=dtype), torch.randn(2, 4, rep.size, dtype=dtype)
        with torch.no_grad():
            y = iso(tgt, memory)
            worst = max((iso(act(rep, g, tgt), act(rep, g, memory)) - act(rep, g, y)).abs().max().item()
                        for g in range(rep.group.order))
        assert worst < tol * max(1.0, y.abs().max().item()), (train, worst)


def test_automatic_decoder_layer_goes_isotypic_where_the_encoder_does():
    """The regressor's decoder layers (the cond regressor of symm policy) pick the isotypic basis in training as
    the encoder layer of the same width does."""
    rep = R.regular(symm.group("D8")).copies(8)
    enc = symm.nn.eTransformerEncoderLayer(rep, symm.nn.eMultiheadAttention(rep, 2), 4 * rep.size)
    dec = symm.nn.eTransformerDecoderLayer(rep, symm.nn.eMultiheadAttention(rep, 2), symm.nn.eMultiheadAttention(rep, 2),
                                           4 * rep.size)
    assert dec._isotypic.modes == enc._isotypic.modes
    assert dec._isotypic.modes[True]


def test_isotypic_decoder_layer_compiles_and_caches_in_eval():
    rep, dense, iso = decoders("D8", 4, 2, dtype=torch.float32)
    tgt, memory = torch.randn(2, 5, rep.size), torch.randn(2, 3, rep.size)
    torch._dynamo.reset()
    compiled = torch.compile(iso, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(tgt, memory), dense(tgt, memory), rtol=1e-5, atol=1e-5)
    iso.eval(), dense.eval()
    with torch.no_grad():
        first = iso(tgt, memory)
        assert iso.cross_attn.in_proj._iso_chunk_caches  # Q and K/V operands of the cross-attention, cached
        torch.testing.assert_close(iso(tgt, memory), first)
        torch.testing.assert_close(first, dense(tgt, memory), rtol=1e-5, atol=1e-5)

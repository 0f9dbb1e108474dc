import copy

import pytest
import torch

import symm
from conftest import act, encoder_layer


def test_parameters_are_the_cpp_tensors(rep_d4):
    layer = encoder_layer(rep_d4)
    names = [n for n, _ in layer.named_parameters()]
    assert "self_attn.in_proj.weight_dof" in names and "feedforward.linear1.weight_dof" in names
    assert all(isinstance(p, torch.nn.Parameter) for p in layer.parameters())
    # Changing a parameter from Python changes what the C++ forward computes.
    layer.eval()
    x = torch.randn(2, 5, rep_d4.size)
    y0 = layer(x)
    with torch.no_grad():
        layer.feedforward.linear2.weight_dof.mul_(2)
    assert not torch.allclose(layer(x), y0)


def test_equivariance_of_the_layer(rep_d4):
    layer = encoder_layer(rep_d4, norm_module="layernorm").eval()
    report = layer.check_equivariance()
    assert report["layer"] < 1e-5
    x = torch.randn(3, 6, rep_d4.size)
    y = layer(x, is_causal=True)
    for g in range(rep_d4.group.order):
        assert torch.allclose(layer(act(rep_d4, g, x), is_causal=True), act(rep_d4, g, y), atol=1e-5, rtol=1e-5)


def test_positional_backends_and_decoder_are_equivariant(rep_d4):
    x, mem = torch.randn(2, 5, rep_d4.size), torch.randn(2, 7, rep_d4.size)
    pos = torch.rand(2, 5) * 10
    for attn in (symm.nn.RotaryAttention(rep_d4, 2), symm.nn.ALiBiAttention(rep_d4, 2)):
        layer = symm.nn.eTransformerEncoderLayer(rep_d4, attn, dim_feedforward=64, dropout=0.0).eval()
        assert layer.self_attn is attn
        y = layer(x, src_positions=pos)
        for g in range(rep_d4.group.order):
            assert torch.allclose(layer(act(rep_d4, g, x), src_positions=pos), act(rep_d4, g, y), atol=1e-5, rtol=1e-5)
    dec = symm.nn.eTransformerDecoderLayer(rep_d4, symm.nn.eMultiheadAttention(rep_d4, 2),
                                           symm.nn.eMultiheadAttention(rep_d4, 2), dim_feedforward=64).eval()
    y = dec(x, mem, tgt_is_causal=True)
    for g in range(rep_d4.group.order):
        assert torch.allclose(dec(act(rep_d4, g, x), act(rep_d4, g, mem), tgt_is_causal=True), act(rep_d4, g, y),
                              atol=1e-5, rtol=1e-5)


def test_training_steps_from_python(rep_d4):
    torch.manual_seed(1)
    model = symm.nn.eTransformerEncoder(encoder_layer(rep_d4, dropout=0.1), 2, norm=symm.nn.eRMSNorm(rep_d4))
    target = encoder_layer(rep_d4).eval()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.randn(8, 6, rep_d4.size)
    with torch.no_grad():
        y = target(x)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x, is_causal=True), y)
        loss.backward()
        assert all(p.grad is not None for p in model.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    # The trained model stays equivariant.
    model.eval()
    out = model(x)
    for g in (1, 5):
        assert torch.allclose(model(act(rep_d4, g, x)), act(rep_d4, g, out), atol=1e-5, rtol=1e-4)


def test_gradcheck_float64():
    rep = symm.Representation.regular(symm.group("C3")).copies(2)
    layer = encoder_layer(rep, heads=2, dim_feedforward=6).double()
    assert all(p.dtype == torch.float64 for p in layer.parameters())
    x = torch.randn(2, 3, rep.size, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: layer(t, is_causal=True), (x,))
    # Against the parameters too: gradcheck perturbs them in place, which the C++ module sees.
    w1 = layer.feedforward.linear1.weight_dof
    wq = layer.self_attn.in_proj.weight_dof
    scale = layer.norm1.affine.scale_dof
    assert torch.autograd.gradcheck(lambda a, b, c: layer(x.detach()), (w1, wq, scale))
    lin = symm.nn.eLinear(rep, symm.Representation.regular(rep.group)).double()
    assert torch.autograd.gradcheck(lin, (x,))


def test_state_dict_round_trip_and_eval_cache(rep_d4):
    a, b = encoder_layer(rep_d4).eval(), encoder_layer(rep_d4).eval()
    x = torch.randn(2, 5, rep_d4.size)
    ya, yb = a(x), b(x)
    assert not torch.allclose(ya, yb)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    assert torch.equal(b(x), ya)
    b.load_state_dict(encoder_layer(rep_d4).state_dict(), assign=True)  # still copied into the C++ tensors
    assert not torch.allclose(b(x), ya)
    with pytest.raises(RuntimeError, match="size mismatch"):
        b.load_state_dict(encoder_layer(symm.Representation.regular(symm.group("D4")).copies(2)).state_dict())


def test_dtype_and_device_moves(rep_d4):
    layer = encoder_layer(rep_d4).eval()
    x = torch.randn(2, 5, rep_d4.size)
    y = layer(x)
    layer.double()
    y64 = layer(x.double())
    assert y64.dtype == torch.float64 and torch.allclose(y64.float(), y, atol=1e-5)
    layer.float()
    if torch.cuda.is_available():
        layer.to("cuda")
        assert torch.allclose(layer(x.cuda()).cpu(), y, atol=1e-4)


def test_alibi_buffer_follows_dtype(rep_d4):
    attn = symm.nn.ALiBiAttention(rep_d4, 2)
    slopes = attn.slopes
    attn.double()
    assert attn.slopes is slopes and slopes.dtype == torch.float64
    x = torch.randn(1, 4, rep_d4.size, dtype=torch.float64)
    assert attn(x, x, x)[0].dtype == torch.float64


def test_bad_input_raises_with_the_cpp_message(rep_d4):
    layer = encoder_layer(rep_d4)
    with pytest.raises(RuntimeError, match=str(rep_d4.size)):
        layer(torch.randn(2, 5, rep_d4.size + 1))
    other = symm.Representation.regular(symm.group("C8")).copies(4)
    with pytest.raises((RuntimeError, ValueError)) as err:
        symm.nn.eTransformerEncoderLayer(rep_d4, symm.nn.eMultiheadAttention(other, 2))
    assert "C8" in str(err.value) or "D4" in str(err.value)
    with pytest.raises((RuntimeError, ValueError)):
        symm.nn.eMultiheadAttention(rep_d4, 3)  # 3 heads do not divide 4 copies
    with pytest.raises(ValueError, match="activation"):
        encoder_layer(rep_d4, activation=torch.nn.Softplus())
    with pytest.raises(TypeError):
        symm.nn.eTransformerEncoderLayer(rep_d4, torch.nn.MultiheadAttention(rep_d4.size, 2))

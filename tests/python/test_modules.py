import copy

import pytest
import torch

import symm
from conftest import act, encoder, encoder_layer


def _rel(a, b):
    return (a - b).abs().max().item() / max(b.abs().max().item(), 1e-30)


def test_parameters_and_constants(rep_d4):
    layer = encoder_layer(rep_d4)
    names = [n for n, _ in layer.named_parameters()]
    assert "self_attn.in_proj.weight_dof" in names and "feedforward.linear1.weight_dof" in names
    assert all(isinstance(p, torch.nn.Parameter) for p in layer.parameters())
    # Constants are buffers that follow .to() but stay out of the state dict.
    lin = layer.feedforward.linear1
    assert any(n.startswith("_synthesis") for n, _ in lin.named_buffers())
    assert not any(k.split(".")[-1].startswith("_") for k in layer.state_dict())
    layer.eval()
    x = torch.randn(2, 5, rep_d4.size)
    y0 = layer(x)
    with torch.no_grad():
        layer.feedforward.linear2.weight_dof.mul_(2)  # the eval cache sees the change
    assert not torch.allclose(layer(x), y0)
    assert "\n" not in lin.extra_repr() and "dof=" in lin.extra_repr()


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_equivariance_over_group_elements(rep_d4, dtype, tol):
    torch.manual_seed(2)
    x, mem = torch.randn(3, 6, rep_d4.size, dtype=dtype), torch.randn(3, 4, rep_d4.size, dtype=dtype)
    pos = torch.rand(3, 6, dtype=dtype) * 10
    modules = [
        (encoder(rep_d4, norm_module="layernorm"), lambda m, t, s: m(t, is_causal=True)),
        (symm.nn.eTransformerEncoderLayer(rep_d4, symm.nn.RotaryAttention(rep_d4, 2), 64, dropout=0.0),
         lambda m, t, s: m(t, src_positions=pos)),
        (symm.nn.eTransformerEncoderLayer(rep_d4, symm.nn.ALiBiAttention(rep_d4, 2), 64, dropout=0.0, norm_first=False),
         lambda m, t, s: m(t, src_positions=pos)),
        (symm.nn.eTransformerDecoderLayer(rep_d4, symm.nn.eMultiheadAttention(rep_d4, 2),
                                          symm.nn.eMultiheadAttention(rep_d4, 2), 64), lambda m, t, s: m(t, s, tgt_is_causal=True)),
        (symm.nn.InvariantBias(rep_d4), lambda m, t, s: m(t)),
        (symm.nn.eAffine(rep_d4), lambda m, t, s: m(t)),
    ]
    for module, run in modules:
        module = module.to(dtype).eval()
        with torch.no_grad():
            for p in module.parameters():
                p.add_(0.1 * torch.randn_like(p))
        y = run(module, x, mem)
        worst = max(_rel(run(module, act(rep_d4, g, x), act(rep_d4, g, mem)), act(rep_d4, g, y))
                    for g in range(rep_d4.group.order))
        assert worst < tol, f"{type(module).__name__}: {worst:.3g}"
    report = encoder_layer(rep_d4).to(dtype).check_equivariance(atol=tol, rtol=tol)
    assert report["layer"] < tol


def test_training_steps(rep_d4):
    torch.manual_seed(1)
    model = encoder(rep_d4, dropout=0.1)
    target = encoder_layer(rep_d4).eval()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.randn(8, 6, rep_d4.size)
    with torch.no_grad():
        y = target(x)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x, is_causal=True), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    out = model(x)
    for g in (1, 5):
        assert torch.allclose(model(act(rep_d4, g, x)), act(rep_d4, g, out), atol=1e-5, rtol=1e-4)


def test_gradcheck_float64():
    rep = symm.Representation.regular(symm.group("C3")).copies(2)
    layer = encoder_layer(rep, heads=2, dim_feedforward=6).double()
    x = torch.randn(2, 3, rep.size, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: layer(t, is_causal=True), (x,))
    w1, wq, scale = layer.feedforward.linear1.weight_dof, layer.self_attn.in_proj.weight_dof, layer.norm1.affine.scale_dof
    assert torch.autograd.gradcheck(lambda a, b, c: torch.func.functional_call(
        layer, {"feedforward.linear1.weight_dof": a, "self_attn.in_proj.weight_dof": b, "norm1.affine.scale_dof": c},
        (x.detach(),)), (w1.detach().requires_grad_(), wq.detach().requires_grad_(), scale.detach().requires_grad_()))


def test_state_dict_round_trip(rep_d4):
    a, b = encoder_layer(rep_d4).eval(), encoder_layer(rep_d4).eval()
    x = torch.randn(2, 5, rep_d4.size)
    ya = a(x)
    assert not torch.allclose(ya, b(x))
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    assert torch.equal(b(x), ya)
    b.load_state_dict(encoder_layer(rep_d4).state_dict(), assign=True)
    assert not torch.allclose(b(x), ya)
    with pytest.raises(RuntimeError, match="size mismatch"):
        b.load_state_dict(encoder_layer(symm.Representation.regular(symm.group("D4")).copies(2)).state_dict())


def test_dtype_and_device_moves(rep_d4):
    layer = encoder_layer(rep_d4).eval()
    x = torch.randn(2, 5, rep_d4.size)
    y = layer(x)
    layer.double()
    assert all(b.dtype in (torch.float64, torch.int64) for b in layer.buffers())
    y64 = layer(x.double())
    assert y64.dtype == torch.float64 and torch.allclose(y64.float(), y, atol=1e-5)
    layer.float()
    if torch.cuda.is_available():
        layer.to("cuda")
        assert torch.allclose(layer(x.cuda()).cpu(), y, atol=1e-4)


def test_autocast_bfloat16(rep_d4):
    model = encoder(rep_d4).eval()
    x = torch.randn(2, 5, rep_d4.size)
    y = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yb = model(x)
    assert yb.dtype == torch.bfloat16 and _rel(yb.float(), y) < 0.05
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.train()(x).float().square().mean().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


def test_alibi_buffer_follows_dtype(rep_d4):
    attn = symm.nn.ALiBiAttention(rep_d4, 2)
    assert "slopes" in attn.state_dict()
    attn.double()
    assert attn.slopes.dtype == torch.float64
    x = torch.randn(1, 4, rep_d4.size, dtype=torch.float64)
    assert attn(x, x, x)[0].dtype == torch.float64


def test_bad_input_raises_naming_expected_and_got(rep_d4):
    layer = encoder_layer(rep_d4)
    with pytest.raises(RuntimeError, match=f"{rep_d4.size}.*{rep_d4.size + 1}"):
        layer(torch.randn(2, 5, rep_d4.size + 1))
    with pytest.raises(RuntimeError, match="float64.*float32"):
        layer(torch.randn(2, 5, rep_d4.size, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="meta.*cpu"):
        layer(torch.randn(2, 5, rep_d4.size, device="meta"))
    with pytest.raises(RuntimeError, match="key_padding_mask"):
        layer(torch.randn(2, 5, rep_d4.size), src_key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))
    other = symm.Representation.regular(symm.group("C8")).copies(4)
    with pytest.raises(ValueError, match="C8|D4"):
        symm.nn.eTransformerEncoderLayer(rep_d4, symm.nn.eMultiheadAttention(other, 2))
    with pytest.raises(ValueError, match="does not divide"):
        symm.nn.eMultiheadAttention(rep_d4, 3)
    with pytest.raises(ValueError, match="regular"):
        symm.nn.eMultiheadAttention(rep_d4 + symm.Representation.trivial(rep_d4.group), 1)
    with pytest.raises(TypeError):
        symm.nn.eTransformerEncoderLayer(rep_d4, torch.nn.MultiheadAttention(rep_d4.size, 2))
    with pytest.raises(ValueError, match="init_scheme"):
        symm.nn.eLinear(rep_d4, rep_d4, init_scheme="orthogonal")


def _ddp_worker(rank, world, path, rep_spec, result):
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=world)
    torch.manual_seed(0)
    rep = symm.Representation.regular(symm.group(rep_spec)).copies(2)
    model = torch.nn.parallel.DistributedDataParallel(encoder(rep, layers=1))
    x = torch.randn(4, 3, rep.size)
    model(x[rank * 2:(rank + 1) * 2]).square().mean().backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    result[rank] = grads
    dist.destroy_process_group()


def test_ddp_gloo_equals_a_single_process(tmp_path):
    mp = torch.multiprocessing.get_context("spawn")
    with mp.Manager() as manager:
        result = manager.dict()
        torch.multiprocessing.start_processes(_ddp_worker, args=(2, tmp_path / "rdv", "C2", result), nprocs=2,
                                              start_method="spawn")
        grads = [result[0], result[1]]
    torch.manual_seed(0)
    rep = symm.Representation.regular(symm.group("C2")).copies(2)
    model = encoder(rep, layers=1)
    x = torch.randn(4, 3, rep.size)
    (model(x[:2]).square().mean() + model(x[2:]).square().mean()).div(2).backward()
    single = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert torch.allclose(grads[0], grads[1]) and torch.allclose(grads[0], single, atol=1e-6)


def test_constants_follow_the_change_of_basis_not_only_the_matrices():
    """Representations with equal matrices (one fingerprint) may decompose in different bases; the constants the
    modules share are those of their own basis."""
    G = symm.group("C8")
    rep = symm.Representation.regular(G).copies(2)
    q = rep.change_of_basis.clone()
    assert rep.irreps[0] == rep.irreps[len(rep.irreps) // 2] == 0
    h = 0.5 ** 0.5  # the two trivial copies (columns 0 and 8) mixed: the same matrices in another basis
    q[:, [0, 8]] = q[:, [0, 8]] @ torch.tensor([[h, -h], [h, h]], dtype=torch.float64)
    other = symm.Representation(G, rep.irreps, q, "mixed")
    assert other.fingerprint == rep.fingerprint
    x = torch.randn(3, rep.size, dtype=torch.float64)
    for r in (rep, other):
        torch.testing.assert_close(symm.linalg.irrep_radii(x, r)[:, 0], (x @ r.change_of_basis[:, 0]).abs())
        assert torch.equal(symm.nn.eAffine(r)._masters["_q"], r.change_of_basis)
        conv = symm.nn.eConv1d(r, r, 3, dtype=torch.float64)  # its coefficients are those of r's HomBasis
        torch.testing.assert_close(conv.taps()[0], symm._C.HomBasis(r, r).synthesize(conv.weight_dof[0].detach()))

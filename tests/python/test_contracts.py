"""The contracts of torch.nn that PyTorch's own tools rely on (issue 22): every one on a small D4 stack."""
import copy
import pickle

import pytest
import torch
from torch.nn.utils import parametrize

import symm
from conftest import act, encoder, encoder_layer


@pytest.fixture
def rep():
    return symm.Representation.regular(symm.group("D4")).copies(4)  # D = 32


def _model(rep):
    """A torch layer in front, the symm stack, an eLinear head: gradients must cross all of them."""
    return torch.nn.Sequential(torch.nn.Linear(rep.size, rep.size), encoder(rep), symm.nn.eLinear(rep, rep))


def test_eval_mode_keeps_gradients(rep):
    model = _model(rep).eval()
    model(torch.randn(2, 5, rep.size)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"eval cut the gradients of {missing}"


def test_inference_mode_and_no_grad_before_training_are_harmless(rep):
    model = _model(rep)
    x = torch.randn(2, 5, rep.size)
    model.eval()
    with torch.inference_mode():
        y_inf = model(x)
    with torch.no_grad():
        y_ng = model(x)
    assert torch.equal(y_inf, y_ng)
    for mode in (model.eval, model.train):  # eval with autograd, then a training step
        mode()
        model.zero_grad()
        model(x.requires_grad_()).square().mean().backward()
        assert all(p.grad is not None for p in model.parameters())
    # Frozen parameters, an input that requires grad: the cached eval weights are saved for backward.
    model.eval().requires_grad_(False)
    with torch.inference_mode():
        model(x.detach())
    xg = x.detach().requires_grad_()
    model(xg).sum().backward()
    assert xg.grad is not None


def test_hooks_fire_on_every_submodule(rep):
    model = _model(rep)
    forward, backward = set(), set()
    for name, m in model.named_modules():
        m.register_forward_hook(lambda mod, args, out, name=name: forward.add(name))
        m.register_full_backward_hook(lambda mod, gin, gout, name=name: backward.add(name))
    model(torch.randn(2, 5, rep.size, requires_grad=True)).sum().backward()
    everything = {name for name, m in model.named_modules() if not isinstance(m, torch.nn.ModuleList)}
    assert forward == everything, f"no forward hook on {everything - forward}"
    # A full backward hook fires on the modules whose outputs reach the loss through tensors.
    assert {"1.layers.0.self_attn.in_proj", "1.layers.1.feedforward.linear2", "2", "1.norm.affine"} <= backward


def test_forward_pre_hook_changes_what_runs(rep):
    model = encoder(rep).eval()
    x = torch.randn(2, 5, rep.size)
    y = model(x)
    handle = model.layers[1].feedforward.linear1.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    assert not torch.allclose(model(x), y)
    handle.remove()
    assert torch.allclose(model(x), y)


def test_parametrize_and_functional_call_take_effect(rep):
    model = encoder(rep).eval()
    x = torch.randn(2, 5, rep.size)
    y = model(x)
    lin = model.layers[0].feedforward.linear1

    class Double(torch.nn.Module):
        def forward(self, w):
            return 2 * w

    parametrize.register_parametrization(lin, "weight_dof", Double())
    y2 = model(x)
    assert not torch.allclose(y2, y)
    parametrize.remove_parametrizations(lin, "weight_dof", leave_parametrized=False)
    assert torch.allclose(model(x), y)
    params = {k: v * 1.5 if k.endswith("weight_dof") else v for k, v in model.named_parameters()}
    y3 = torch.func.functional_call(model, params, (x,))
    assert not torch.allclose(y3, y)
    with torch.no_grad():
        for k, p in model.named_parameters():
            if k.endswith("weight_dof"):
                p.mul_(1.5)
    assert torch.allclose(model(x), y3, atol=1e-6)


def test_deepcopy_pickle_torch_save_and_averaged_model(rep, tmp_path):
    model = encoder(rep).eval()
    x = torch.randn(2, 5, rep.size)
    y = model(x)
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert torch.equal(other(x), y)
        assert other.layers[0].feedforward.linear1.weight_dof is not model.layers[0].feedforward.linear1.weight_dof
    torch.save(model, tmp_path / "model.pt")
    loaded = torch.load(tmp_path / "model.pt", weights_only=False)
    assert torch.equal(loaded(x), y)
    # The copy is independent: training it leaves the original alone.
    twin = copy.deepcopy(model).train()
    opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    twin(x).square().mean().backward()
    opt.step()
    assert torch.equal(model(x), y) and not torch.allclose(twin.eval()(x), y)
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.9))
    ema.update_parameters(twin)
    assert torch.allclose(ema.module.eval()(x), ema(x))
    p_model, p_twin = model.layers[0].feedforward.linear1.weight_dof, twin.layers[0].feedforward.linear1.weight_dof
    assert torch.allclose(ema.module.layers[0].feedforward.linear1.weight_dof, p_model)  # first update copies
    ema.update_parameters(twin)
    assert torch.allclose(ema.module.layers[0].feedforward.linear1.weight_dof, 0.9 * p_model + 0.1 * p_twin, atol=1e-6)


def test_meta_construction_then_to_empty_and_reset_parameters(rep):
    reference = encoder(rep, norm_module="layernorm").eval()
    with torch.device("meta"):
        meta = encoder(rep, norm_module="layernorm")
    assert all(t.device.type == "meta" for t in list(meta.parameters()) + list(meta.buffers()))
    meta.to_empty(device="cpu")
    for m in meta.modules():  # a reset_parameters() loop over modules() finds it everywhere
        if not isinstance(m, (torch.nn.Dropout, torch.nn.GELU, torch.nn.ModuleList)):
            m.reset_parameters()
    meta.eval()
    # The constants are back exactly; the parameters are a fresh draw of the same initialisation.
    buffers, expected = dict(meta.named_buffers()), dict(reference.named_buffers())
    assert buffers.keys() == expected.keys()
    for name, b in buffers.items():
        assert torch.equal(b, expected[name]), name
    for (name, p), (_, r) in zip(meta.named_parameters(), reference.named_parameters()):
        assert p.shape == r.shape and torch.isfinite(p).all(), name
        if name.endswith("scale_dof"):
            assert torch.equal(p, r), name
    x = torch.randn(2, 5, rep.size)
    y = meta(x)
    for g in (1, 6):
        assert torch.allclose(meta(act(rep, g, x)), act(rep, g, y), atol=1e-5, rtol=1e-5)
    moved = copy.deepcopy(reference).to("meta")
    assert moved(x.to("meta")).shape == (2, 5, rep.size)


def test_torch_func_vmap_grad_jacrev(rep):
    layer = encoder_layer(rep).eval()
    x = torch.randn(3, 4, rep.size)
    batched = torch.func.vmap(lambda t: layer(t.unsqueeze(0)).squeeze(0))(x)
    assert torch.allclose(batched, layer(x), atol=1e-5)
    params = dict(layer.named_parameters())
    loss = lambda p, t: torch.func.functional_call(layer, p, (t,)).square().mean()
    grads = torch.func.grad(loss)(params, x)
    layer.zero_grad()
    layer(x).square().mean().backward()
    for k, p in layer.named_parameters():
        assert torch.allclose(grads[k], p.grad, atol=1e-6), k
    lin = symm.nn.eLinear(rep, symm.Representation.regular(rep.group))
    v = torch.randn(rep.size)
    jac = torch.func.jacrev(lin)(v)
    assert torch.allclose(jac, lin.weight, atol=1e-6)


@pytest.mark.parametrize("activation", [torch.nn.SiLU(), torch.nn.Mish(), torch.nn.PReLU(), torch.nn.Softmax(dim=-1),
                                        torch.nn.functional.gelu, torch.nn.Hardtanh(-0.5, 0.5)])
def test_any_equivariant_activation(rep, activation):
    layer = encoder_layer(rep, activation=activation).eval()
    x = torch.randn(2, 5, rep.size)
    y = layer(x)
    for g in range(rep.group.order):
        assert torch.allclose(layer(act(rep, g, x)), act(rep, g, y), atol=1e-5, rtol=1e-5)


class ChannelSlopes(torch.nn.Module):
    """A leaky ReLU with one slope per hidden channel (PReLU's per-channel form on the last dimension)."""

    def __init__(self, n):
        super().__init__()
        self.slope = torch.nn.Parameter(torch.full((n,), 0.25))

    def forward(self, x):
        return torch.where(x > 0, x, self.slope * x)


@pytest.mark.parametrize("activation", [ChannelSlopes(64), torch.nn.Linear(64, 64), torch.nn.LayerNorm(64)])
def test_activation_not_equivariant_on_the_hidden_copies_is_refused(rep, activation):
    # ChannelSlopes and LayerNorm are equivariant at their initial values (equal slopes, ones): the check
    # redraws the parameters.
    with pytest.raises(ValueError, match="not equivariant"):
        encoder_layer(rep, activation=activation)
    with pytest.raises(ValueError, match="activation PReLU"):  # torch's PReLU takes dim 1 (tokens) as channels
        encoder_layer(rep, activation=torch.nn.PReLU(64))

"""The Python models (eMLP, iMLP, eCondTransformerRegressor, CondTransformerRegressor): equal to the C++ modules on
the same coefficients, equivariant over the group's elements, and keeping torch.nn's contracts."""
import copy

import pytest
import torch

import symm
from conftest import act
from symm.nn import CondTransformerRegressor, eCondTransformerRegressor, eMLP, iMLP

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def rep_of(group, copies):
    G = symm.group(group) if isinstance(group, str) else group
    return symm.Representation.regular(G).copies(copies)


def mixed_rep(G):
    """A representation that is not regular copies: two irreps and a regular copy, in a random basis."""
    rep = symm.Representation.irrep(G, 1) + symm.Representation.irrep(G, len(G.irreps) - 1) + symm.Representation.regular(G)
    q, _ = torch.linalg.qr(torch.randn(rep.size, rep.size, dtype=torch.float64))
    return rep.change_basis(q, "mixed")


def emlp(G, dtype=torch.float32, **kw):
    rep = mixed_rep(G)
    return eMLP(rep, rep_of(G, 1) + symm.Representation.irrep(G, 1), [2 * G.order, 3 * G.order], dtype=dtype, **kw)


def regressor(G, dtype=torch.float32, **kw):
    rep = mixed_rep(G)
    kw = {"num_cond_layers": 1, "causal_attn": True, "p_drop_emb": 0.1, "p_drop_attn": 0.1, **kw}
    return eCondTransformerRegressor(rep, rep_of(G, 1), rep, in_horizon=4, cond_horizon=3, num_layers=2,
                                     num_attention_heads=2, embedding_dim=2 * G.order, dtype=dtype, **kw)


def randomise(model):
    """Moves every parameter off its initial value (zero positional embeddings, unit norm scales)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def regressor_inputs(model, dtype, B=3, tx=4, tz=3):
    return (torch.randn(B, tx, model.in_rep.size, dtype=dtype), torch.rand(B, dtype=dtype) * 50,
            torch.randn(B, tz, model.cond_rep.size, dtype=dtype))


# --- equivariance over group elements -----------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("spec", ["D4", "C5"])
def test_emlp_is_equivariant(spec, dtype):
    model = randomise(emlp(symm.group(spec), dtype, activation=torch.nn.SiLU())).eval()
    x = torch.randn(5, 2, model.in_rep.size, dtype=dtype)
    with torch.no_grad():
        y = model(x)
        err = max(rel(model(act(model.in_rep, g, x)), act(model.out_rep, g, y)) for g in range(model.in_rep.group.order))
    assert err < TOL[dtype], err


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("spec", ["D4", "A4"])
def test_imlp_is_invariant(spec, dtype):
    G = symm.group(spec)
    model = randomise(iMLP(mixed_rep(G), 3, [2 * G.order, 2 * G.order], activation=torch.nn.GELU(), dtype=dtype)).eval()
    # One value per irrep copy of the two pooled regular copies (ψ occurs dim ψ / dim End(ψ) times in each).
    assert model.head.in_features == 2 * sum(irrep.dim // irrep.endo_dim for irrep in G.irreps)
    x = torch.randn(6, model.in_rep.size, dtype=dtype)
    with torch.no_grad():
        y = model(x)
        err = max(rel(model(act(model.in_rep, g, x)), y) for g in range(G.order))
    assert err < TOL[dtype], err
    # Not constant: the invariants carry the input.
    assert rel(model(torch.randn_like(x)), y) > 1e-2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_regressor_is_equivariant(dtype):
    G = symm.group("D4")
    model = randomise(regressor(G, dtype)).eval()
    X, k, Z = regressor_inputs(model, dtype)
    with torch.no_grad():
        y = model(X, k, Z)
        err = max(rel(model(act(model.in_rep, g, X), k, act(model.cond_rep, g, Z)), act(model.out_rep, g, y))
                  for g in range(G.order))
    assert err < TOL[dtype], err
    # The step and the causal masks matter.
    assert rel(model(X, k + 1, Z), y) > 1e-3
    assert model(X[:, :2], 0.5, Z[:, :1]).shape == (3, 2, model.out_rep.size)


def test_causal_regressor_ignores_later_tokens():
    model = randomise(regressor(symm.group("C4"), torch.float64)).eval()
    X, k, Z = regressor_inputs(model, torch.float64)
    X2 = X.clone()
    X2[:, 2:] += 1.0  # (the condition encoder itself is not causal: every output reads every condition token)
    with torch.no_grad():
        y, y2 = model(X, k, Z), model(X2, k, Z)
    assert torch.allclose(y[:, :2], y2[:, :2], atol=1e-12) and not torch.allclose(y[:, 2:], y2[:, 2:])


# --- parity with the C++ modules ----------------------------------------------------------------------

def cpp_class(name):
    cls = getattr(symm._C, name, None)
    if cls is None:
        pytest.skip(f"symm._C.{name} is not bound")
    return cls


def test_emlp_and_imlp_equal_the_cpp_modules():
    cpp_class("eMLP"), cpp_class("iMLP")
    G = symm.group("D4")
    for model, x in ((randomise(emlp(G, torch.float64)), torch.randn(4, 3, mixed_rep(G).size, dtype=torch.float64)),
                     (randomise(iMLP(rep_of("D4", 2), 3, [16, 24], dtype=torch.float64)),
                      torch.randn(4, 16, dtype=torch.float64))):
        model.eval()
        twin = symm.checkpoint.cpp_copy(model)
        with torch.no_grad():
            assert rel(twin.forward(x), model(x)) < 1e-12


@pytest.mark.parametrize("num_cond_layers,norm_module", [(0, "rmsnorm"), (1, "layernorm")])
def test_regressors_equal_the_cpp_modules(num_cond_layers, norm_module):
    cpp_class("eCondTransformerRegressor"), cpp_class("CondTransformerRegressor")
    G = symm.group("D4")
    model = randomise(regressor(G, torch.float64, num_cond_layers=num_cond_layers, norm_module=norm_module)).eval()
    X, k, Z = regressor_inputs(model, torch.float64)
    with torch.no_grad():
        assert rel(symm.checkpoint.cpp_copy(model).forward(X, k, Z), model(X, k, Z)) < 1e-10
    plain = randomise(CondTransformerRegressor(5, 7, 3, 4, 3, num_layers=2, num_attention_heads=2, embedding_dim=16,
                                               causal_attn=True, num_cond_layers=num_cond_layers,
                                               norm_module=norm_module, dtype=torch.float64)).eval()
    X, Z = torch.randn(3, 4, 5, dtype=torch.float64), torch.randn(3, 2, 7, dtype=torch.float64)
    with torch.no_grad():
        assert rel(symm.checkpoint.cpp_copy(plain).forward(X, k, Z), plain(X, k, Z)) < 1e-10


# --- torch.nn contracts -------------------------------------------------------------------------------

def all_models():
    """Each model with a function drawing its inputs; no dropout, so that two training runs compute alike."""
    G = symm.group("D4")
    plain = CondTransformerRegressor(5, 7, 3, 4, 3, num_layers=1, num_attention_heads=2, embedding_dim=16, p_drop_emb=0.0,
                                     p_drop_attn=0.0)
    return [(emlp(G), lambda m: (torch.randn(3, m.in_rep.size),)),
            (iMLP(rep_of(G, 2), 2, [16]), lambda m: (torch.randn(3, m.in_rep.size),)),
            (regressor(G, num_cond_layers=0, p_drop_emb=0.0, p_drop_attn=0.0), lambda m: regressor_inputs(m, torch.float32)),
            (plain, lambda m: (torch.randn(2, 4, 5), torch.tensor(3.0), torch.randn(2, 3, 7)))]


@pytest.mark.parametrize("index", range(4))
def test_gradients_reach_every_parameter_in_eval(index):
    model, inputs = all_models()[index]
    model = randomise(model).eval()
    front = torch.nn.Linear(inputs(model)[0].shape[-1], inputs(model)[0].shape[-1])  # a torch layer in front
    args = inputs(model)
    model(front(args[0]), *args[1:]).square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing and front.weight.grad is not None, missing


@pytest.mark.parametrize("index", range(4))
def test_deepcopy_and_ema(index):
    model, inputs = all_models()[index]
    model = randomise(model).eval()
    args = inputs(model)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        assert torch.equal(twin(*args), model(*args))
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.5))
    ema.update_parameters(model)  # the first update copies
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update_parameters(model)
    for (name, p), q in zip(model.named_parameters(), ema.module.parameters()):
        assert torch.allclose(q, 0.5 * before[name] + 0.5 * p, atol=1e-6), name  # lerp rounds apart from the mean
    ema.eval()
    with torch.no_grad():
        assert ema(*args).shape == model(*args).shape


@pytest.mark.parametrize("index", range(4))
def test_compile_equals_eager(index):
    model, inputs = all_models()[index]
    model = randomise(model)
    args = inputs(model)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    model.eval()
    with torch.no_grad():
        assert rel(compiled(*args), model(*args)) < 1e-5
    model.train()
    model(*args).square().sum().backward()
    eager = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled(*args).square().sum().backward()
    for (name, p), g in zip(model.named_parameters(), eager):
        assert rel(p.grad, g) < 1e-4, name


def test_bad_input_is_refused():
    G = symm.group("D4")
    model = emlp(G)
    with pytest.raises(RuntimeError, match="last dimension"):
        model(torch.randn(2, model.in_rep.size + 1))
    rep = rep_of(G, 1)
    with pytest.raises(ValueError, match="not equivariant"):
        eMLP(rep, rep, [16], activation=torch.nn.Linear(16, 16))  # mixes the features
    with pytest.raises(ValueError, match="not equivariant|failed"):
        eMLP(rep, rep, [16], activation=torch.nn.PReLU(16))  # one slope per feature
    eMLP(rep, rep, [16], activation=torch.nn.PReLU())  # one shared slope is pointwise
    with pytest.raises(ValueError, match="same group|of D4 but"):
        eMLP(rep, rep_of("C4", 1), [8])
    reg = regressor(G)
    X, k, Z = regressor_inputs(reg, torch.float32)
    with pytest.raises(ValueError, match="expected X of shape"):
        reg(X[:, :, 1:], k, Z)
    with pytest.raises(ValueError, match="expected Z of shape"):
        reg(X, k, torch.randn(3, 9, reg.cond_rep.size))
    with pytest.raises(ValueError, match="step k"):
        reg(X, torch.ones(2), Z)
    with pytest.raises(ValueError, match="num_attention_heads"):
        eCondTransformerRegressor(rep, rep, rep, 4, 3, 1, num_attention_heads=3, embedding_dim=16)

"""symm.FlowPolicy: a control step equals the Euler loop over the Python regressor's own eval forward (the
equivariant and the plain regressor, velocity and action prediction), the sampled chunk is equivariant, and bad
input is refused with the policy still usable."""
import pytest
import torch

import symm
from conftest import act
from symm.nn import CondTransformerRegressor, eCondTransformerRegressor

STEPS, HORIZON, OBS = 4, 6, 2


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def plane(G):
    return next(symm.Representation.irrep(G, k) for k, irrep in enumerate(G.irreps) if irrep.dim == 2)


def equivariant_model():
    G = symm.group("D4")
    p = plane(G)
    model = eCondTransformerRegressor(p, p + p, p, in_horizon=HORIZON, cond_horizon=OBS, num_layers=2,
                                      num_attention_heads=2, embedding_dim=32, p_drop_emb=0.0, p_drop_attn=0.0)
    return randomised(model)


def plain_model():
    model = CondTransformerRegressor(2, 4, 2, in_horizon=HORIZON, cond_horizon=OBS, num_layers=2,
                                     num_attention_heads=2, embedding_dim=32, p_drop_emb=0.0, p_drop_attn=0.0)
    return randomised(model)


def randomised(model):
    with torch.no_grad():  # non-zero positions, biases and norm affines, so that folding them matters
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def euler(model, obs, noise, chunk, predicts_action):
    x = noise.clone()
    with torch.no_grad():
        for j in range(STEPS):
            out = model(x, 100.0 * j / STEPS, obs)
            x = x + (out - x) / (STEPS - j) if predicts_action else x + out / STEPS
    return x[:, :chunk]


@pytest.mark.parametrize("predicts_action", [False, True])
@pytest.mark.parametrize("make", [equivariant_model, plain_model])
def test_control_step_equals_the_euler_loop(make, predicts_action):
    model = make()
    policy = symm.FlowPolicy(model, flow_steps=STEPS, chunk=4, predicts_action=predicts_action)
    assert (policy.horizon, policy.chunk, policy.action_dim, policy.cond_horizon, policy.cond_dim) == (HORIZON, 4, 2, OBS, 4)
    obs, noise = torch.randn(3, OBS, 4), torch.randn(3, HORIZON, 2)
    want = euler(model, obs, noise, 4, predicts_action)
    assert rel(policy.act(obs, noise), want) < 1e-5
    out = torch.empty(3, 4, 2)
    policy.act_into(obs, noise, out)
    assert rel(out, want) < 1e-5
    with torch.no_grad():
        assert rel(policy.velocity(noise, 1, obs), model(noise, 100.0 / STEPS, obs)) < 1e-5
    torch.manual_seed(5)
    drawn = policy.act(obs)
    torch.manual_seed(5)
    assert torch.equal(drawn, policy.act(obs, torch.randn(3, HORIZON, 2)))


def test_policy_is_a_snapshot_of_the_weights():
    model = equivariant_model()
    policy = symm.FlowPolicy(model, flow_steps=STEPS)
    obs, noise = torch.randn(2, OBS, 4), torch.randn(2, HORIZON, 2)
    before = policy.act(obs, noise)
    with torch.no_grad():
        model.head.weight_dof.add_(1.0)
    assert torch.equal(policy.act(obs, noise), before)
    assert rel(symm.FlowPolicy(model, flow_steps=STEPS).act(obs, noise), euler(model, obs, noise, HORIZON, False)) < 1e-5


def test_sampled_chunk_is_equivariant():
    model = equivariant_model()
    policy = symm.FlowPolicy(model, flow_steps=STEPS, chunk=3)
    obs, noise = torch.randn(2, OBS, 4), torch.randn(2, HORIZON, 2)
    y = policy.act(obs, noise)
    err = max(rel(policy.act(act(model.cond_rep, g, obs), act(model.in_rep, g, noise)), act(model.out_rep, g, y))
              for g in range(model.in_rep.group.order))
    assert err < 1e-5, err


def test_bad_input_is_refused_and_the_policy_stays_usable():
    model = equivariant_model()
    policy = symm.FlowPolicy(model, flow_steps=STEPS)
    obs, noise = torch.randn(2, OBS, 4), torch.randn(2, HORIZON, 2)
    want = policy.act(obs, noise)
    bad_obs = obs.clone()
    bad_obs[1, 0, 2] = float("nan")
    for o, n, what in [(torch.randn(2, OBS, 5), noise, "observations"), (obs, torch.randn(2, HORIZON + 1, 2), "noise"),
                       (bad_obs, noise, "non-finite"), (obs.double(), noise, "float32")]:
        with pytest.raises(RuntimeError, match=what):
            policy.act(o, n)
    with pytest.raises(RuntimeError, match="out"):
        policy.act_into(obs, noise, torch.empty(2, 3, 2))
    assert torch.equal(policy.act(obs, noise), want)
    with pytest.raises(RuntimeError, match="chunk"):
        symm.FlowPolicy(model, chunk=HORIZON + 1)
    with pytest.raises(RuntimeError, match="causal"):
        symm.FlowPolicy(eCondTransformerRegressor(model.in_rep, model.cond_rep, model.out_rep, HORIZON, OBS, 1, 2, 32,
                                                  causal_attn=True))
    with pytest.raises(TypeError, match="eCondTransformerRegressor"):
        symm.FlowPolicy(torch.nn.Linear(2, 2))

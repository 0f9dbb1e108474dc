"""The additive positional attentions: equivariant over every group element, equal to eMultiheadAttention on
the inputs and logit bias they are defined by, and their bad positions named."""
import pytest
import torch

import symm
from conftest import act
from test_checkpoint import COPIES, FF, GROUP, HEADS, LAYERS, run_peer, trained

R = symm.Representation


def _pair(rep, dtype=torch.float64):
    pos = symm.nn.eAdditivePosMultiheadAttention(rep, 2, 16).to(dtype)
    rel = symm.nn.eAdditiveRelMultiheadAttention(rep, 2, 3).to(dtype)
    for m in (pos, rel):
        m.reset_parameters()  # non-zero tables
        with torch.no_grad():
            m.in_proj.bias_dof.normal_()
    return pos, rel


def _calls(rep, dtype):
    """Self-attention with default positions; causal + padding with integer positions and an invalid one; cross
    attention with key positions."""
    x = torch.randn(2, 5, rep.size, dtype=dtype)
    mem = torch.randn(2, 4, rep.size, dtype=dtype)
    valid = torch.ones(2, 5, dtype=torch.bool)
    valid[1, 4] = False
    padding = torch.zeros(2, 5, dtype=torch.bool)
    padding[0, 3] = True
    positions = torch.tensor([[0, 1, 2, 3, 4], [3, 5, 6, 9, 15]])
    return [
        ("self", lambda m, a, b: m(a, a, a)),
        ("causal+padding", lambda m, a, b: m(a, a, a, query_positions=positions, key_padding_mask=padding, is_causal=True,
                                             query_position_mask=valid)),
        ("cross", lambda m, a, b: m(a, b, b, query_positions=positions, key_positions=torch.tensor([[0, 2, 4, 6], [1, 1, 7, 8]]))),
    ], x, mem


@pytest.mark.parametrize("spec", ["D4", "C8"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_equivariant_over_every_element(spec, dtype, tol):
    rep = R.regular(symm.group(spec)).copies(2)
    calls, x, mem = _calls(rep, dtype)
    for module in _pair(rep, dtype):
        for train in (True, False):
            module.train(train)
            for name, call in calls:
                y, _ = call(module, x, mem)
                worst = max((call(module, act(rep, g, x), act(rep, g, mem))[0] - act(rep, g, y)).abs().max().item()
                            for g in range(rep.group.order)) / y.abs().max().item()
                assert worst < tol, f"{type(module).__name__} {name} train={train}: {worst:.3g}"


def _mha_like(module):
    mha = symm.nn.eMultiheadAttention(module.in_rep, module.num_heads).double()
    mha.load_state_dict({k: v for k, v in module.state_dict().items() if k.startswith(("in_proj", "out_proj"))})
    return mha


def test_pos_is_attention_on_the_shifted_query_and_key():
    rep = R.regular(symm.group("D4")).copies(2)
    pos, _ = _pair(rep)
    mha = _mha_like(pos)
    x = torch.randn(2, 5, rep.size, dtype=torch.float64)
    p = torch.tensor([[0, 1, 2, 3, 4], [7, 3, 2, 9, 15]])
    e = pos.pos_emb[p] @ symm.linalg.invariant_orthogonal_projector(rep, dtype=torch.float64)
    want, w_want = mha(x + e, x + e, x, need_weights=True)
    got, w_got = pos(x, x, x, query_positions=p, need_weights=True)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(w_got, w_want, rtol=1e-12, atol=1e-12)
    # The table is invariant after projection: ρ(g) e = e for every g.
    for g in range(rep.group.order):
        torch.testing.assert_close(act(rep, g, e), e, rtol=0, atol=1e-12)
    assert set(pos.state_dict()) >= {"pos_emb", "in_proj.weight_dof", "out_proj.weight_dof"}


def test_rel_is_attention_with_the_clipped_relative_bias():
    rep = R.regular(symm.group("C8")).copies(2)
    _, rel = _pair(rep)
    mha = _mha_like(rel)
    x = torch.randn(2, 5, rep.size, dtype=torch.float64)
    p = torch.tensor([[0.0, 1.5, 2.0, 7.0, 8.0], [3.0, 3.2, 6.0, 9.9, 15.0]])
    d = (p[:, :, None] - p[:, None, :]).clamp(-3, 3).trunc().long() + 3
    bias = -rel.rel_bias[d]  # (B, T, S), shared by the heads
    mask = bias.repeat_interleave(rel.num_heads, 0)  # (B·H, T, S)
    want, _ = mha(x, x, x, attn_mask=mask)
    got, _ = rel(x, x, x, query_positions=p)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert "rel_bias" in rel.state_dict()


def test_tables_start_at_zero_and_plug_into_the_encoder_layer():
    rep = R.regular(symm.group("D4")).copies(2)
    pos = symm.nn.eAdditivePosMultiheadAttention(rep, 2, 8)
    rel = symm.nn.eAdditiveRelMultiheadAttention(rep, 2, 4)
    assert pos.pos_emb.abs().max() == 0 and rel.rel_bias.abs().max() == 0  # as symm_learning's
    x = torch.randn(2, 6, rep.size)
    for attn in (pos, rel):
        layer = symm.nn.eTransformerEncoderLayer(rep, attn, 32, dropout=0.0).eval()
        y = layer(x, src_positions=torch.arange(6).expand(2, 6))
        worst = max((layer(act(rep, g, x), src_positions=torch.arange(6).expand(2, 6)) - act(rep, g, y)).abs().max().item()
                    for g in range(rep.group.order))
        assert worst < 1e-4 * y.abs().max().item()


def test_bad_positions_and_arguments_are_named():
    rep = R.regular(symm.group("D4")).copies(2)
    pos = symm.nn.eAdditivePosMultiheadAttention(rep, 2, 8)
    x = torch.randn(1, 3, rep.size)
    with pytest.raises(RuntimeError, match=r"query positions must be in \[0, max_len = 8\), got \[0, 9\]"):
        pos(x, x, x, query_positions=torch.tensor([[0, 1, 9]]))
    with pytest.raises(RuntimeError, match="must be integers"):
        pos(x, x, x, query_positions=torch.tensor([[0.0, 0.5, 1.0]]))
    with pytest.raises(ValueError, match="max_len must be positive, got 0"):
        symm.nn.eAdditivePosMultiheadAttention(rep, 2, 0)
    with pytest.raises(ValueError, match="max_distance must be positive, got -1"):
        symm.nn.eAdditiveRelMultiheadAttention(rep, 2, -1)
    with pytest.raises(ValueError, match="num_heads 3 does not divide"):
        symm.nn.eAdditiveRelMultiheadAttention(rep, 3, 2)


def test_module_contracts():
    """eval() keeps autograd, inference_mode leaves nothing behind, hooks fire, deepcopy and torch.compile agree."""
    import copy
    rep = R.regular(symm.group("D4")).copies(2)
    x = torch.randn(2, 5, rep.size)
    p = torch.arange(5).expand(2, 5)
    for module in (symm.nn.eAdditivePosMultiheadAttention(rep, 2, 8), symm.nn.eAdditiveRelMultiheadAttention(rep, 2, 3)):
        module.reset_parameters()
        module.eval()
        with torch.inference_mode():
            first, _ = module(x, x, x, query_positions=p)
        y, _ = module(x, x, x, query_positions=p)
        torch.testing.assert_close(y, first)
        y.sum().backward()
        table = module.pos_emb if hasattr(module, "pos_emb") else module.rel_bias
        assert table.grad is not None and table.grad.abs().sum() > 0
        seen = []
        handle = module.register_forward_hook(lambda m, args, out: seen.append(out[0].shape))
        module(x, x, x, query_positions=p)
        handle.remove()
        assert seen == [torch.Size([2, 5, rep.size])]
        torch.testing.assert_close(copy.deepcopy(module)(x, x, x, query_positions=p)[0], y)
        torch._dynamo.reset()
        compiled = torch.compile(module, backend="aot_eager")
        torch.testing.assert_close(compiled(x, x, x, query_positions=p)[0], y, rtol=1e-5, atol=1e-5)


def test_cpp_twin_forward_and_checkpoints(tmp_path):
    """The C++ twin with the same state gives the same outputs (train and eval); symm.save → C++ symm::load
    gives them too, and symm.load reads them back."""
    rep = R.regular(symm.group("D4")).copies(2)
    calls, x, mem = _calls(rep, torch.float32)
    calls = calls[::2] + [("causal+padding", lambda m, a, b: m(
        a, a, a, query_positions=torch.tensor([[0, 1, 2, 3, 4], [3, 5, 6, 9, 15]]),
        key_padding_mask=torch.tensor([[False, False, False, True, False]] * 2), is_causal=True))]
    for module in _pair(rep, torch.float32):
        twin = symm.checkpoint.cpp_copy(module)
        symm.save(module, tmp_path / "m.symm")
        loaded = symm.checkpoint.cpp_twin(module)
        symm._C.load(loaded, str(tmp_path / "m.symm"))
        back = type(module)(rep, 2, 16 if hasattr(module, "pos_emb") else 3)
        symm.load(back, tmp_path / "m.symm")
        for train in (True, False):
            module.train(train)
            back.train(train)
            for name, call in calls:
                want = call(module, x, mem)[0]
                for cpp, what in ((twin, "twin"), (loaded, "loaded")):
                    cpp.train(train)
                    got = call(cpp.forward, x, mem)[0]
                    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=f"{type(module).__name__} {what} {name}")
                torch.testing.assert_close(call(back, x, mem)[0], want, rtol=0, atol=0)


def _encoder(kind):
    """What the peer builds with kind additive_pos or additive_rel."""
    rep = R.regular(symm.group(GROUP)).copies(COPIES)
    attn = (symm.nn.eAdditivePosMultiheadAttention(rep, HEADS, 16) if kind == "additive_pos"
            else symm.nn.eAdditiveRelMultiheadAttention(rep, HEADS, 3))
    attn.reset_parameters()
    layer = symm.nn.eTransformerEncoderLayer(rep, attn, dim_feedforward=FF, dropout=0.0)
    return symm.nn.eTransformerEncoder(layer, LAYERS)


@pytest.mark.parametrize("kind", ["additive_pos", "additive_rel"])
def test_checkpoints_exchange_with_the_cpp_peer(peer, tmp_path, kind):
    torch.set_num_threads(1)
    model = trained(_encoder(kind)).eval()
    symm.save(model, tmp_path / "py.symm")
    x = torch.randn(2, 5, model.in_rep.size)
    with torch.no_grad():
        expected = model(x)
    got = run_peer(peer, "load", tmp_path / "py.symm", x, tmp_path, kind)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)

    expected = run_peer(peer, "save", tmp_path / "cpp.symm", x, tmp_path, kind)
    fresh = _encoder(kind).eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(x), expected)
        symm.load(fresh, tmp_path / "cpp.symm")
        torch.testing.assert_close(fresh(x), expected, rtol=1e-5, atol=1e-5)
    table = "self_attn.pos_emb" if kind == "additive_pos" else "self_attn.rel_bias"
    assert fresh.layers[0].state_dict()[table].abs().max() > 0  # the peer's drawn tables arrived

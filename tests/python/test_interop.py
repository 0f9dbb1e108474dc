import os
import subprocess
import sys

import pytest
import torch

import symm
from conftest import act
from symm.interop import ConversionError, from_symm_learning

escnn_group = pytest.importorskip("escnn.group")
sl_nn = pytest.importorskip("symm_learning.nn")
from symm_learning.representation_theory import direct_sum  # noqa: E402


def sl_layer(rep, heads=2, dim_feedforward=64, **kw):
    attn = sl_nn.eMultiheadAttention(rep, num_heads=heads, dropout=0.0)
    return sl_nn.eTransformerEncoderLayer(rep, attn, dim_feedforward=dim_feedforward, dropout=0.1, **kw)


def train_a_little(model, size, steps=5):
    """Moves the weights (norm scales included) away from their initial values."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(4, 6, size)
    for _ in range(steps):
        opt.zero_grad()
        (model(x) - x.flip(-1)).pow(2).mean().backward()
        opt.step()
    return model.eval()


def assert_same_outputs(theirs, ours, size, **kw):
    """symm_learning's model and ours agree to float32 rounding (2.8e-7 of the output's scale measured)."""
    x = torch.randn(3, 9, size)
    with torch.no_grad():
        want, got = theirs(x, **kw), ours(x, **kw)
    rel = ((got - want).abs().max() / want.abs().max()).item()
    assert rel < 1e-6, rel


def assert_equivariant(model, rep):
    model.eval()
    x = torch.randn(2, 5, rep.size)
    with torch.no_grad():
        y = model(x)
        err = max((model(act(rep, g, x)) - act(rep, g, y)).abs().max().item() for g in range(rep.group.order))
    assert err < 1e-5 * y.abs().max().item(), err


@pytest.mark.parametrize("make_group,copies", [(lambda: escnn_group.dihedral_group(4), 4),
                                               (lambda: escnn_group.cyclic_group(5), 2),
                                               (lambda: escnn_group.dihedral_group(6), 2)])
def test_trained_layer_converts_with_the_same_outputs(make_group, copies):
    G = make_group()
    rep = direct_sum([G.regular_representation] * copies)
    theirs = train_a_little(sl_layer(rep), rep.size)
    ours = from_symm_learning(theirs)
    assert isinstance(ours, symm.nn.eTransformerEncoderLayer) and ours.in_rep.size == rep.size
    assert_same_outputs(theirs, ours, rep.size)
    assert_same_outputs(theirs, ours, rep.size, is_causal=True, src_mask=torch.nn.Transformer.generate_square_subsequent_mask(9))
    assert_equivariant(ours, ours.in_rep)


def test_regular_copies_up_to_a_change_of_basis():
    G = escnn_group.dihedral_group(3)
    reg = direct_sum([G.regular_representation] * 2)
    q, _ = torch.linalg.qr(torch.randn(reg.size, reg.size, dtype=torch.float64))
    rep = escnn_group.change_basis(reg, q.numpy(), "rotated")
    ours = symm.interop.rep_from_escnn(rep)
    assert ours.regular_copies == 2
    gm = symm.interop._GroupMap(G)
    for s, g in zip(gm.group.generators, gm.generators):
        assert torch.allclose(ours(s), torch.as_tensor(rep(g)), atol=1e-10)
    # symm_learning 0.8.1 constrains out_proj to commute with in_rep while it reads the heads' output in the
    # stacked regular basis: with a change of basis its layer is not equivariant, and the conversion refuses it.
    theirs = sl_layer(rep).eval()
    x = torch.randn(2, 5, rep.size)
    with torch.no_grad():
        y = theirs(x)
        err = max((theirs(x @ torch.as_tensor(rep(g), dtype=torch.float32).T)
                   - y @ torch.as_tensor(rep(g), dtype=torch.float32).T).abs().max().item() for g in G.elements)
    assert err > 1e-2 * y.abs().max().item()
    with pytest.raises(ConversionError, match=r"layer\.self_attn\.out_proj\.weight.*not equivariant"):
        from_symm_learning(theirs)
    # Our own layer on the same representation is equivariant.
    layer = symm.nn.eTransformerEncoderLayer(ours, symm.nn.eMultiheadAttention(ours, 2), dim_feedforward=24).eval()
    assert_equivariant(layer, ours)


def test_stack_and_convert_command(tmp_path):
    G = escnn_group.dihedral_group(4)
    rep = direct_sum([G.regular_representation] * 2)
    stack = sl_nn.TransformerEncoder(sl_layer(rep, dim_feedforward=32), 2, norm=sl_nn.eRMSNorm(rep)).eval()
    for layer in stack.layers:  # the stack's layers start as copies: make them differ
        train_a_little(layer, rep.size, steps=2)
    train_a_little(stack.norm, rep.size, steps=2)  # a final norm whose scales differ per irrep copy
    stack.eval()
    ours = from_symm_learning(stack)
    assert isinstance(ours, symm.nn.eTransformerEncoder)
    assert_same_outputs(stack, ours, rep.size)

    # symm_learning's parametrized modules are saved as a state_dict; a factory builds the model to load it into.
    torch.save(stack.state_dict(), tmp_path / "sl.pt")
    (tmp_path / "slfactory.py").write_text(
        "import escnn.group, symm_learning.nn as sl\n"
        "from symm_learning.representation_theory import direct_sum\n"
        "def make():\n"
        "    rep = direct_sum([escnn.group.dihedral_group(4).regular_representation] * 2)\n"
        "    layer = sl.eTransformerEncoderLayer(rep, sl.eMultiheadAttention(rep, num_heads=2, dropout=0.0),\n"
        "                                        dim_feedforward=32, dropout=0.1)\n"
        "    return sl.TransformerEncoder(layer, 2, norm=sl.eRMSNorm(rep))\n")
    out = tmp_path / "model.symm"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "symm.convert", "--factory", "slfactory:make", str(tmp_path / "sl.pt"),
                           str(out)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert symm.group(f"{out}.group.json").order == 8  # what the C++ side reads with make_group
    from symm.convert import load_converted
    assert_same_outputs(stack, load_converted(out), rep.size)


def test_refusals_name_the_layer(tmp_path):
    G = escnn_group.cyclic_group(4)
    rep = direct_sum([G.regular_representation] * 2)
    broken = sl_layer(rep)
    broken.linear1 = torch.nn.Linear(rep.size, broken.hidden_dim)  # dense, not equivariant
    with pytest.raises(ConversionError, match=r"layer\.linear1.*not equivariant"):
        from_symm_learning(broken)
    with pytest.raises(ConversionError, match="layer.norm1.*eLayerNorm"):
        from_symm_learning(sl_layer(rep, norm_module="layernorm"))
    torch.save(torch.nn.Linear(2, 2), tmp_path / "linear.pt")
    proc = subprocess.run([sys.executable, "-m", "symm.convert", str(tmp_path / "linear.pt"), str(tmp_path / "x.symm")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "symm.convert:" in proc.stderr


def _relative(got, want):
    return ((got - want).abs().max() / want.abs().max()).item()


@pytest.mark.parametrize("make_group", [lambda: escnn_group.cyclic_group(2), lambda: escnn_group.dihedral_group(4),
                                        lambda: escnn_group.cyclic_group(8)])
def test_time_modules_convert_with_the_same_outputs(make_group):
    G = make_group()
    rep2, rep3 = (direct_sum([G.regular_representation] * m) for m in (2, 3))
    x = torch.randn(3, rep2.size, 20)
    conv = sl_nn.eConv1d(rep2, rep3, kernel_size=5, padding=2, dilation=2, padding_mode="circular")
    up = sl_nn.eConvTranspose1d(rep3, rep2, kernel_size=4, stride=2, padding=1, output_padding=1)
    for theirs, ours_type, inp in ((conv, symm.nn.eConv1d, x), (up, symm.nn.eConvTranspose1d, conv(x).detach())):
        ours = from_symm_learning(theirs)
        assert type(ours) is ours_type and ours.in_rep.size == theirs.in_rep.size and not ours.training
        with torch.no_grad():
            assert _relative(ours(inp), theirs(inp)) < 1e-5

    bn = sl_nn.eBatchNorm1d(rep2, momentum=0.3)
    with torch.no_grad():  # running statistics and affine parameters away from their initial values
        for _ in range(4):
            bn(torch.randn(32, rep2.size) * torch.rand(rep2.size) * 3 + torch.randn(rep2.size))
        for p in bn.affine_transform.parameters():
            p.normal_()
    bn.eval()
    ours = from_symm_learning(bn)
    assert type(ours) is symm.nn.eBatchNorm1d and not ours.training
    assert int(ours.num_batches_tracked) == 4
    with torch.no_grad():
        # symm_learning's eBatchNorm1d takes the channels last; ours as torch's BatchNorm1d.
        assert _relative(ours(x), bn(x.transpose(1, 2)).transpose(1, 2)) < 1e-5
        assert _relative(ours(x[..., 0]), bn(x[..., 0])) < 1e-5
        y = ours(x)
        assert max((ours(act(ours.in_rep, g, x.transpose(1, 2)).transpose(1, 2)) - act(ours.in_rep, g, y.transpose(1, 2))
                    .transpose(1, 2)).abs().max().item() for g in range(ours.in_rep.group.order)) < 1e-5 * y.abs().max()


def test_time_module_refusals_name_the_layer():
    G = escnn_group.dihedral_group(3)
    rep = direct_sum([G.regular_representation] * 2)
    q, _ = torch.linalg.qr(torch.randn(rep.size, rep.size, dtype=torch.float64))
    conv = sl_nn.eConv1d(rep, rep, kernel_size=3)
    conv.in_rep = escnn_group.change_basis(rep, q.numpy(), "rotated")  # its taps are not in Hom_G of this in_rep
    with pytest.raises(ConversionError, match=r"eConv1d\.weight: weights are not equivariant"):
        from_symm_learning(conv)
    bn = sl_nn.eBatchNorm1d(rep).eval()
    with torch.no_grad():
        bn.running_mean.normal_()
    with pytest.raises(ConversionError, match=r"eBatchNorm1d\.running_mean: the running mean is not invariant"):
        from_symm_learning(bn)
    # In a rotated basis their per-channel scaling is no scaling of irrep copies (nor equivariant).
    rotated = sl_nn.eBatchNorm1d(escnn_group.change_basis(rep, q.numpy(), "rotated"))
    with torch.no_grad():
        rotated(torch.randn(64, rep.size) * torch.rand(rep.size) * 3)
    with pytest.raises(ConversionError, match=r"eBatchNorm1d\.running_var: the per-channel variances are not one per"):
        from_symm_learning(rotated.eval())
    with pytest.raises(ConversionError, match="eBatchNorm1d: track_running_stats=False"):
        from_symm_learning(sl_nn.eBatchNorm1d(rep, track_running_stats=False))

"""hidden_rep: the regular representation whose copies make the hidden channels of eMLP, iMLP, eTimeCNNEncoder and
eConditionalUnet1D (default ours; symm.interop.from_symm_learning passes escnn's decomposition), and the
checkpoints of such models: exact in Python, refused by C++ and by a model with another hidden_rep."""
import threading

import pytest
import torch

import symm
from conftest import act
from symm.checkpoint import cpp_copy, cpp_twin


def _rotated_regular(G, c=0.6):
    """The regular representation of G with its irrep blocks in reverse order and, where an irrep repeats, its
    copies rotated into each other: the same matrices, other irrep copies."""
    reg = symm.Representation.regular(G)
    q, dims = reg.change_of_basis, [G.irreps[k].dim for k in reg.irreps]
    starts = [sum(dims[:i]) for i in range(len(dims))]
    cols = [q[:, s:s + d] for s, d in zip(starts, dims)]
    for k in set(reg.irreps):
        idx = [i for i, j in enumerate(reg.irreps) if j == k]
        if len(idx) >= 2:
            a, b = cols[idx[0]], cols[idx[1]]
            s = (1 - c * c) ** 0.5
            cols[idx[0]], cols[idx[1]] = c * a + s * b, -s * a + c * b
    order = list(range(len(dims)))[::-1]
    return symm.Representation(G, [reg.irreps[i] for i in order], torch.cat([cols[i] for i in order], 1),
                               "regular (rotated)")


def _models(G, hidden_rep):
    reg = symm.Representation.regular(G)
    in_rep = reg + symm.Representation(G, [len(G.irreps) - 1], torch.eye(G.irreps[-1].dim, dtype=torch.float64))
    cond = reg.copies(1)
    return {
        "eMLP": (symm.nn.eMLP(in_rep, reg.copies(2), [16, 24], hidden_rep=hidden_rep),
                 lambda: (torch.randn(5, in_rep.size),)),
        "iMLP": (symm.nn.iMLP(in_rep, 3, [16, 24], hidden_rep=hidden_rep), lambda: (torch.randn(5, in_rep.size),)),
        "eTimeCNNEncoder": (symm.nn.eTimeCNNEncoder(in_rep, reg.copies(2), [16, 24], 12, batch_norm=True,
                                                    mlp_hidden=[16], hidden_rep=hidden_rep),
                            lambda: (torch.randn(5, in_rep.size, 12),)),
        "eConditionalUnet1D": (symm.nn.eConditionalUnet1D(reg, None, cond, diffusion_step_embed_dim=8, down_dims=[16],
                                                          hidden_rep=hidden_rep),
                               lambda: (torch.randn(3, reg.size, 8), torch.tensor([0, 5, 50]),
                                        None, torch.randn(3, cond.size))),
    }


@torch.no_grad()
def _perturb(model):
    for p in model.parameters():
        p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def test_hidden_rep_makes_the_hidden_copies_and_keeps_equivariance():
    G = symm.group("D4")
    rot = _rotated_regular(G)
    assert rot.same(symm.Representation.regular(G)) and not symm.nn.mlp.is_our_decomposition(rot)
    for name, (model, inputs) in _models(G, rot).items():
        model = _perturb(model)
        assert model.hidden_rep is rot, name
    enc = _models(G, rot)["eTimeCNNEncoder"][0]
    for norm in enc.norms:  # the norms scale the copies of hidden_rep
        want = rot.copies(norm.in_rep.size // G.order)
        assert list(norm.in_rep.irreps) == list(want.irreps)
        assert torch.allclose(norm.in_rep.change_of_basis, want.change_of_basis)
    assert list(enc.head.hidden_reps[0].irreps) == list(rot.copies(2).irreps)
    unet = _models(G, rot)["eConditionalUnet1D"][0]
    assert list(unet.down_modules[0][0].out_rep.irreps) == list(rot.copies(2).irreps)
    _perturb(enc)
    x = torch.randn(4, enc.in_rep.size, 12)
    with torch.no_grad():
        y = enc(x)
        for g in range(G.order):
            gx = act(enc.in_rep, g, x.transpose(1, 2)).transpose(1, 2)
            assert (enc(gx) - act(enc.out_rep, g, y)).abs().max() < 1e-4 * y.abs().max()
    # Default: ours.
    default = symm.nn.eMLP(enc.in_rep, enc.out_rep, [16])
    assert symm.nn.mlp.is_our_decomposition(default.hidden_rep)


def test_hidden_rep_must_be_the_regular_representation():
    G = symm.group("D4")
    reg = symm.Representation.regular(G)
    with pytest.raises(ValueError, match="eTimeCNNEncoder: hidden_rep must be the regular representation of D4"):
        symm.nn.eTimeCNNEncoder(reg, reg, [8], 8, hidden_rep=reg.copies(2))
    with pytest.raises(ValueError, match="eMLP: hidden_rep must be the regular representation"):
        symm.nn.eMLP(reg, reg, [8], hidden_rep=symm.Representation.regular(symm.group("C8")))
    perm = torch.eye(8, dtype=torch.float64)[torch.tensor([1, 0, 2, 3, 4, 5, 6, 7])]  # not the permutation basis
    with pytest.raises(ValueError, match="eConditionalUnet1D: hidden_rep must be the regular representation"):
        symm.nn.eConditionalUnet1D(reg, down_dims=[8], diffusion_step_embed_dim=8,
                                   hidden_rep=reg.change_basis(perm, "swapped"))
    with pytest.raises(TypeError, match="iMLP: hidden_rep must be a symm.Representation"):
        symm.nn.iMLP(reg, 2, [8], hidden_rep="escnn")


@pytest.mark.parametrize("name", ["eMLP", "iMLP", "eTimeCNNEncoder", "eConditionalUnet1D"])
def test_checkpoint_of_another_hidden_rep_round_trips_in_python_only(name, tmp_path):
    G = symm.group("D4")
    rot = _rotated_regular(G)
    model, inputs = _models(G, rot)[name]
    model = _perturb(model)
    path = str(tmp_path / "m.symm")
    symm.save(model, path)
    fresh = _models(G, rot)[name][0].eval()  # same hidden_rep, other weights
    symm.load(fresh, path)
    x = inputs()
    with torch.no_grad():
        assert (fresh(*x) - model(*x)).abs().max() <= 1e-6 * model(*x).abs().max()
    assert "with hidden_rep" in symm.architecture(model).splitlines()[0]
    # Into ours (Python or C++), or into yet another hidden_rep: refused, the module unchanged.
    ours = _models(G, None)[name][0].eval()
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    with pytest.raises(RuntimeError, match=f"{name}: the checkpoint and the module differ in hidden_rep"):
        symm.load(ours, path)
    assert all(torch.equal(before[k], v) for k, v in ours.state_dict().items())
    with pytest.raises(RuntimeError, match="saved from a different architecture or group"):
        symm._C.load(cpp_twin(ours), path)  # what C++ symm::load of this file does
    other = _models(G, _rotated_regular(G, 0.8))[name][0]
    with pytest.raises(RuntimeError, match="differ in hidden_rep"):
        symm.load(other, path)
    symm.save(ours, path)
    with pytest.raises(RuntimeError, match="differ in hidden_rep"):
        symm.load(fresh, path)
    # No C++ twin: it would build its hidden copies in our decomposition.
    for f in (cpp_twin, cpp_copy):
        with pytest.raises(TypeError, match=f"{name}: its hidden channels are copies of hidden_rep 'regular "
                                            r"\(rotated\)', in another irrep decomposition"):
            f(model)


def test_a_residual_block_in_another_decomposition_is_told_apart(tmp_path):
    G = symm.group("D4")
    rot, reg = _rotated_regular(G), symm.Representation.regular(G)
    cond = symm.Representation.trivial(G, 4)
    block = _perturb(symm.nn.eConditionalResidualBlock1D(reg, rot.copies(2), cond))
    assert cpp_twin(block) is not None  # its C++ twin is the same model (out_rep given as is)
    path = str(tmp_path / "b.symm")
    symm.save(block, path)
    again = symm.nn.eConditionalResidualBlock1D(reg, rot.copies(2), cond).eval()
    symm.load(again, path)
    x, c = torch.randn(3, reg.size, 6), torch.randn(3, 4)
    with torch.no_grad():
        assert (again(x, c) - block(x, c)).abs().max() <= 1e-6 * block(x, c).abs().max()
    ours = symm.nn.eConditionalResidualBlock1D(reg, reg.copies(2), cond)  # FiLM on other copies: refused
    with pytest.raises(RuntimeError, match="differ in hidden_rep"):
        symm.load(ours, path)


def test_building_models_changes_no_global_state():
    # The hidden copies come from the argument: threads building with and without one see their own.
    G = symm.group("D4")
    rot = _rotated_regular(G)
    errors = []

    def build(hidden, times=20):
        try:
            for _ in range(times):
                m = symm.nn.eTimeCNNEncoder(symm.Representation.regular(G), symm.Representation.regular(G), [8], 8,
                                            batch_norm=True, mlp_hidden=[8], hidden_rep=hidden)
                want = symm.nn.mlp.is_our_decomposition(m.norms[0].in_rep)
                if want != (hidden is None):
                    errors.append("a model took another thread's hidden copies")
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=build, args=(h,)) for h in (rot, None, rot, None)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_the_cpp_peer_refuses_a_checkpoint_of_another_hidden_rep(peer, tmp_path):
    import subprocess

    from test_checkpoint import COPIES, FF, GROUP, HEADS, LAYERS, python_mlp
    G = symm.group(GROUP)
    rep = symm.Representation.regular(G).copies(COPIES)
    model = _perturb(symm.nn.eMLP(rep, rep, [FF] * LAYERS, hidden_rep=_rotated_regular(G)))
    symm.save(model, tmp_path / "py.symm")
    (tmp_path / "x.f32").write_bytes(torch.randn(2, 5, rep.size).numpy().tobytes())

    def peer_load(path):
        return subprocess.run([peer, "load", str(path), str(tmp_path / "x.f32"), str(tmp_path / "y.f32"), GROUP,
                               str(COPIES), str(HEADS), str(LAYERS), str(FF), "emlp"], capture_output=True, text=True)

    proc = peer_load(tmp_path / "py.symm")
    assert proc.returncode != 0 and "saved from a different architecture or group" in proc.stderr, proc.stderr
    assert "with hidden_rep" in proc.stderr
    symm.save(python_mlp(), tmp_path / "ours.symm")  # and the same architecture of ours loads there
    proc = peer_load(tmp_path / "ours.symm")
    assert proc.returncode == 0, proc.stderr

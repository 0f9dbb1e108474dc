"""hidden_rep: the regular representation whose copies make the hidden channels of eMLP, iMLP, eTimeCNNEncoder and
eConditionalUnet1D (default ours; symm.interop.from_symm_learning passes escnn's decomposition). The C++ modules
take it too: cpp_twin builds the same model, checkpoints cross between Python and C++, and a checkpoint's
architecture names a foreign decomposition so that a model of another one (ours included) refuses it."""
import json
import re
import subprocess
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


def _relative(got, want):
    return ((got - want).abs().max() / want.abs().max()).item()


def write_reps(path, **reps):
    """The checkpoint peer's REPS file: a line "ROLE K IDS N Q" per representation (in, out, hidden)."""
    lines = []
    for role, rep in reps.items():
        q = rep.change_of_basis.flatten().tolist()
        lines.append(" ".join([role, str(len(rep.irreps)), *map(str, rep.irreps), str(rep.size), *map(repr, q)]))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_group(path, G):
    """G as a JSON file of permutations the peer reads (make_group): the same generators, elements and irreps."""
    path.write_text(json.dumps({"name": G.name, "permutations": [list(p) for p in symm._pickle._permutations(G)]}))
    return path


def run_peer(peer, mode, model, x, tmp_path, group, copies, layers, ff, kind, reps=None):
    """The peer's output on x (2, 5, D) as a flat float32 tensor, or the failed process."""
    (tmp_path / "x.f32").write_bytes(x.contiguous().numpy().tobytes())
    out = tmp_path / "y.f32"
    args = [peer, mode, str(model), str(tmp_path / "x.f32"), str(out), str(group), str(copies), "1", str(layers),
            str(ff), kind] + ([str(reps)] if reps else [])
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        return proc
    return torch.frombuffer(bytearray(out.read_bytes()), dtype=torch.float32)


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
    # The C++ modules check the same, with the same words.
    with pytest.raises(RuntimeError, match=r"iMLP: hidden_rep must be the regular representation of D4 in the "
                                           r"permutation basis \(one copy, in any irrep decomposition\), "
                                           r"got .* of size 16"):
        symm._C.iMLP(reg, 2, [8], hidden_rep=reg.copies(2))


@pytest.mark.parametrize("name", ["eMLP", "iMLP", "eTimeCNNEncoder", "eConditionalUnet1D"])
def test_cpp_twin_of_another_hidden_rep_is_the_same_model(name):
    G = symm.group("D4")
    rot = _rotated_regular(G)
    model, inputs = _models(G, rot)[name]
    model = _perturb(model)
    twin = cpp_copy(model)
    assert symm._C.is_our_decomposition(twin.hidden_rep) is False
    assert twin.hidden_rep.decomposition_fingerprint == rot.decomposition_fingerprint
    x = inputs()
    with torch.no_grad():
        want = model(*x)
        assert _relative(twin.forward(*x), want) < 1e-5
        # Not vacuous: the same tensors in a twin of ours scale other copies.
        ours = cpp_twin(_models(G, None)[name][0])
        symm.checkpoint._copy_into(model, ours)
        assert _relative(ours.forward(*x), want) > 1e-3


@pytest.mark.parametrize("name", ["eMLP", "iMLP", "eTimeCNNEncoder", "eConditionalUnet1D"])
def test_checkpoint_of_another_hidden_rep_round_trips_and_is_refused_by_another(name, tmp_path):
    G = symm.group("D4")
    rot = _rotated_regular(G)
    model, inputs = _models(G, rot)[name]
    model = _perturb(model)
    path = str(tmp_path / "m.symm")
    symm.save(model, path)
    x = inputs()
    with torch.no_grad():
        want = model(*x)
        fresh = _models(G, rot)[name][0].eval()  # same hidden_rep, other weights
        symm.load(fresh, path)
        assert _relative(fresh(*x), want) <= 1e-6
        twin = cpp_twin(fresh)  # C++ symm::load of the Python file
        symm._C.load(twin, path)
        assert _relative(twin.forward(*x), want) < 1e-5
    first = symm.architecture(model).splitlines()[0]
    assert first.endswith(f" decomposition={rot.decomposition_fingerprint}"), first
    assert "decomposition=" not in symm.architecture(_models(G, None)[name][0])
    # Into ours (Python or C++), or into yet another hidden_rep: refused, the module unchanged.
    ours = _models(G, None)[name][0].eval()
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    refusal = "was saved with its hidden regular copies in another irrep decomposition"
    with pytest.raises(RuntimeError, match=rf"{refusal}: at '\(root\) symm::nn::{name}Impl' the checkpoint has "
                                           rf"decomposition {re.escape(rot.decomposition_fingerprint)} where the "
                                           "module has ours"):
        symm.load(ours, path)
    assert all(torch.equal(before[k], v) for k, v in ours.state_dict().items())
    with pytest.raises(RuntimeError, match=refusal):
        symm._C.load(cpp_twin(ours), path)
    other = _models(G, _rotated_regular(G, 0.8))[name][0]
    with pytest.raises(RuntimeError, match=refusal):
        symm.load(other, path)
    symm.save(ours, path)
    with pytest.raises(RuntimeError, match="the checkpoint has decomposition ours where the module has"):
        symm.load(fresh, path)


def test_a_residual_block_in_another_decomposition_is_told_apart(tmp_path):
    G = symm.group("D4")
    rot, reg = _rotated_regular(G), symm.Representation.regular(G)
    cond = symm.Representation.trivial(G, 4)
    block = _perturb(symm.nn.eConditionalResidualBlock1D(reg, rot.copies(2), cond))
    path = str(tmp_path / "b.symm")
    symm.save(block, path)
    again = symm.nn.eConditionalResidualBlock1D(reg, rot.copies(2), cond).eval()
    symm.load(again, path)
    x, c = torch.randn(3, reg.size, 6), torch.randn(3, 4)
    with torch.no_grad():
        assert (again(x, c) - block(x, c)).abs().max() <= 1e-6 * block(x, c).abs().max()
    ours = symm.nn.eConditionalResidualBlock1D(reg, reg.copies(2), cond)  # FiLM on other copies: refused
    with pytest.raises(RuntimeError, match="another irrep decomposition"):
        symm.load(ours, path)


def test_an_old_stand_in_checkpoint_is_refused_with_what_to_do(tmp_path):
    # What symm.save wrote before the C++ modules took hidden_rep: a twin over a renamed copy of the group.
    G = symm.group("D4")
    model = _perturb(_models(G, _rotated_regular(G))["eMLP"][0])
    stand_in = symm._C.group_from_permutations("D4 with hidden_rep 0123456789ab (Python only)",
                                               [list(p) for p in symm._pickle._permutations(G)])

    def on(rep):
        return symm.Representation.from_generators(stand_in, [rep(g) for g in G.generators], rep.name)

    old = symm._C.eMLP(on(model.in_rep), on(model.out_rep), [16, 24], activation="gelu", dropout=0.0)
    path = str(tmp_path / "old.symm")
    symm._C.save(old, path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError, match=r"eMLP: .*old.symm was written by an earlier symm.save through a stand-in "
                                           r"group \"\(Python only\)\".*Convert the symm_learning model again"):
        symm.load(model, path)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(RuntimeError, match="saved from a different architecture or group"):
        symm._C.load(cpp_twin(model), path)  # C++ symm::load


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


def test_checkpoints_of_another_hidden_rep_cross_to_the_cpp_peer_and_back(peer, tmp_path):
    torch.set_num_threads(1)
    G, copies, layers, ff = symm.group("D4"), 2, 2, 16
    rot = _rotated_regular(G)
    rep = symm.Representation.regular(G).copies(copies)
    reps = write_reps(tmp_path / "reps.txt", hidden=rot)
    model = _perturb(symm.nn.eMLP(rep, rep, [ff] * layers, hidden_rep=rot))
    symm.save(model, tmp_path / "py.symm")
    x = torch.randn(2, 5, rep.size)
    with torch.no_grad():
        want = model(x)
    got = run_peer(peer, "load", tmp_path / "py.symm", x, tmp_path, "D4", copies, layers, ff, "emlp", reps)
    assert isinstance(got, torch.Tensor), got.stderr
    assert _relative(got.reshape(want.shape), want) < 1e-5
    # Without the hidden_rep the peer's eMLP is ours: refused, naming the decomposition.
    proc = run_peer(peer, "load", tmp_path / "py.symm", x, tmp_path, "D4", copies, layers, ff, "emlp")
    assert isinstance(proc, subprocess.CompletedProcess) and "another irrep decomposition" in proc.stderr, proc
    # C++ → Python.
    got = run_peer(peer, "save", tmp_path / "cpp.symm", x, tmp_path, "D4", copies, layers, ff, "emlp", reps)
    fresh = symm.nn.eMLP(rep, rep, [ff] * layers, hidden_rep=rot).eval()
    symm.load(fresh, tmp_path / "cpp.symm")
    with torch.no_grad():
        assert _relative(fresh(x), got.reshape(want.shape)) < 1e-5

import subprocess

import pytest
import torch

import symm
from conftest import encoder_layer

# The architecture the C++ peer builds: D4, 2 regular copies, 2 heads, 2 layers, feed-forward 32.
GROUP, COPIES, HEADS, LAYERS, FF = "D4", 2, 2, 2, 32


def python_model():
    rep = symm.Representation.regular(symm.group(GROUP)).copies(COPIES)
    return symm.nn.eTransformerEncoder(encoder_layer(rep, heads=HEADS, dim_feedforward=FF, dropout=0.1), LAYERS)


def python_mlp():
    """What the peer builds with kind emlp: COPIES regular copies of GROUP in and out, LAYERS hidden layers of FF."""
    rep = symm.Representation.regular(symm.group(GROUP)).copies(COPIES)
    return symm.nn.eMLP(rep, rep, [FF] * LAYERS)


def run_peer(peer, mode, model, x, tmp_path, kind="encoder"):
    (tmp_path / "x.f32").write_bytes(x.contiguous().numpy().tobytes())
    out = tmp_path / "y.f32"
    proc = subprocess.run([peer, mode, str(model), str(tmp_path / "x.f32"), str(out), GROUP, str(COPIES), str(HEADS),
                           str(LAYERS), str(FF), kind], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return torch.frombuffer(bytearray(out.read_bytes()), dtype=torch.float32).reshape(x.shape)


def trained(model, steps=5):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(4, 5, model.in_rep.size)
    for _ in range(steps):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    return model


@pytest.mark.parametrize("kind,make", [("encoder", python_model), ("emlp", python_mlp)])
def test_python_checkpoint_loads_in_cpp(peer, tmp_path, kind, make):
    torch.set_num_threads(1)
    model = trained(make()).eval()
    symm.save(model, tmp_path / "py.symm")
    x = torch.randn(2, 5, model.in_rep.size)
    with torch.no_grad():
        expected = model(x)
    got = run_peer(peer, "load", tmp_path / "py.symm", x, tmp_path, kind)
    assert torch.allclose(got, expected, rtol=1e-6, atol=1e-6), (got - expected).abs().max()


@pytest.mark.parametrize("kind,make", [("encoder", python_model), ("emlp", python_mlp)])
def test_cpp_checkpoint_loads_in_python(peer, tmp_path, kind, make):
    torch.set_num_threads(1)
    x = torch.randn(2, 5, COPIES * 8)
    expected = run_peer(peer, "save", tmp_path / "cpp.symm", x, tmp_path, kind)
    model = make().eval()
    with torch.no_grad():
        assert not torch.allclose(model(x), expected)
        symm.load(model, tmp_path / "cpp.symm")
        assert torch.allclose(model(x), expected, rtol=1e-6, atol=1e-6)


def test_double_precision_round_trip_and_atomic_write(tmp_path):
    a = trained(python_mlp()).double().eval()
    path = tmp_path / "a.symm"
    path.write_bytes(b"previous content")
    symm.save(a, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.symm"]  # the temporary file was renamed over it
    b = python_mlp().double().eval()
    symm.load(b, path)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert (p - q).abs().max() < 1e-12, name  # stored dense in float64, projected back
    with pytest.raises(RuntimeError, match="cannot write"):
        symm.save(a, tmp_path / "no such folder" / "a.symm")


def test_round_trip_and_foreign_checkpoints(tmp_path):
    a = trained(python_model()).eval()
    symm.save(a, tmp_path / "a.symm")
    b = python_model().eval()
    symm.load(b, tmp_path / "a.symm")
    x = torch.randn(2, 5, a.in_rep.size)
    assert torch.allclose(a(x), b(x), atol=1e-6)

    # Another group, another depth, a torch.save file and a damaged file are refused; nothing changes.
    before = {k: v.clone() for k, v in b.state_dict().items()}
    other_group = symm.nn.eTransformerEncoder(
        encoder_layer(symm.Representation.regular(symm.group("C8")).copies(2), heads=HEADS, dim_feedforward=FF), LAYERS)
    symm.save(other_group, tmp_path / "c8.symm")
    torch.save(a.state_dict(), tmp_path / "torch.pt")
    damaged = bytearray((tmp_path / "a.symm").read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (tmp_path / "damaged.symm").write_bytes(bytes(damaged))
    for name in ("c8.symm", "torch.pt", "damaged.symm", "missing.symm"):
        with pytest.raises(RuntimeError) as err:
            symm.load(b, tmp_path / name)
        assert str(err.value) and "Exception raised from" not in str(err.value)
    after = b.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(TypeError, match="expected a symm.nn module"):
        symm.save(torch.nn.Linear(2, 2), tmp_path / "x.symm")
    # An eMLP checkpoint into an encoder: another architecture, refused, nothing changes.
    symm.save(python_mlp(), tmp_path / "mlp.symm")
    with pytest.raises(RuntimeError):
        symm.load(b, tmp_path / "mlp.symm")
    assert all(torch.equal(before[k], v) for k, v in b.state_dict().items())

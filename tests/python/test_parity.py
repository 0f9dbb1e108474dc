"""The Python modules equal the C++ modules on the same coefficients (one truth, DESIGN §7): the same state
dict keys, loaded into both, give the same outputs and gradients."""
import pytest
import torch

import symm
from conftest import cpp_state_dict, cpp_twin, encoder

C = symm._C


def _close(a, b, tol):
    err = (a - b).abs().max().item() / max(b.abs().max().item(), 1e-30)
    assert err < tol, f"relative error {err:.3g} >= {tol}"
    return err


@pytest.fixture
def rep():
    return symm.Representation.regular(symm.group("D4")).copies(4)  # D = 32


def test_state_dict_keys_are_the_cpp_keys(rep):
    for module in (symm.nn.eLinear(rep, rep), encoder(rep),
                   symm.nn.eTransformerEncoderLayer(rep, symm.nn.ALiBiAttention(rep, 2, learnable_slopes=True), 64),
                   symm.nn.eTransformerDecoderLayer(rep, symm.nn.RotaryAttention(rep, 2), symm.nn.eMultiheadAttention(rep, 2), 64,
                                                    norm_module="layernorm")):
        ours = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in cpp_state_dict(cpp_twin(module)).items()}
        assert ours == theirs


@pytest.mark.parametrize("training", [False, True])
def test_modules_equal_the_cpp_modules(rep, training):
    torch.manual_seed(3)
    x = torch.randn(3, 5, rep.size, dtype=torch.float64)
    mem = torch.randn(3, 4, rep.size, dtype=torch.float64)
    pos = torch.rand(3, 5, dtype=torch.float64) * 8
    other = symm.Representation.regular(rep.group) + symm.Representation.trivial(rep.group, 3)
    cases = [
        (symm.nn.eLinear(rep, other), lambda m: m(x)),
        (symm.nn.eLinear(other, rep, bias=False), lambda m: m(torch.randn(3, other.size, dtype=torch.float64,
                                                                          generator=torch.Generator().manual_seed(1)))),
        (symm.nn.eMultiheadAttention(rep, 2), lambda m: m(x, mem, mem, need_weights=False)[0]),
        (symm.nn.RotaryAttention(rep, 2), lambda m: m(x, x, x, pos, pos, is_causal=True)[0]),
        (symm.nn.ALiBiAttention(rep, 2, learnable_slopes=True), lambda m: m(x, x, x, pos)[0]),
        (encoder(rep, norm_module="layernorm"), lambda m: m(x, is_causal=True)),
        (symm.nn.eTransformerEncoderLayer(rep, symm.nn.RotaryAttention(rep, 2), 64, dropout=0.0, norm_first=False),
         lambda m: m(x, src_positions=pos)),
        (symm.nn.eTransformerDecoderLayer(rep, symm.nn.eMultiheadAttention(rep, 2), symm.nn.eMultiheadAttention(rep, 2), 64,
                                          dropout=0.0), lambda m: m(x, mem, tgt_is_causal=True)),
    ]
    for module, run in cases:
        module = module.double().train(training)
        with torch.no_grad():  # off the initial values: scales and biases that are not 1 and 0
            for p in module.parameters():
                p.add_(0.1 * torch.randn_like(p))
        twin = cpp_twin(module)
        C.set_training(twin, training)
        ours = run(module)
        theirs = run(_CppCall(twin))
        _close(ours, theirs, 1e-10)
        if training:
            ours.square().sum().backward()
            theirs.square().sum().backward()
            cpp = cpp_state_dict(twin)
            for name, p in module.named_parameters():
                _close(p.grad, cpp[name].grad, 1e-9)


class _CppCall:
    """Calls a bound C++ module with the Python module's arguments."""

    def __init__(self, cpp):
        self.cpp = cpp

    def __call__(self, *args, **kwargs):
        kwargs.pop("need_weights", None)
        kind = type(self.cpp).__name__
        if kind == "eMultiheadAttention":
            return self.cpp.forward(*args, need_weights=False, **kwargs)
        return self.cpp.forward(*args, **kwargs)


def test_float32_parity_of_a_stack(rep):
    model = encoder(rep).eval()
    twin = cpp_twin(model)
    C.set_training(twin, False)
    x = torch.randn(4, 6, rep.size)
    with torch.no_grad():
        err = _close(model(x), twin.forward(x), 1e-5)
    print(f"float32 stack parity: relative error {err:.2e}")

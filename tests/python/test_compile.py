"""torch.compile(fullgraph=True) and torch.export with dynamic batch and sequence dimensions: the graph is
made of operators, so both capture the whole forward (and backward)."""
import copy

import pytest
import torch

import symm
from conftest import encoder

torch._dynamo.config.cache_size_limit = 64


@pytest.fixture
def rep():
    return symm.Representation.regular(symm.group("C4")).copies(4)  # D = 16


def test_compile_inductor_eval_of_an_elinear(rep):
    lin = symm.nn.eLinear(rep, symm.Representation.regular(rep.group).copies(2)).eval()
    x = torch.randn(3, 5, rep.size)
    compiled = torch.compile(lin, fullgraph=True)
    with torch.no_grad():
        assert torch.allclose(compiled(x), lin(x), atol=1e-6)


def test_compile_eval_and_training_step_equal_eager(rep):
    torch.manual_seed(0)
    model = encoder(rep, dropout=0.0)
    twin = copy.deepcopy(model)
    compiled = torch.compile(twin, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 6, rep.size)
    for mode in ("eval", "train"):
        getattr(model, mode)()
        getattr(twin, mode)()
        y, yc = model(x, is_causal=True), compiled(x, is_causal=True)
        assert torch.allclose(yc, y, atol=1e-5), mode
        model.zero_grad()
        twin.zero_grad()
        y.square().mean().backward()
        yc.square().mean().backward()
        for (name, p), q in zip(model.named_parameters(), twin.parameters()):
            assert torch.allclose(q.grad, p.grad, atol=1e-5), (mode, name)
    with torch.no_grad():
        model.eval()
        twin.eval()
        assert torch.allclose(compiled(x), model(x), atol=1e-5)


def test_compile_with_freezing_for_inference(rep):
    """Inductor's freezing (the deployment setting: parameters folded into the inference graph) constant-folds the
    weight synthesis and the isotypic operands, whose operators run on real tensors at compile time; the frozen
    graph equals eager on the dense and the isotypic path."""
    from torch._inductor import config as inductor_config
    torch._dynamo.reset()
    torch.manual_seed(0)
    layers = [symm.nn.eTransformerEncoderLayer(rep, symm.nn.eMultiheadAttention(rep, 2), dim_feedforward=32,
                                               dropout=0.0, execution=e).eval() for e in ("dense", "isotypic")]
    x = torch.randn(3, 5, rep.size)
    with torch.no_grad(), inductor_config.patch(freezing=True):
        for layer in layers:
            compiled = torch.compile(layer, fullgraph=True)
            y = layer(x)
            assert torch.allclose(compiled(x), y, atol=1e-5), layer.execution
            assert torch.allclose(compiled(x[:2]), layer(x[:2]), atol=1e-5), layer.execution
    torch._dynamo.reset()


def test_export_with_dynamic_batch_and_sequence(rep):
    model = encoder(rep).eval()
    x = torch.randn(2, 5, rep.size)
    batch, seq = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("seq", min=2, max=128)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: batch, 1: seq},))
    for shape in ((1, 3), (7, 11)):
        t = torch.randn(*shape, rep.size)
        assert torch.allclose(program.module()(t), model(t), atol=1e-5), shape

"""ONNX export of a small stack with dynamic batch and sequence, run by onnxruntime at other shapes."""
import pytest
import torch

import symm
from conftest import encoder

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def test_onnx_export_equals_eager_at_other_shapes(tmp_path):
    rep = symm.Representation.regular(symm.group("C4")).copies(4)
    model = encoder(rep).eval()
    x = torch.randn(2, 5, rep.size)
    path = tmp_path / "model.onnx"
    batch, seq = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("seq", min=2, max=128)
    torch.onnx.export(model, (x,), path, input_names=["src"], output_names=["out"], dynamo=True,
                      dynamic_shapes=({0: batch, 1: seq},))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in ((1, 3), (6, 9)):
        t = torch.randn(*shape, rep.size)
        (got,) = session.run(None, {"src": t.numpy()})
        with torch.no_grad():
            expected = model(t)
        assert abs(torch.from_numpy(got) - expected).max().item() < 1e-4, shape

import os

import pytest
import torch

import symm


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def rep_d4():
    """D4 (order 8), 4 regular copies: D = 32."""
    return symm.Representation.regular(symm.group("D4")).copies(4)


@pytest.fixture
def peer():
    """The C++ checkpoint peer program (tests/python/checkpoint_peer.cpp), built by the CMake target
    symm_checkpoint_peer; scripts/test.sh passes its path in SYMM_CHECKPOINT_PEER."""
    path = os.environ.get("SYMM_CHECKPOINT_PEER")
    if not path:
        pytest.skip("SYMM_CHECKPOINT_PEER is not set (build the symm_checkpoint_peer target)")
    assert os.access(path, os.X_OK), f"SYMM_CHECKPOINT_PEER={path} is not an executable"
    return path


def encoder_layer(rep, heads=2, dim_feedforward=64, dropout=0.0, **kw):
    return symm.nn.eTransformerEncoderLayer(rep, symm.nn.eMultiheadAttention(rep, heads), dim_feedforward=dim_feedforward,
                                            dropout=dropout, **kw)


def act(rep, g, x):
    """ρ(g) applied to the feature axis of x."""
    return x @ rep(g).to(x.dtype).T

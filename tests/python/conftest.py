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


def encoder(rep, layers=2, heads=2, dim_feedforward=64, **kw):
    """A small encoder stack with a final norm: what most contracts are tested on."""
    return symm.nn.eTransformerEncoder(encoder_layer(rep, heads, dim_feedforward, **kw), layers, norm=symm.nn.eRMSNorm(rep))


def cpp_twin(module):
    """The bound C++ module of the same architecture as a Python symm.nn module, with its state dict loaded:
    the reference of the parity tests."""
    C = symm._C
    kind = type(module).__name__
    if kind == "eLinear":
        twin = C.eLinear(module.in_rep, module.out_rep, module.bias_dof is not None, module.init_scheme)
    elif kind in ("eMultiheadAttention", "RotaryAttention", "ALiBiAttention"):
        extra = {"RotaryAttention": dict(base=getattr(module, "base", None)),
                 "ALiBiAttention": dict(learnable_slopes=getattr(module, "learnable_slopes", None))}.get(kind, {})
        twin = getattr(C, kind)(module.in_rep, module.num_heads, module.dropout, module.in_proj.bias_dof is not None,
                                module.in_proj.init_scheme, **extra)
    elif kind == "eTransformerEncoderLayer":
        twin = _cpp_layer(C, module)
    elif kind == "eTransformerEncoder":
        norm = module.norm
        twin = C.eTransformerEncoder(_cpp_layer(C, module.layers[0]), len(module.layers),
                                     None if norm is None else C.eRMSNorm(norm.in_rep, norm.eps, norm.affine is not None))
    elif kind == "eTransformerDecoderLayer":
        twin = C.eTransformerDecoderLayer(module.in_rep, cpp_twin(module.self_attn), cpp_twin(module.cross_attn),
                                          module.feedforward.hidden_size, module.dropout1.p, _activation(module),
                                          _eps(module), module.norm_first, module.norm_module, module.feedforward.linear1.bias_dof is not None,
                                          module.feedforward.linear1.init_scheme)
    else:
        raise TypeError(kind)
    _load(twin, module.state_dict())
    return twin


def _activation(layer):
    a = layer.feedforward.activation
    return {"GELU": "gelu_tanh" if getattr(a, "approximate", "none") == "tanh" else "gelu", "ReLU": "relu",
            "SiLU": "silu", "Tanh": "tanh"}[type(a).__name__]


def _eps(layer):
    return layer.norm1.eps


def _cpp_layer(C, layer):
    return C.eTransformerEncoderLayer(layer.in_rep, cpp_twin(layer.self_attn), layer.feedforward.hidden_size,
                                      layer.dropout1.p, _activation(layer), _eps(layer), layer.norm_first,
                                      layer.norm_module, True, layer.feedforward.linear1.init_scheme)


def _cpp_state(cpp, prefix=""):
    C = symm._C
    out = {prefix + k: v for k, v in C.named_parameters(cpp)}
    out.update({prefix + k: v for k, v in C.named_buffers(cpp)})
    for name, child in C.named_children(cpp):
        out.update(_cpp_state(child, f"{prefix}{name}."))
    return out


def _load(cpp, state):
    own = _cpp_state(cpp)
    assert set(own) == set(state), f"state dict keys differ: C++ only {set(own) - set(state)}, Python only {set(state) - set(own)}"
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v)


def cpp_state_dict(cpp):
    return _cpp_state(cpp)

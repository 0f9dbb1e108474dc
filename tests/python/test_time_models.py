"""The time-series models' Python frontends: MLP, eTimeCNNEncoder, TimeCNNEncoder, eConditionalUnet1D,
ConditionalUnet1D and the U-Nets' residual blocks. Equivariance over every group element, agreement with the bound
C++ modules (the same state dict gives the same forward; checkpoints both ways), torch.nn's contracts (deepcopy,
gradients in eval, gradcheck, torch.compile), and the errors of bad inputs."""
import pickle
from copy import deepcopy

import pytest
import torch

import symm
from symm import checkpoint

GROUPS = ("C2", "D4", "C8", "Q8")
TOLS = {torch.float64: 1e-10, torch.float32: 1e-5}
Rep = symm.Representation


def _rep(spec):
    """The regular representation plus two irreps: not regular copies, so every map is constrained."""
    G = symm.group(spec)
    return Rep.regular(G) + Rep.irrep(G, 1) + Rep.irrep(G, len(G.irreps) - 1)


def _rel(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def _images(rep, dtype):
    return torch.stack([rep(g) for g in range(rep.group.order)]).to(dtype)  # (|G|, D, D)


def _act(rho, x):
    """Every group element on the channel axis (1) of x: (|G|·B, ...), element-major."""
    return torch.einsum("gij,bj...->gbi...", rho, x).reshape(-1, *x.shape[1:])


def _randomise(model):
    """Moves every parameter off its initial value (unit norm scales, zero biases)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def _encoder(spec, invariant=False, dtype=torch.float64, **kw):
    rep = _rep(spec)
    G = rep.group
    out = Rep.trivial(G, 2) if invariant else rep
    kw = dict(batch_norm=True, append_last_frame=True, mlp_hidden=[8]) | kw
    return symm.nn.eTimeCNNEncoder(rep, out, [4, 8], 6, dtype=dtype, **kw)


def _unet(spec, dtype=torch.float64, **kw):
    rep = _rep(spec)
    G = rep.group
    kw = dict(local_cond_rep=Rep.irrep(G, 1) + Rep.regular(G), global_cond_rep=rep, diffusion_step_embed_dim=4,
              down_dims=[4, 8]) | kw
    return symm.nn.eConditionalUnet1D(rep, dtype=dtype, **kw)


def _unet_inputs(m, B=2, L=4):
    dtype = m.final_proj.weight_dof.dtype
    x = torch.randn(B, m.in_rep.size, L, dtype=dtype)
    local = None if m.local_cond_rep is None else torch.randn(B, m.local_cond_rep.size, L, dtype=dtype)
    film = None if m.global_cond_rep is None else torch.randn(B, m.global_cond_rep.size, dtype=dtype)
    return x, torch.arange(B, dtype=dtype) * 7 + 1, local, film


def _plain_unet(**kw):
    kw = dict(local_cond_dim=2, global_cond_dim=3, down_dims=[4, 8], diffusion_step_embed_dim=4, n_groups=2) | kw
    return symm.nn.ConditionalUnet1D(4, **kw)


def _plain_inputs(m, B=2, L=4):
    x = torch.randn(B, m.input_dim, L)
    local = None if m.local_cond_dim is None else torch.randn(B, m.local_cond_dim)
    film = None if m.global_cond_dim is None else torch.randn(B, m.global_cond_dim)
    return x, torch.tensor([3.0, 11.0]), local, film


def _all_models():
    """(model, inputs) over every module of the file, in float32."""
    G = symm.group("D4")
    rep = _rep("D4")
    # SiLU in the U-Nets: with ReLU, widths this small leave a block's whole output dead for some draws.
    silu = torch.nn.SiLU()
    block = symm.nn.eConditionalResidualBlock1D(rep, Rep.regular(G).copies(2), rep, activation=silu, dtype=torch.float32)
    return [
        (_encoder("D4", dtype=torch.float32), lambda m: (torch.randn(3, m.in_rep.size, 6),)),
        (_encoder("D4", invariant=True, dtype=torch.float32, downsample="pooling"),
         lambda m: (torch.randn(3, m.in_rep.size, 6),)),
        (symm.nn.TimeCNNEncoder(3, 2, [4, 6], 5, normalize=True, mlp_hidden=[8], append_last_frame=True),
         lambda m: (torch.randn(3, 3, 5),)),
        (symm.nn.MLP(5, 3, [6, 4], batch_norm=True), lambda m: (torch.randn(4, 5),)),
        (block, lambda m: (torch.randn(2, m.in_rep.size, 5), torch.randn(2, m.cond_rep.size))),
        (_unet("D4", dtype=torch.float32, activation=silu), _unet_inputs),
        (_unet("D4", dtype=torch.float32, local_cond_rep=None, downsample="pooling", normalize=False, activation=silu),
         _unet_inputs),
        (symm.nn.ConditionalResidualBlock1D(3, 4, 5, n_groups=2, cond_predict_scale=True),
         lambda m: (torch.randn(2, 3, 5), torch.randn(2, 5))),
        (_plain_unet(), _plain_inputs),
        (_plain_unet(local_cond_dim=None, cond_predict_scale=False, down_dims=[4, 4, 8]),
         lambda m: _plain_inputs(m, L=8)),
    ]


# --- equivariance over group elements ------------------------------------------------------------------------

@pytest.mark.parametrize("spec", GROUPS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_encoders_are_equivariant_or_invariant(spec, dtype):
    rep = _rep(spec)
    rho = _images(rep, dtype)
    n = rho.shape[0]
    for invariant, downsample in ((False, "stride"), (True, "pooling")):
        m = _randomise(_encoder(spec, invariant, dtype, downsample=downsample))
        rho_out = _images(m.out_rep, dtype)
        for training in (True, False):
            m.train(training)
            x = torch.randn(3, rep.size, 6, dtype=dtype)
            y = m(x)
            assert y.shape == (3, m.out_rep.size)
            assert _rel(m(_act(rho, x)), _act(rho_out, y)) < TOLS[dtype], (invariant, training)
            if invariant:
                assert _rel(m(_act(rho, x)), y.repeat(n, 1)) < TOLS[dtype]


@pytest.mark.parametrize("spec", GROUPS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_unet_is_equivariant(spec, dtype):
    rep = _rep(spec)
    rho, n = _images(rep, dtype), rep.group.order
    for kw in (dict(), dict(downsample="pooling", normalize=False, down_dims=[4, 8, 8])):
        m = _randomise(_unet(spec, dtype, **kw))
        rho_local, rho_film = _images(m.local_cond_rep, dtype), _images(m.global_cond_rep, dtype)
        for training in (True, False):
            m.train(training)
            x, t, local, film = _unet_inputs(m, L=4)
            y = m(x, t, local, film)
            assert y.shape == x.shape
            gy = m(_act(rho, x), t.repeat(n), _act(rho_local, local), _act(rho_film, film))
            assert _rel(gy, _act(rho, y)) < TOLS[dtype], (kw, training)


# --- agreement with the C++ modules --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_models_equal_the_cpp_modules(dtype):
    for i, (m, inputs) in enumerate(_all_models()):
        m = _randomise(m.to(dtype))
        for training in (True, False):
            m.train(training)
            twin = checkpoint.cpp_copy(m)
            args = [a.to(dtype) if a is not None and a.is_floating_point() else a for a in inputs(m)]
            assert _rel(m(*args), twin.forward(*args)) < TOLS[dtype], (i, type(m).__name__, training)


def test_checkpoints_between_python_and_cpp(tmp_path):
    for i, (m, inputs) in enumerate(_all_models()):
        m = _randomise(m)
        if isinstance(m, symm.nn.MLP):
            m(*inputs(m))  # running statistics of its batch norms
        path = tmp_path / f"m{i}.symm"
        symm.save(m, path)
        # The C++ module reads the Python checkpoint and computes the same forward.
        twin = checkpoint.cpp_twin(m)
        symm._C.load(twin, str(path))
        m.eval(), symm._C.set_training(twin, False)
        args = inputs(m)
        assert _rel(m(*args), twin.forward(*args)) < 1e-5, (i, type(m).__name__)
        # A C++ checkpoint (its own fresh parameters) read into a copy of m computes the C++ module's forward.
        cpp = checkpoint.cpp_twin(m)
        symm._C.save(cpp, str(tmp_path / "cpp.symm"))
        fresh = deepcopy(m)
        symm.load(fresh, tmp_path / "cpp.symm")
        symm._C.set_training(cpp, False)
        assert _rel(fresh(*args), cpp.forward(*args)) < 1e-5, (i, type(m).__name__)
        assert not torch.equal(fresh(*args), m(*args)), (i, type(m).__name__)
    other = _unet("C8", dtype=torch.float32)
    with pytest.raises(RuntimeError):
        symm.load(other, tmp_path / "m5.symm")  # a D4 U-Net's checkpoint


def test_python_checkpoint_round_trip(tmp_path):
    m = _randomise(_unet("Q8", dtype=torch.float32)).eval()
    symm.save(m, tmp_path / "u.symm")
    fresh = _unet("Q8", dtype=torch.float32).eval()
    symm.load(fresh, tmp_path / "u.symm")
    for k, t in m.state_dict().items():
        assert torch.equal(t, fresh.state_dict()[k]), k
    args = _unet_inputs(m)
    assert torch.equal(fresh(*args), m(*args))


# --- torch.nn contracts -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("index", range(10))
def test_copies_and_gradients_in_eval(index):
    model, inputs = _all_models()[index]
    model = _randomise(model).eval()
    args = inputs(model)
    with torch.no_grad():
        want = model(*args)  # fills the eval caches
    for copy in (deepcopy(model), pickle.loads(pickle.dumps(model))):
        with torch.no_grad():
            assert torch.equal(copy(*args), want), type(model).__name__
    # Eval keeps autograd: after a no-grad forward, gradients still reach every parameter.
    front = torch.nn.Parameter(torch.ones(()))
    model(args[0] * front, *args[1:]).square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing and front.grad is not None, missing


@pytest.mark.parametrize("index", [0, 5])
def test_compile_equals_eager(index):
    model, inputs = _all_models()[index]
    model = _randomise(model).eval()
    args = inputs(model)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        assert _rel(compiled(*args), model(*args)) < 1e-5


def test_gradcheck_in_float64():
    G = symm.group("C2")
    rep = Rep.regular(G) + Rep.irrep(G, 1)
    enc = _randomise(symm.nn.eTimeCNNEncoder(rep, rep, [2], 3, activation=torch.nn.SiLU(), batch_norm=True,
                                             mlp_hidden=[2], dtype=torch.float64))
    x = torch.randn(2, rep.size, 3, dtype=torch.float64, requires_grad=True)
    w = enc.convs[0].weight_dof.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w: torch.func.functional_call(enc, {"convs.0.weight_dof": w}, (x,)), (x, w))
    unet = _randomise(symm.nn.eConditionalUnet1D(rep, global_cond_rep=rep, diffusion_step_embed_dim=2, down_dims=[2, 2],
                                                 activation=torch.nn.SiLU(), dtype=torch.float64))
    x = torch.randn(1, rep.size, 2, dtype=torch.float64, requires_grad=True)
    film = torch.randn(1, rep.size, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, c: unet(x, 5.0, film_cond=c), (x, film))
    plain = _plain_unet(down_dims=[2, 2], n_groups=1).double()
    x = torch.randn(1, 4, 2, dtype=torch.float64, requires_grad=True)
    local, film = torch.randn(1, 2, dtype=torch.float64), torch.randn(1, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, c: plain(x, 2, local, c), (x, film))


# --- bad arguments and inputs -----------------------------------------------------------------------------------

def test_bad_inputs_name_what_was_expected():
    enc = _encoder("D4", dtype=torch.float32)
    c = enc.in_rep.size
    with pytest.raises(ValueError, match=rf"expected an input \(N, {c}, 6\), got shape \(2, {c + 1}, 6\)"):
        enc(torch.randn(2, c + 1, 6))
    with pytest.raises(RuntimeError, match=rf"expected an input \(N, {c}, 6\), got shape \(2, {c}, 5\)"):
        enc(torch.randn(2, c, 5))
    with pytest.raises(ValueError, match=r"expected an input \(N, 3, 5\), got shape \(1, 4, 5\)"):
        symm.nn.TimeCNNEncoder(3, 2, [4], 5)(torch.randn(1, 4, 5))
    with pytest.raises(ValueError, match="last dimension 5, got"):
        symm.nn.MLP(5, 2, [4])(torch.randn(2, 6))
    unet = _unet("D4", dtype=torch.float32)
    x, t, local, film = _unet_inputs(unet)
    c = unet.in_rep.size
    with pytest.raises(ValueError, match=rf"expected a sample \(B, {c}, L\), got \(2, {c - 1}, 4\)"):
        unet(x[:, 1:], t, local, film)
    with pytest.raises(ValueError, match="multiple of 2"):
        unet(x[..., :3], t, local[..., :3], film)
    with pytest.raises(ValueError, match=rf"expected a film_cond \(2, {film.shape[1]}\), got \(2, {film.shape[1] + 1}\)"):
        unet(x, t, local, torch.cat([film, film[:, :1]], 1))
    with pytest.raises(ValueError, match="film_cond"):
        unet(x, t, local)
    with pytest.raises(ValueError, match=rf"expected a local_cond \(2, {local.shape[1]}, 4\), got \(2, {local.shape[1]}, 2\)"):
        unet(x, t, local[..., :2], film)
    with pytest.raises(ValueError, match="timestep"):
        unet(x, torch.zeros(3), local, film)
    block = symm.nn.eConditionalResidualBlock1D(unet.in_rep, Rep.regular(symm.group("D4")), unet.in_rep)
    with pytest.raises(ValueError, match=rf"expected a condition \(2, {c}\), got \(2, {c + 2}\)"):
        block(x, torch.randn(2, c + 2))
    plain = _plain_unet()
    px, pt, plocal, pfilm = _plain_inputs(plain)
    with pytest.raises(ValueError, match=r"expected a sample \(B, 4, L\), got \(2, 3, 4\)"):
        plain(px[:, 1:], pt, plocal, pfilm)
    with pytest.raises(ValueError, match=r"expected a local_cond \(2, 2\), got \(2, 1\)"):
        plain(px, pt, plocal[:, 1:], pfilm)
    # Bad arguments.
    rep = _rep("D4")
    for make in (lambda: symm.nn.eTimeCNNEncoder(rep, rep, [8], 6, downsample="conv"),
                 lambda: symm.nn.eTimeCNNEncoder(rep, rep, [], 6),
                 lambda: symm.nn.eTimeCNNEncoder(rep, rep, [8, 8, 8], 4, downsample="pooling"),
                 lambda: symm.nn.eTimeCNNEncoder(rep, rep, [8], 6, activation=torch.nn.PReLU(8)),
                 lambda: symm.nn.eConditionalResidualBlock1D(rep, rep, rep),  # out_rep not regular copies
                 lambda: symm.nn.eConditionalResidualBlock1D(rep, Rep.regular(rep.group), rep, kernel_size=2),
                 lambda: symm.nn.eConditionalUnet1D(rep, down_dims=[]),
                 lambda: symm.nn.eConditionalUnet1D(rep, diffusion_step_embed_dim=3),
                 lambda: symm.nn.ConditionalUnet1D(3, n_groups=2)):
        with pytest.raises(ValueError):
            make()


# --- symm_learning's baselines ----------------------------------------------------------------------------------

def test_plain_unet_and_mlp_equal_symm_learning():
    """The baselines hold symm_learning 0.8.1's modules' weights and compute their outputs."""
    sl_unet = pytest.importorskip("symm_learning.models.diffusion.cond_unet1d")
    sl_mlp = pytest.importorskip("symm_learning.models.emlp")
    theirs = sl_unet.ConditionalUnet1D(4, global_cond_dim=3, diffusion_step_embed_dim=4, down_dims=[4, 8], n_groups=2)
    ours = symm.nn.ConditionalUnet1D(4, global_cond_dim=3, diffusion_step_embed_dim=4, down_dims=[4, 8], n_groups=2)
    ours.load_state_dict(theirs.state_dict())
    x, film = torch.randn(2, 4, 4), torch.randn(2, 3)
    t = torch.tensor([3, 11])
    with torch.no_grad():
        assert _rel(ours(x, t, film_cond=film), theirs(x, t, film_cond=film)) < 1e-6
    theirs = sl_mlp.MLP(5, 3, [6, 4], batch_norm=True)
    ours = symm.nn.MLP(5, 3, [6, 4], batch_norm=True)
    # Their Sequential holds Linear, BatchNorm1d, activation per layer, then the head.
    mapping = {"net.0": "linears.0", "net.1": "batch_norms.0", "net.3": "linears.1", "net.4": "batch_norms.1",
               "net.6": "linears.2"}
    ours.load_state_dict({mapping[k.rsplit(".", 1)[0]] + "." + k.rsplit(".", 1)[1]: v
                          for k, v in theirs.state_dict().items()})
    x = torch.randn(7, 5)
    for training in (True, False):
        ours.train(training), theirs.train(training)
        assert _rel(ours(x), theirs(x)) < 1e-6

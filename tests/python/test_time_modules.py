"""The time-series modules' Python frontends: eConv1d, eConvTranspose1d, eBatchNorm1d, IrrepSubspaceNormPooling,
Change2DisentangledBasis. Equivariance over every group element, agreement with the bound C++ modules (the
same state dict gives the same forward; checkpoints both ways), parity with torch's modules on the trivial
group, and the errors of bad arguments and inputs."""
import pickle
import warnings
from copy import deepcopy

import pytest
import torch
import torch.nn.functional as F

import symm
from symm import checkpoint

GROUPS = ("D4", "Q8")
TOLS = {torch.float64: 1e-10, torch.float32: 1e-5}


def _rep(spec):
    """The regular representation plus two irreps (a non-regular, mixed one) of a group of order 8."""
    G = symm.group(spec)
    return symm.Representation.regular(G) + symm.Representation.irrep(G, 1) + symm.Representation.irrep(G, len(G.irreps) - 1)


def _rel(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def _images(rep, dtype):
    return torch.stack([rep(g) for g in range(rep.group.order)]).to(dtype)  # (|G|, D, D)


def _conv(spec, transposed, dtype, groups=1):
    rep = _rep(spec)
    if groups > 1:
        rep = rep.copies(groups)
    kw = dict(stride=2, padding=2, dilation=2, groups=groups, dtype=dtype)
    if transposed:
        return symm.nn.eConvTranspose1d(rep, rep, 3, output_padding=1, **kw)
    return symm.nn.eConv1d(rep, rep, 3, padding_mode="circular", **kw)


@pytest.mark.parametrize("spec", GROUPS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_equivariance_over_all_group_elements(spec, dtype):
    rep = _rep(spec)
    rho = _images(rep, dtype)
    n = rho.shape[0]
    bn_steps = [torch.randn(6, rep.size, 5, dtype=dtype) * 2 + 1 for _ in range(3)]
    pool = symm.nn.IrrepSubspaceNormPooling(rep, dtype=dtype)
    dis = symm.nn.Change2DisentangledBasis(rep, dtype=dtype)
    rho_dis = _images(dis.out_rep, dtype)
    for training in (True, False):
        for transposed in (False, True):
            m = _conv(spec, transposed, dtype).train(training)
            x = torch.randn(2, rep.size, 11, dtype=dtype)
            gx = torch.einsum("gij,bjt->gbit", rho, x).reshape(n * 2, rep.size, 11)
            y = m(x)
            want = torch.einsum("gij,bjt->gbit", rho, y).reshape(n * 2, *y.shape[1:])
            assert _rel(m(gx), want) < TOLS[dtype], (type(m).__name__, training)
        bn = symm.nn.eBatchNorm1d(rep, dtype=dtype)
        for xb in bn_steps:  # non-trivial running statistics and affine for eval
            bn(xb)
        with torch.no_grad():
            bn.affine.scale_dof.uniform_(0.5, 1.5)
            bn.affine.bias_dof.normal_()
        bn.train(training)
        x = torch.randn(6, rep.size, 4, dtype=dtype)
        # Each element's transformed batch separately: the batch statistics transform with it.
        y = bn(x)
        for g in range(n):
            gy = bn(torch.einsum("ij,bjt->bit", rho[g], x))
            assert _rel(gy, torch.einsum("ij,bjt->bit", rho[g], y)) < TOLS[dtype], ("eBatchNorm1d", training, g)
        pool.train(training), dis.train(training)
        v = torch.randn(3, 4, rep.size, dtype=dtype)
        gv = torch.einsum("gij,btj->gbti", rho, v)
        assert _rel(pool(gv), pool(v).expand(n, *pool(v).shape)) < TOLS[dtype]
        assert _rel(dis(gv), torch.einsum("gij,btj->gbti", rho_dis, dis(v))) < TOLS[dtype]


def test_conv_weight_is_torch_conv_and_trivial_group_matches_torch():
    rep = _rep("D4")
    m = symm.nn.eConv1d(rep, rep, 4, stride=3, padding=1, dilation=2, padding_mode="reflect", dtype=torch.float64)
    x = torch.randn(3, rep.size, 13, dtype=torch.float64)
    ref = F.conv1d(F.pad(x, (1, 1), mode="reflect"), m.weight, m.bias, stride=3, dilation=2)
    assert _rel(m(x), ref) < 1e-12
    assert _rel(m(x[0]), ref[0]) < 1e-12  # unbatched
    # Each tap of the synthesised kernel is equivariant.
    rho = _images(rep, torch.float64)
    for k in range(4):
        w = m.weight[..., k].detach()
        assert float((rho @ w - w @ rho).abs().max()) < 1e-12
    # The trivial group: every map is equivariant, so the projection of torch's weights is torch's module.
    C1 = symm.group("C1")
    a, b = symm.Representation.trivial(C1, 4), symm.Representation.trivial(C1, 6)
    for padding, mode in ((2, "replicate"), ("same", "zeros"), ("same", "circular"), ("valid", "zeros")):
        ref = torch.nn.Conv1d(4, 6, 4, padding=padding, padding_mode=mode, dilation=1, dtype=torch.float64)
        m = symm.nn.eConv1d(a, b, 4, padding=padding, padding_mode=mode, dtype=torch.float64)
        m.set_taps(ref.weight.permute(2, 0, 1), ref.bias)
        x = torch.randn(2, 4, 9, dtype=torch.float64)
        with warnings.catch_warnings():  # torch's note on 'same' with an even kernel
            warnings.simplefilter("ignore", UserWarning)
            assert _rel(m(x), ref(x)) < 1e-12, (padding, mode)
    ref = torch.nn.ConvTranspose1d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, dtype=torch.float64)
    m = symm.nn.eConvTranspose1d(a, b, 3, stride=2, padding=1, output_padding=1, groups=2, dtype=torch.float64)
    w = ref.weight.view(2, 2, 3, 3)  # (g, C_in/g, C_out/g, K) → taps (g·K, C_out/g, C_in/g)
    m.set_taps(w.permute(0, 3, 2, 1).reshape(6, 3, 2), ref.bias)
    x = torch.randn(2, 4, 7, dtype=torch.float64)
    assert _rel(m.weight, ref.weight) < 1e-12
    assert _rel(m(x), ref(x)) < 1e-12


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_matches_the_cpp_module(groups):
    for transposed in (False, True):
        for training in (True, False):
            m = _conv("D4", transposed, torch.float64, groups).train(training)
            twin = checkpoint.cpp_copy(m)
            x = torch.randn(2, m.in_channels, 10, dtype=torch.float64)
            assert _rel(m.weight, twin.weight()) < 1e-13
            assert _rel(m(x), twin.forward(x)) < 1e-12, (transposed, training)


def test_batchnorm_matches_the_cpp_module_and_torch_on_the_trivial_group():
    # A mixed representation, and regular copies, whose products with Q run blockwise.
    regular = symm.Representation.regular(symm.group("Q8")).copies(3)
    for rep in (_rep("Q8"), regular):
        for momentum in (0.1, None):
            m = symm.nn.eBatchNorm1d(rep, momentum=momentum, dtype=torch.float64)
            assert m.block_diagonal == (rep is regular)
            twin = checkpoint.cpp_copy(m)
            theirs = checkpoint._cpp_state(twin)
            for shape in ((5, rep.size, 3), (7, rep.size), (5, rep.size, 3)):
                x = torch.randn(*shape, dtype=torch.float64) * 3 - 1
                assert _rel(m(x), twin.forward(x)) < 1e-12
            for k, t in m.state_dict().items():
                assert torch.allclose(t, theirs[k], rtol=0, atol=1e-12), k
            m.eval(), symm._C.set_training(twin, False)
            x = torch.randn(4, rep.size, dtype=torch.float64)
            assert _rel(m(x), twin.forward(x)) < 1e-12
            # Eval's dense map is cached where autograd needs nothing: further training and new affine scales must
            # reach it.
            with torch.no_grad():
                assert _rel(m(x), twin.forward(x)) < 1e-12
                m.train(), symm._C.set_training(twin, True)
                x = torch.randn(5, rep.size, 3, dtype=torch.float64)
                assert _rel(m(x), twin.forward(x)) < 1e-12
                m.eval(), symm._C.set_training(twin, False)
                assert _rel(m(x), twin.forward(x)) < 1e-12
                m.affine.scale_dof.uniform_(0.5, 2)
                theirs["affine.scale_dof"].copy_(m.affine.scale_dof)
                assert _rel(m(x), twin.forward(x)) < 1e-12
    # Trivial group: one channel per copy, so this is torch's BatchNorm1d.
    C = 5
    rep = symm.Representation.trivial(symm.group("C1"), C)
    for momentum, track in ((0.1, True), (None, True), (0.1, False)):
        m = symm.nn.eBatchNorm1d(rep, momentum=momentum, track_running_stats=track, dtype=torch.float64)
        ref = torch.nn.BatchNorm1d(C, momentum=momentum, track_running_stats=track, dtype=torch.float64)
        with torch.no_grad():
            ref.weight.uniform_(0.5, 2), ref.bias.normal_()
        m.affine.set_dense(ref.weight, ref.bias)
        for _ in range(3):
            x = torch.randn(7, C, 4, dtype=torch.float64) * 2 + 3
            assert _rel(m(x), ref(x)) < 1e-12
        if track:
            assert _rel(m.running_mean, ref.running_mean) < 1e-12
            assert _rel(m.running_var, ref.running_var) < 1e-12
            assert int(m.num_batches_tracked) == int(ref.num_batches_tracked) == 3
        m.eval(), ref.eval()
        x = torch.randn(6, C, dtype=torch.float64)
        assert _rel(m(x), ref(x)) < 1e-12
        if track:  # eval uses the running statistics, not the batch's, and leaves them unchanged
            before = m.running_mean.clone()
            assert _rel(m(x[:2]), ref(x[:2])) < 1e-12
            assert torch.equal(before, m.running_mean) and int(m.num_batches_tracked) == 3


def test_pooling_and_disentangled_match_the_cpp_modules():
    rep = _rep("D4")
    x = torch.randn(4, 3, rep.size, dtype=torch.float64)
    pool = symm.nn.IrrepSubspaceNormPooling(rep, dtype=torch.float64)
    assert pool.out_rep.size == len(rep.irreps)
    assert _rel(pool(x), checkpoint.cpp_copy(pool).forward(x)) < 1e-12
    # A vanishing copy gets the subgradient 0, not NaN.
    z = torch.zeros(2, rep.size, dtype=torch.float64, requires_grad=True)
    pool(z).sum().backward()
    assert torch.equal(z.grad, torch.zeros_like(z))
    for learnable in (False, True):
        dis = symm.nn.Change2DisentangledBasis(rep, learnable=learnable, dtype=torch.float64)
        twin = checkpoint.cpp_copy(dis)
        assert list(dis.state_dict()) == (["linear.weight"] if learnable else [])
        assert torch.allclose(dis.change_of_basis(), twin.change_of_basis(), rtol=0, atol=1e-14)
        assert _rel(dis(x), twin.forward(x)) < 1e-12
        assert list(dis.out_rep.irreps) == sorted(rep.irreps)
    m = dis.change_of_basis()
    assert float((m @ m.T - torch.eye(rep.size, dtype=torch.float64)).abs().max()) < 1e-12
    iso = symm.nn.Change2DisentangledBasis(dis.out_rep)
    assert iso.identity and iso(x.float()) is not None


def test_checkpoints_between_python_and_cpp(tmp_path):
    rep = _rep("Q8")
    modules = [symm.nn.eConv1d(rep, rep, 3, padding=1), symm.nn.eConvTranspose1d(rep, rep, 2, stride=2),
               symm.nn.eBatchNorm1d(rep), symm.nn.Change2DisentangledBasis(rep, learnable=True)]
    modules[2](torch.randn(4, rep.size))  # running statistics
    for i, m in enumerate(modules):
        path = tmp_path / f"m{i}.symm"
        symm.save(m, path)
        fresh = type(m)(rep, rep, m.kernel_size, stride=m.stride, padding=m.padding) if i < 2 else (
            symm.nn.eBatchNorm1d(rep) if i == 2 else symm.nn.Change2DisentangledBasis(rep, learnable=True))
        symm.load(fresh, path)
        for k, t in m.state_dict().items():
            assert torch.equal(t, fresh.state_dict()[k]), (type(m).__name__, k)
        # The C++ module reads the Python checkpoint and computes the same forward.
        twin = checkpoint.cpp_twin(m)
        symm._C.load(twin, str(path))
        m.eval(), symm._C.set_training(twin, False)
        x = torch.randn(2, rep.size, 6) if i < 3 else torch.randn(2, rep.size)
        assert _rel(m(x), twin.forward(x)) < 1e-5
    other = symm.nn.eConv1d(_rep("D4"), _rep("D4"), 3)
    with pytest.raises(RuntimeError):
        symm.load(other, tmp_path / "m0.symm")


def test_bad_arguments_and_inputs_raise_value_errors():
    rep = _rep("D4")
    for kw in (dict(kernel_size=0), dict(stride=0), dict(dilation=0), dict(padding=-1), dict(padding="full"),
               dict(padding="same", stride=2), dict(padding_mode="mirror"), dict(init_scheme="orthogonal"),
               dict(groups=2), dict(basis_expansion="dense")):
        with pytest.raises(ValueError):
            symm.nn.eConv1d(rep, rep, **kw)
    with pytest.raises(ValueError, match="output_padding"):
        symm.nn.eConvTranspose1d(rep, rep, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="padding_mode"):
        symm.nn.eConvTranspose1d(rep, rep, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="zero-dimensional"):
        G = symm.group("D4")
        symm.nn.eConv1d(symm.Representation.trivial(G, 2), symm.Representation.irrep(G, 4))
    conv = symm.nn.eConv1d(rep, rep, 3)
    with pytest.raises(ValueError, match=f"{rep.size} channels"):
        conv(torch.randn(2, rep.size + 1, 8))
    with pytest.raises(ValueError, match="spans 3"):
        conv(torch.randn(2, rep.size, 2))
    with pytest.raises(ValueError, match=f"{rep.size} channels"):
        symm.nn.eConvTranspose1d(rep, rep)(torch.randn(rep.size, 4, 5))
    with pytest.raises(ValueError):
        symm.nn.eBatchNorm1d(rep, eps=0)
    with pytest.raises(ValueError):
        symm.nn.eBatchNorm1d(rep, momentum=1.5)
    bn = symm.nn.eBatchNorm1d(rep)
    with pytest.raises(ValueError, match=f"{rep.size} channels"):
        bn(torch.randn(4, rep.size - 1))
    with pytest.raises(ValueError, match="more than 1 value"):
        bn(torch.randn(1, rep.size))
    with pytest.raises(RuntimeError, match="last dimension"):
        symm.nn.IrrepSubspaceNormPooling(rep)(torch.randn(3, rep.size + 2))


def test_meta_construction_copies_and_gradients():
    rep = _rep("Q8")
    makers = [lambda: symm.nn.eConv1d(rep, rep, 3, padding=1), lambda: symm.nn.eConvTranspose1d(rep, rep, 2, stride=2),
              lambda: symm.nn.eBatchNorm1d(rep), lambda: symm.nn.IrrepSubspaceNormPooling(rep),
              lambda: symm.nn.Change2DisentangledBasis(rep, learnable=True)]
    for i, make in enumerate(makers):
        m = make().eval()
        x = torch.randn(3, rep.size, 5) if i < 3 else torch.randn(3, rep.size)
        for copy in (pickle.loads(pickle.dumps(m)), deepcopy(m)):
            assert torch.equal(copy(x), m(x)), type(m).__name__
        with torch.device("meta"):  # constants come back from their CPU masters
            lazy = make()
        lazy.to_empty(device="cpu")
        lazy.load_state_dict(m.state_dict())
        lazy.eval()
        assert torch.equal(lazy(x), m(x)), type(m).__name__
    small = symm.Representation.regular(symm.group("C3")) + symm.Representation.trivial(symm.group("C3"))
    conv = symm.nn.eConv1d(small, small, 2, stride=2, padding=1, dtype=torch.float64)
    bn = symm.nn.eBatchNorm1d(small, dtype=torch.float64)
    x = torch.randn(3, small.size, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: torch.func.functional_call(conv, {"weight_dof": w}, (x,)),
                                    (x, conv.weight_dof.detach().clone().requires_grad_()))
    assert torch.autograd.gradcheck(lambda x: bn(x), (x,))


def test_convolutions_match_symm_learning():
    """symm_learning 0.8.1's arguments give the same convolution: its kernel, projected onto our basis, is kept
    whole (the same Hom_G) and gives its outputs."""
    escnn_group = pytest.importorskip("escnn.group")
    sl_nn = pytest.importorskip("symm_learning.nn")
    from symm_learning.representation_theory import direct_sum
    from symm.interop import rep_from_escnn

    G = escnn_group.dihedral_group(4)
    theirs_rep = direct_sum([G.regular_representation, G.irrep(1, 1)])
    rep = rep_from_escnn(theirs_rep)
    x = torch.randn(2, rep.size, 12)
    for transposed in (False, True):
        kw = dict(stride=2, padding=1, dilation=2) | (dict(output_padding=1) if transposed else {})
        theirs = (sl_nn.eConvTranspose1d if transposed else sl_nn.eConv1d)(theirs_rep, theirs_rep, 3, **kw)
        ours = (symm.nn.eConvTranspose1d if transposed else symm.nn.eConv1d)(rep, rep, 3, **kw)
        assert ours.weight_dof.shape == theirs.weight_dof.shape
        w = theirs.weight.detach()
        ours.set_taps(w.permute(2, 0, 1) if not transposed else w.permute(2, 1, 0), theirs.bias)
        with torch.no_grad():
            assert _rel(ours.weight, w) < 1e-6
            assert _rel(ours(x), theirs(x)) < 1e-6, transposed


@pytest.mark.parametrize("transposed", (False, True))
@pytest.mark.parametrize("spec", GROUPS)
def test_conv_on_regular_copies_runs_isotypic(spec, transposed):
    """Regular copies (Q block diagonal) convolve irrep by irrep in the isotypic basis, the transposed convolution
    with the same units' kernels: the same outputs as the C++ module and the same gradients as the dense kernel,
    train and eval, batched or not."""
    G = symm.group(spec)
    a, b = symm.Representation.regular(G).copies(2), symm.Representation.regular(G).copies(3)
    module = symm.nn.eConvTranspose1d if transposed else symm.nn.eConv1d
    cases = (((dict(padding=2), None), (dict(stride=2, padding=1, output_padding=1, dilation=2), None)) if transposed
             else ((dict(padding=2), None), (dict(padding=3, padding_mode="circular", dilation=2, stride=2), 3)))
    for kw, pad in cases:
        m = module(a, b, 5, dtype=torch.float64, **kw)
        assert m.isotypic and not module(_rep(spec), _rep(spec), 3).isotypic
        with torch.no_grad():
            m.bias_dof.normal_()
        twin = checkpoint.cpp_copy(m)
        x = torch.randn(3, a.size, 17, dtype=torch.float64, requires_grad=True)
        y = m(x)
        assert _rel(y, twin.forward(x)) < 1e-12
        # The dense kernel's convolution, differentiable in the coefficients as the module is in training.
        if transposed:
            dense = F.conv_transpose1d(x, m.weight, m.bias, m.stride, m.padding, m.output_padding, 1, m.dilation)
        else:
            dense = F.conv1d(F.pad(x, (pad, pad), mode="circular") if pad else x,
                             m.weight, m.bias, m.stride, 0 if pad else m.padding, m.dilation)
        g = torch.randn_like(y)
        for got, want in zip(torch.autograd.grad(y, (x, m.weight_dof, m.bias_dof), g),
                             torch.autograd.grad(dense, (x, m.weight_dof, m.bias_dof), g)):
            assert _rel(got, want) < 1e-12
        m.eval(), symm._C.set_training(twin, False)
        with torch.no_grad():
            assert _rel(m(x), twin.forward(x)) < 1e-12
            assert _rel(m(x[0]), twin.forward(x[:1])[0]) < 1e-12

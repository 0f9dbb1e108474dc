"""from_symm_learning for symm_learning's time-series models and remaining modules: eTimeCNNEncoder,
eConditionalUnet1D, IrrepSubspaceNormPooling, Change2DisentangledBasis, eMultivariateNormal, EMAStats, eEMAStats."""
import subprocess

import pytest
import torch

import symm
from conftest import act
from symm.interop import ConversionError, from_symm_learning

escnn_group = pytest.importorskip("escnn.group")
sl_nn = pytest.importorskip("symm_learning.nn")
sl_models = pytest.importorskip("symm_learning.models")
from symm_learning.representation_theory import direct_sum  # noqa: E402

GROUPS = [lambda: escnn_group.cyclic_group(2), lambda: escnn_group.dihedral_group(4),
          lambda: escnn_group.cyclic_group(8)]
IDS = ["C2", "D4", "C8"]


def _relative(got, want):
    return ((got - want).abs().max() / want.abs().max()).item()


def regular(G, m):
    return direct_sum([G.regular_representation] * m)


@torch.no_grad()
def perturb(model, scale=0.3):
    """Moves every parameter (norm scales included) away from its initial value. symm_learning's parametrized
    weights are moved through their coefficients, so they stay equivariant."""
    for p in model.parameters():
        p.add_(scale * torch.randn_like(p))
    for m in model.modules():  # cached dense weights of eval mode
        if hasattr(m, "invalidate_cache"):
            m.invalidate_cache()
    return model.eval()


def equivariance_error(f, x, g, rep_in, rep_out):
    with torch.no_grad():
        y = f(x)
        return (f(act(rep_in, g, x.transpose(1, -1)).transpose(1, -1))
                - act(rep_out, g, y.transpose(1, -1)).transpose(1, -1)).abs().max().item() / y.abs().max().item()


@pytest.mark.parametrize("make_group", GROUPS, ids=IDS)
@pytest.mark.parametrize("head", ["equivariant", "invariant"])
def test_time_cnn_encoder_converts_with_the_same_outputs(make_group, head):
    G = make_group()
    in_rep = direct_sum([regular(G, 1), G.irreps()[-1]])  # not only regular copies at the input
    out_rep = regular(G, 2) if head == "equivariant" else direct_sum([G.trivial_representation] * 3)
    for downsample, batch_norm, append in (("stride", True, False), ("pooling", False, True)):
        theirs = perturb(sl_models.eTimeCNNEncoder(in_rep, out_rep, hidden_channels=[2 * G.order(), 3 * G.order()],
                                                   time_horizon=12, batch_norm=batch_norm, mlp_hidden=[16, 24],
                                                   downsample=downsample, append_last_frame=append))
        ours = from_symm_learning(theirs)
        assert type(ours) is symm.nn.eTimeCNNEncoder and not ours.training
        x = torch.randn(5, in_rep.size, 12)
        with torch.no_grad():
            assert _relative(ours(x), theirs(x)) < 1e-5
        ours_in = symm.interop.rep_from_escnn(in_rep)
        if head == "equivariant":
            ours_out = ours.out_rep
            with torch.no_grad():
                y = ours(x)
                err = max((ours(act(ours_in, g, x.transpose(1, 2)).transpose(1, 2)) - act(ours_out, g, y)).abs().max()
                          for g in range(ours_in.group.order))
        else:
            with torch.no_grad():
                y = ours(x)
                err = max((ours(act(ours_in, g, x.transpose(1, 2)).transpose(1, 2)) - y).abs().max()
                          for g in range(ours_in.group.order))
        assert err < 1e-5 * y.abs().max()


@pytest.mark.parametrize("make_group", GROUPS, ids=IDS)
def test_unet_converts_with_the_same_outputs(make_group):
    G = make_group()
    rep, cond = regular(G, 1), direct_sum([regular(G, 1), G.irreps()[-1]])
    # One copy at the level: theirs adds the input itself in its residual, ours through a permutation.
    for global_cond, downsample, copies in ((cond, "stride", 2), (None, "pooling", 1)):
        theirs = perturb(sl_models.eConditionalUnet1D(rep, None, global_cond, diffusion_step_embed_dim=16,
                                                      down_dims=[copies * G.order()], kernel_size=5,
                                                      downsample=downsample), 0.2)
        ours = from_symm_learning(theirs)
        assert type(ours) is symm.nn.eConditionalUnet1D and not ours.training
        x, t = torch.randn(3, rep.size, 8), torch.tensor([0, 5, 50])
        film = None if global_cond is None else torch.randn(3, cond.size)
        with torch.no_grad():
            assert _relative(ours(x, t, None, film), theirs(x, t, None, film)) < 1e-5
            assert _relative(ours(x, 7, None, film), theirs(x, 7, None, film)) < 1e-5


def test_unet_refusals():
    G = escnn_group.cyclic_group(4)
    rep = regular(G, 1)
    with pytest.raises(ConversionError, match="eConditionalUnet1D: symm_learning 0.8.1's decoder with 2 levels"):
        from_symm_learning(sl_models.eConditionalUnet1D(rep, None, rep, diffusion_step_embed_dim=8, down_dims=[8, 16]))
    with pytest.raises(ConversionError, match=r"eConditionalUnet1D\.local_cond_encoder: with one level"):
        from_symm_learning(sl_models.eConditionalUnet1D(rep, rep, rep, diffusion_step_embed_dim=8, down_dims=[8]))


@pytest.mark.parametrize("make_group", GROUPS, ids=IDS)
def test_modules_convert_with_the_same_outputs(make_group):
    G = make_group()
    rep = direct_sum([regular(G, 2), *G.irreps()])
    x = torch.randn(4, 3, rep.size)

    pool = sl_nn.IrrepSubspaceNormPooling(rep)
    ours = from_symm_learning(pool)
    assert type(ours) is symm.nn.IrrepSubspaceNormPooling
    assert _relative(ours(x), pool(x)) < 1e-6

    for learnable in (False, True):
        change = sl_nn.Change2DisentangledBasis(rep, learnable=learnable)
        ours = from_symm_learning(change)
        assert type(ours) is symm.nn.Change2DisentangledBasis
        with torch.no_grad():
            assert _relative(ours(x), change(x)) < 1e-6
            y = ours(x[0])
            for g in range(ours.in_rep.group.order):
                assert (ours(act(ours.in_rep, g, x[0])) - act(ours.out_rep, g, y)).abs().max() < 1e-5

    # In the irreps' own coordinates (Q = I) symm_learning's covariance is equivariant and ours is the same.
    out_rep = direct_sum([*G.irreps(), *G.irreps()])
    normal = sl_nn.eMultivariateNormal(out_rep)
    ours = from_symm_learning(normal)
    assert type(ours) is symm.nn.eMultivariateNormal
    u = torch.randn(6, normal.in_rep.size)
    a, b = normal(u), ours(u)
    assert _relative(b.mean, a.mean) < 1e-6 and _relative(b.covariance_matrix, a.covariance_matrix) < 1e-5
    y = torch.randn(6, out_rep.size)
    assert _relative(b.log_prob(y), a.log_prob(y)) < 1e-5

    for stats in (sl_nn.eEMAStats(rep, regular(G, 1), momentum=0.2), sl_nn.EMAStats(5, 3, momentum=0.2)):
        dx, dy = (stats.x_rep.size, stats.y_rep.size) if hasattr(stats, "x_rep") else (5, 3)
        for _ in range(3):
            stats(torch.randn(32, dx) + 1, torch.randn(32, dy) * 2)
        ours = from_symm_learning(stats)
        assert type(ours).__name__ == type(stats).__name__ and ours.training
        assert int(ours.num_batches_tracked) == 3
        for n in ("mean_x", "mean_y", "cov_xx", "cov_yy", "cov_xy"):
            assert _relative(getattr(ours, n), getattr(stats, n)) < 1e-5, n
        # and they go on tracking alike
        xb, yb = torch.randn(32, dx), torch.randn(32, dy)
        stats(xb, yb)
        ours(xb, yb)
        for n in ("mean_x", "cov_xx", "cov_xy"):
            assert _relative(getattr(ours, n).detach(), getattr(stats, n).detach()) < 1e-5, n


@pytest.mark.parametrize("make_group", GROUPS, ids=IDS)
def test_non_equivariant_models_are_refused_naming_the_layer(make_group):
    G = make_group()
    rep = regular(G, 1)
    enc = sl_models.eTimeCNNEncoder(rep, rep, hidden_channels=[G.order()], time_horizon=8, batch_norm=True,
                                    mlp_hidden=[16])
    conv = enc.feature_layers[0]
    dense = conv.weight.detach().clone()  # synthesised from the Hom_G coefficients: perturb the dense kernel
    dense[0, 0, 0] += 1.0
    conv.__class__ = type("eConv1d", (type(conv),), {"weight": property(lambda self: dense)})
    with pytest.raises(ConversionError, match=r"eTimeCNNEncoder\.feature_layers\.0\.weight: weights are not "
                                              r"equivariant"):
        from_symm_learning(enc)

    unet = sl_models.eConditionalUnet1D(rep, None, rep, diffusion_step_embed_dim=8, down_dims=[G.order()])
    block = unet.mid_modules[1]
    block.norm2.norm.affine = torch.nn.Linear(rep.size, rep.size, bias=False)  # a dense scaling: not equivariant
    with pytest.raises(ConversionError, match=r"eConditionalUnet1D\.mid_modules\.1\.norm2\.affine: weights are not "
                                              r"equivariant"):
        from_symm_learning(unet)

    invariant = sl_models.eTimeCNNEncoder(rep, G.trivial_representation, hidden_channels=[G.order()], time_horizon=8,
                                          activation=torch.nn.Tanh(), mlp_hidden=[16])
    with pytest.raises(ConversionError, match=r"eTimeCNNEncoder\.head: an invariant head after Tanh"):
        from_symm_learning(invariant)

    normal = sl_nn.eMultivariateNormal(rep)  # Q of the regular representation: diag(Q⊙Q v) does not commute
    with pytest.raises(ConversionError, match=r"eMultivariateNormal\.Q2_T: the covariance of irrep copy \d+ is not "
                                              r"equivariant"):
        from_symm_learning(normal)


def test_plain_unet_and_parts_convert_with_the_same_outputs():
    from symm_learning.models.diffusion import cond_unet1d as plain
    for theirs, args in ((plain.Downsample1d(6), (torch.randn(3, 6, 10),)),
                         (plain.Upsample1d(6), (torch.randn(3, 6, 10),)),
                         (plain.Conv1dBlock(4, 6, 5, n_groups=2), (torch.randn(3, 4, 10),)),
                         (plain.ConditionalResidualBlock1D(4, 6, 7, n_groups=2, cond_predict_scale=True),
                          (torch.randn(3, 4, 10), torch.randn(3, 7))),
                         (plain.ConditionalUnet1D(4, None, 6, 16, [8, 16], 5, 2), (torch.randn(3, 4, 8), 7, None,
                                                                                   torch.randn(3, 6))),
                         (plain.ConditionalUnet1D(4, 2, None, 8, [8, 16, 32]), (torch.randn(3, 4, 16),
                                                                                torch.tensor([1, 2, 3]),
                                                                                torch.randn(3, 2), None))):
        ours = from_symm_learning(perturb(theirs, 0.1))
        assert type(ours).__name__ == type(theirs).__name__ and type(ours).__module__ == "symm.nn.unet"
        with torch.no_grad():
            assert _relative(ours(*args), theirs(*args)) < 1e-6


@pytest.mark.parametrize("make_group", GROUPS, ids=IDS)
def test_converted_models_have_cpp_twins_and_checkpoints_that_cross(make_group, tmp_path):
    G = make_group()
    in_rep, cond = direct_sum([regular(G, 1), G.irreps()[-1]]), direct_sum([regular(G, 1), G.irreps()[-1]])

    def encoder():
        return perturb(sl_models.eTimeCNNEncoder(in_rep, regular(G, 2), hidden_channels=[2 * G.order()],
                                                 time_horizon=8, batch_norm=True, mlp_hidden=[16]))

    def unet():
        return perturb(sl_models.eConditionalUnet1D(regular(G, 1), None, cond, diffusion_step_embed_dim=8,
                                                    down_dims=[2 * G.order()]), 0.2)

    x, t, film = torch.randn(3, in_rep.size, 8), torch.tensor([0, 5, 50]), torch.randn(3, cond.size)
    for make, inputs in ((encoder, (x,)), (unet, (torch.randn(3, G.order(), 8), t, None, film))):
        ours, fresh = from_symm_learning(make()), from_symm_learning(make())  # the same hidden_rep, other weights
        name = type(ours).__name__
        with torch.no_grad():
            want = ours(*inputs)
            # The C++ twin is the same model: built with the converted model's hidden_rep.
            assert _relative(symm.checkpoint.cpp_copy(ours).forward(*inputs), want) < 1e-5, name
            path = str(tmp_path / "m.symm")
            symm.save(ours, path)
            symm.load(fresh, path)
            assert _relative(fresh(*inputs), want) < 1e-6, name
            twin = symm.checkpoint.cpp_twin(fresh)
            symm._C.load(twin, path)  # C++ symm::load
            assert _relative(twin.forward(*inputs), want) < 1e-5, name
            twin = symm.checkpoint.cpp_copy(from_symm_learning(make()))  # C++ symm::save → Python
            symm._C.save(twin, path)
            symm.load(fresh, path)
            assert _relative(fresh(*inputs), twin.forward(*inputs)) < 1e-5, name
        if G.name == "C2":  # escnn's decomposition is ours: the checkpoint is that of a model built without one
            assert symm.nn.mlp.is_our_decomposition(ours.hidden_rep)
            assert "decomposition=" not in symm.architecture(ours)
            continue
        assert not symm.nn.mlp.is_our_decomposition(ours.hidden_rep)
        default = symm.nn.eTimeCNNEncoder(ours.in_rep, ours.out_rep, [2 * G.order()], 8, batch_norm=True,
                                          mlp_hidden=[16]) if name == "eTimeCNNEncoder" else \
            symm.nn.eConditionalUnet1D(ours.in_rep, None, ours.global_cond_rep, diffusion_step_embed_dim=8,
                                       down_dims=[2 * G.order()])
        refusal = "was saved with its hidden regular copies in another irrep decomposition"
        with pytest.raises(RuntimeError, match=refusal):
            symm.load(default, path)
        with pytest.raises(RuntimeError, match=refusal):
            symm._C.load(symm.checkpoint.cpp_twin(default), path)  # C++ symm::load


@pytest.mark.parametrize("make_group", GROUPS[1:], ids=IDS[1:])
def test_converted_encoder_checkpoints_cross_to_the_cpp_peer_and_back(make_group, peer, tmp_path):
    # The peer builds the eTimeCNNEncoder natively in C++ on the converted model's group (a JSON file of its
    # permutations) with its representations and hidden_rep (escnn's decomposition).
    from test_hidden_rep import run_peer, write_group, write_reps
    torch.set_num_threads(1)
    G = make_group()
    copies, layers, ff = 2, 2, 2 * G.order()
    ours = from_symm_learning(perturb(sl_models.eTimeCNNEncoder(regular(G, copies), regular(G, copies),
                                                                hidden_channels=[ff] * layers, time_horizon=5,
                                                                batch_norm=True, mlp_hidden=[ff])))
    assert not symm.nn.mlp.is_our_decomposition(ours.hidden_rep)
    group = write_group(tmp_path / "group.json", ours.in_rep.group)
    reps = write_reps(tmp_path / "reps.txt", **{"in": ours.in_rep, "out": ours.out_rep, "hidden": ours.hidden_rep})
    symm.save(ours, tmp_path / "py.symm")
    x = torch.randn(2, 5, ours.in_rep.size)  # the peer reads it as 2 series of 5 frames
    with torch.no_grad():
        want = ours(x.transpose(1, 2))
    args = (tmp_path, group, copies, layers, ff, "time_cnn")
    got = run_peer(peer, "load", tmp_path / "py.symm", x, *args, reps)
    assert isinstance(got, torch.Tensor), got.stderr
    assert _relative(got.reshape(want.shape), want) < 1e-5
    proc = run_peer(peer, "load", tmp_path / "py.symm", x, *args)  # the peer's own reps: refused
    assert isinstance(proc, subprocess.CompletedProcess) and proc.returncode != 0, proc
    got = run_peer(peer, "save", tmp_path / "cpp.symm", x, *args, reps)
    fresh = from_symm_learning(sl_models.eTimeCNNEncoder(regular(G, copies), regular(G, copies),
                                                         hidden_channels=[ff] * layers, time_horizon=5,
                                                         batch_norm=True, mlp_hidden=[ff]))
    symm.load(fresh, tmp_path / "cpp.symm")
    with torch.no_grad():
        assert _relative(fresh(x.transpose(1, 2)), got.reshape(want.shape)) < 1e-5


def test_conversion_swaps_no_module_globals():
    assert not hasattr(symm.interop, "_hidden_in_escnn_decomposition")
    regular_copies = symm.nn.mlp._regular_copies
    from_symm_learning(sl_models.eTimeCNNEncoder(regular(escnn_group.dihedral_group(4), 1),
                                                 regular(escnn_group.dihedral_group(4), 1), hidden_channels=[8],
                                                 time_horizon=8, batch_norm=True, mlp_hidden=[16]))
    assert symm.nn.mlp._regular_copies is regular_copies

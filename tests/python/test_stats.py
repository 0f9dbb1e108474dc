"""symm.stats and symm.linalg: float64 exactness against dense group averages over every element, agreement
with the C++ symm::stats (bound as symm._C.stats) and with symm_learning 0.8.1 on the same data (escnn
representations converted with symm.interop), equivariance/invariance, gradients, and the errors of bad input."""
import pytest
import torch

import symm
from symm import linalg, stats

TOL = 1e-10
GROUPS = ("D4", "Q8")  # Q8 has a quaternionic irrep: Hom_G blocks with 4 endomorphisms


def _rep(spec):
    G = symm.group(spec)
    return symm.Representation.regular(G) + symm.Representation.irrep(G, 1) + symm.Representation.irrep(G, len(G.irreps) - 1)


def _images(rep):
    return torch.stack([rep(g) for g in range(rep.group.order)]).double()


def _avg_map(w, rx, ry):
    """(1/|G|) Σ_g ρ_y(g) W ρ_x(g)ᵀ, the dense Reynolds operator."""
    return torch.einsum("gab,bc,gdc->ad", _images(ry), w, _images(rx)) / rx.group.order


def _err(a, b):
    return float((a - b).abs().max())


@pytest.fixture(params=GROUPS)
def reps(request):
    G = symm.group(request.param)
    return _rep(request.param), symm.Representation.regular(G).copies(2)


def _data(rx, ry, n=37):
    return (torch.randn(n, rx.size, dtype=torch.float64) + 1.0, torch.randn(n, ry.size, dtype=torch.float64) - 0.5)


def test_stats_equal_dense_group_averages(reps):
    rx, ry = reps
    x, y = _data(rx, ry)
    n = x.shape[0]
    rho = _images(rx)
    mu = (rho @ x.mean(0)).mean(0)
    assert _err(stats.mean(x, rx), mu) < TOL
    assert _err(linalg.invariant_orthogonal_projector(rx, dtype=torch.float64), rho.mean(0)) < TOL
    # var: the spectral covariance group-averaged, its diagonal, back with Q⊙Q.
    q = rx.change_of_basis
    s = q.T @ ((x - mu).T @ (x - mu) / (n - 1)) @ q
    rho_hat = q.T @ rho @ q
    v = torch.diagonal((rho_hat @ s @ rho_hat.transpose(1, 2)).mean(0))
    var, m = stats.var_mean(x, rx)
    assert _err(var, q.square() @ v) < TOL and _err(m, mu) < TOL
    s0 = q.T @ (x.T @ x / (n - 1)) @ q  # about a given center (0)
    v0 = torch.diagonal((rho_hat @ s0 @ rho_hat.transpose(1, 2)).mean(0))
    assert _err(stats.var(x, rx, center=torch.zeros(rx.size, dtype=torch.float64)), q.square() @ v0) < TOL
    muy = (_images(ry) @ y.mean(0)).mean(0)
    assert _err(stats.cov(x, y, rx, ry), _avg_map((y - muy).T @ (x - mu) / (n - 1), rx, ry)) < TOL
    assert _err(stats.cov(x, y, rx, ry, uncentered=True), _avg_map(y.T @ x / n, rx, ry)) < TOL
    # A time axis joins the samples.
    xt = torch.randn(5, rx.size, 4, dtype=torch.float64)
    flat = xt.transpose(1, 2).reshape(-1, rx.size)
    assert _err(stats.mean(xt, rx), stats.mean(flat, rx)) < TOL and _err(stats.var(xt, rx), stats.var(flat, rx)) < TOL


def test_linalg_equals_dense_group_averages(reps):
    rx, ry = reps
    x, y = _data(rx, ry)
    w = torch.randn(3, ry.size, rx.size, dtype=torch.float64)
    proj = linalg.equiv_orthogonal_projection(w, rx, ry)
    assert _err(proj, torch.stack([_avg_map(wi, rx, ry) for wi in w])) < TOL
    theta = linalg.equiv_orthogonal_projection_coefficients(w, rx, ry)
    basis = symm._C.HomBasis(rx, ry)
    assert theta.shape == (3, basis.dim)
    assert _err(theta[1], basis.coefficients(w[1])) < TOL
    assert _err(linalg.equiv_linear_map(theta, rx, ry)[2], basis.synthesize(theta[2])) < TOL
    # The basis is Frobenius-orthonormal: ‖Π(W)‖ = ‖θ‖.
    assert _err(proj.square().sum((-2, -1)), theta.square().sum(-1)) < TOL
    # lstsq: equivariant, and its residual is orthogonal to Hom_G (the normal equations of the constrained problem).
    a = linalg.lstsq(x, y, rx, ry)
    assert _err(_images(ry) @ a, a @ _images(rx)) < TOL
    assert float(_avg_map((y - x @ a.T).T @ x, rx, ry).abs().max()) < 1e-9
    # irrep radii: invariant, and their squares add up to ‖x‖².
    r = linalg.irrep_radii(x, rx)
    assert r.shape == (x.shape[0], len(rx.irreps))
    assert _err(r.square().sum(-1), x.square().sum(-1)) < TOL
    assert max(_err(linalg.irrep_radii(x @ rx(g).T, rx), r) for g in range(rx.group.order)) < TOL


def test_agreement_with_the_cpp_stats(reps):
    rx, ry = reps
    x, y = _data(rx, ry)
    C = symm._C.stats
    w = torch.randn(2, ry.size, rx.size, dtype=torch.float64)
    pairs = [(stats.mean(x, rx), C.mean(x, rx)), (stats.var(x, rx), C.var(x, rx)),
             (stats.cov(x, y, rx, ry), C.cov(x, y, rx, ry)), (stats.cov(x, y, rx, ry, True), C.cov(x, y, rx, ry, True)),
             (linalg.invariant_orthogonal_projector(rx, dtype=torch.float64), C.invariant_orthogonal_projector(rx)),
             (linalg.equiv_orthogonal_projection_coefficients(w, rx, ry), C.equiv_orthogonal_projection_coefficients(w, rx, ry)),
             (linalg.equiv_orthogonal_projection(w, rx, ry), C.equiv_orthogonal_projection(w, rx, ry)),
             (linalg.lstsq(x, y, rx, ry), C.lstsq(x, y, rx, ry)), (linalg.irrep_radii(x, rx), C.irrep_radii(x, rx))]
    for ours, theirs in pairs:
        assert ours.shape == theirs.shape and _err(ours, theirs) < TOL
    iso = symm.Representation.irrep(rx.group, len(rx.group.irreps) - 1).copies(3)
    xi = torch.randn(6, iso.size, dtype=torch.float64)
    z = linalg.isotypic_signal2irreducible_subspaces(xi, iso)
    assert z.shape == (6 * iso.size // 3, 3) and _err(z, C.isotypic_signal2irreducible_subspaces(xi, iso)) < TOL


def test_float32_and_gradients(reps):
    rx, ry = reps
    x, y = _data(rx, ry, n=9)
    assert stats.var(x.float(), rx).dtype == torch.float32
    assert _err(stats.cov(x.float(), y.float(), rx, ry).double(), stats.cov(x, y, rx, ry)) < 1e-5
    # gradcheck on small representations (its cost grows with the number of inputs).
    G = rx.group
    sx = symm.Representation.irrep(G, 0) + symm.Representation.irrep(G, len(G.irreps) - 1)
    sy = symm.Representation.irrep(G, len(G.irreps) - 1) + symm.Representation.irrep(G, 0)
    a, b = (t.requires_grad_() for t in _data(sx, sy, n=5))
    assert torch.autograd.gradcheck(lambda a, b: (stats.var(a, sx), stats.cov(a, b, sx, sy), linalg.lstsq(a, b, sx, sy),
                                                  linalg.irrep_radii(a, sx)), (a, b))


def test_agreement_with_symm_learning():
    eg = pytest.importorskip("escnn.group")
    sl_stats = pytest.importorskip("symm_learning.stats")
    sl_linalg = pytest.importorskip("symm_learning.linalg")
    G = eg.dihedral_group(4)
    erx = eg.directsum([G.regular_representation] * 2 + [G.irrep(1, 1)])
    ery = eg.directsum([G.regular_representation, G.irrep(1, 0), G.irrep(1, 1)])
    gmap = symm.interop._GroupMap(G)
    rx, ry = symm.interop.rep_from_escnn(erx, gmap), symm.interop.rep_from_escnn(ery, gmap)
    x, y = _data(rx, ry, n=40)
    tol = 1e-6  # symm_learning's invariant projector is computed in float32
    assert _err(stats.mean(x, rx), sl_stats.mean(x, erx)) < tol
    assert _err(stats.var(x, rx), sl_stats.var(x, erx)) < tol
    for unc in (False, True):
        assert _err(stats.cov(x, y, rx, ry, uncentered=unc), sl_stats.cov(x, y, erx, ery, uncentered=unc)) < tol
    w = torch.randn(ry.size, rx.size, dtype=torch.float64)
    assert _err(linalg.equiv_orthogonal_projection(w, rx, ry), sl_linalg.equiv_orthogonal_projection(w, erx, ery)) < tol
    assert _err(linalg.invariant_orthogonal_projector(rx, dtype=torch.float64), sl_linalg.invariant_orthogonal_projector(erx)) < tol
    # irrep radii, copies in either library's order.
    assert _err(linalg.irrep_radii(x, rx).sort(-1).values, sl_linalg.irrep_radii(x, erx).sort(-1).values) < tol
    # symm_learning's lstsq projects the unconstrained solution onto Hom_G; ours (the C++ one) is the constrained
    # minimiser: never a larger residual, and the same on data closed under the group (orbits of samples).
    ours, theirs = linalg.lstsq(x, y, rx, ry), sl_linalg.lstsq(x, y, erx, ery)
    assert (y - x @ ours.T).norm() <= (y - x @ theirs.T).norm() + 1e-12
    xo = torch.cat([x[:6] @ rx(g).T for g in range(rx.group.order)])
    yo = torch.cat([y[:6] @ ry(g).T for g in range(ry.group.order)])
    assert _err(linalg.lstsq(xo, yo, rx, ry), sl_linalg.lstsq(xo, yo, erx, ery)) < tol


def test_bad_input():
    rx = _rep("D4")
    x = torch.randn(5, rx.size, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"D = 11"):
        stats.mean(x[:, :-1], rx)
    with pytest.raises(ValueError, match="at least 2 samples"):
        stats.var(x[:1], rx)
    with pytest.raises(ValueError, match="center of shape"):
        stats.var(x, rx, center=torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 2 samples"):
        stats.cov(x[:1], x[:1], rx, rx)
    assert stats.cov(x[:1], x[:1], rx, rx, uncentered=True).shape == (11, 11)
    with pytest.raises(ValueError, match="same N"):
        stats.cov(x, x[:4], rx, rx)
    with pytest.raises(ValueError, match="floating-point"):
        stats.mean(x.long(), rx)
    with pytest.raises(ValueError, match=r"\(\.\.\., 11, 11\)"):
        linalg.equiv_orthogonal_projection(torch.randn(11, 10), rx, rx)
    with pytest.raises(ValueError, match="coefficients of shape"):
        linalg.equiv_linear_map(torch.randn(3), rx, rx)
    with pytest.raises(ValueError, match="isotypic"):
        linalg.isotypic_signal2irreducible_subspaces(x, rx)
    with pytest.raises(ValueError, match="different groups"):
        linalg.equiv_orthogonal_projection(torch.randn(8, 11), rx, symm.Representation.regular(symm.group("C8")))
    with pytest.raises(TypeError, match="symm.Representation"):
        stats.mean(x, "D4")


# ------------------------------------------------------------------------------------- EMAStats, eEMAStats

def _ema_pair(spec, dtype=torch.float64):
    G = symm.group(spec)
    rx, ry = _rep(spec), symm.Representation.regular(G)
    return rx, ry, symm.nn.eEMAStats(rx, ry, momentum=0.3, dtype=dtype)


@pytest.mark.parametrize("spec", GROUPS)
def test_eemastats_dense_and_equivariant(spec):
    rx, ry, m = _ema_pair(spec)
    assert _err(m.cov_xx, torch.eye(rx.size, dtype=torch.float64)) < TOL and float(m.cov_xy.abs().max()) == 0
    batches = [_data(rx, ry, n=7) for _ in range(3)]
    # Dense reference: invariant means by group averages, second moments over N projected by the Reynolds operator.
    mx = my = cxx = cyy = cxy = None
    for t, (x, y) in enumerate(batches):
        assert m(x, y)[0] is x
        bx, by = (_images(rx) @ x.mean(0)).mean(0), (_images(ry) @ y.mean(0)).mean(0)
        cx, cy = (bx, by) if t == 0 else (mx, my)
        xc, yc, n = x - cx, y - cy, x.shape[0]
        b = (bx, by, _avg_map(xc.T @ xc / n, rx, rx), _avg_map(yc.T @ yc / n, ry, ry), _avg_map(yc.T @ xc / n, rx, ry).T)
        if t == 0:
            mx, my, cxx, cyy, cxy = b
        else:
            mx, my, cxx, cyy, cxy = (0.7 * s + 0.3 * bb for s, bb in zip((mx, my, cxx, cyy, cxy), b))
    for ours, ref in ((m.mean_x, mx), (m.mean_y, my), (m.cov_xx, cxx), (m.cov_yy, cyy), (m.cov_xy, cxy)):
        assert _err(ours, ref) < TOL
    assert int(m.num_batches_tracked) == 3
    # Equivariance: acting on both streams by g leaves the (invariant) statistics as they are.
    for g in range(rx.group.order):
        mg = symm.nn.eEMAStats(rx, ry, momentum=0.3, dtype=torch.float64)
        for x, y in batches:
            mg(x @ rx(g).T, y @ ry(g).T)
        assert _err(mg.cov_xy, m.cov_xy) < TOL and _err(mg.mean_x, m.mean_x) < TOL
    # eval leaves the statistics; the batch's gradient reaches them in training.
    m.eval()
    before = m.running_cov_xx_dof.clone()
    m(*batches[0])
    assert torch.equal(before, m.running_cov_xx_dof)
    m.train()
    x = batches[0][0].clone().requires_grad_()
    m(x, batches[0][1])
    m.cov_xy.sum().backward()
    assert x.grad is not None and float(x.grad.abs().max()) > 0


def test_emastats_as_torch():
    m = symm.nn.EMAStats(4, 3, momentum=0.5, dtype=torch.float64)
    xs = [torch.randn(6, 4, dtype=torch.float64) for _ in range(2)]
    ys = [torch.randn(6, 3, dtype=torch.float64) for _ in range(2)]
    for x, y in zip(xs, ys):
        m(x, y)
    c0 = torch.cov(torch.cat([xs[0], ys[0]], 1).T)
    mu0 = torch.cat([xs[0], ys[0]], 1).mean(0)
    z1 = torch.cat([xs[1], ys[1]], 1) - mu0
    c1 = z1.T @ z1 / 5
    c = 0.5 * c0 + 0.5 * c1
    assert _err(m.cov_xx, c[:4, :4]) < TOL and _err(m.cov_xy, c[:4, 4:]) < TOL and _err(m.cov_yy, c[4:, 4:]) < TOL
    assert _err(m.mean_x, 0.5 * xs[0].mean(0) + 0.5 * xs[1].mean(0)) < TOL


def test_emastats_checkpoints_round_trip(tmp_path):
    rx = ry = _rep("D4")
    for make in (lambda: symm.nn.EMAStats(4, 3, momentum=0.5, dtype=torch.float64),
                 lambda: symm.nn.eEMAStats(rx, ry, momentum=0.3, dtype=torch.float64)):
        m, back = make(), make()
        for _ in range(3):
            m(torch.randn(6, m.running_mean_x.shape[0], dtype=torch.float64),
              torch.randn(6, m.running_mean_y.shape[0], dtype=torch.float64))
        path = tmp_path / f"{type(m).__name__}.symm"
        symm.save(m, path)
        symm.load(back, path)  # the C++ reader of the 0-dim batch counter
        assert int(back.num_batches_tracked) == 3
        assert _err(back.cov_xy, m.cov_xy) < TOL and _err(back.mean_x, m.mean_x) < TOL


def test_emastats_agree_with_cpp():
    from symm import checkpoint
    rx, ry, m = _ema_pair("D4")
    plain = symm.nn.EMAStats(rx.size, ry.size, momentum=0.3, dtype=torch.float64)
    for mod in (m, plain):
        twin = checkpoint.cpp_twin(mod)
        ours, theirs = checkpoint._paired(mod, twin)
        for k, t in theirs.items():
            t.data = t.detach().double()
        batches = [_data(rx, ry, n=7) for _ in range(3)]
        for x, y in batches:
            mod(x, y)
            twin.forward(x, y)
        theirs = checkpoint._cpp_state(twin)
        for k, t in mod.state_dict().items():
            assert _err(t.double(), theirs[k].double()) < TOL, k
        if mod is m:
            assert _err(m.cov_xy, twin.cov_xy()) < TOL
        # The C++ symm::load does not read these modules' 0-dim num_batches_tracked yet ("Dimension specified as
        # 0 but tensor has no dimensions"), so there is no checkpoint round trip to test here.


def test_emastats_agree_with_symm_learning():
    eg = pytest.importorskip("escnn.group")
    sl_nn = pytest.importorskip("symm_learning.nn")
    G = eg.dihedral_group(4)
    erx = eg.directsum([G.regular_representation, G.irrep(1, 1)])
    ery = G.regular_representation
    gmap = symm.interop._GroupMap(G)
    rx, ry = symm.interop.rep_from_escnn(erx, gmap), symm.interop.rep_from_escnn(ery, gmap)
    ours = symm.nn.eEMAStats(rx, ry, momentum=0.2, dtype=torch.float64)
    theirs = sl_nn.eEMAStats(erx, ery, momentum=0.2).double()
    for _ in range(2):
        x, y = _data(rx, ry, n=8)
        ours(x, y)
        theirs(x, y)
    for name in ("mean_x", "mean_y", "cov_xx", "cov_yy", "cov_xy"):
        assert _err(getattr(ours, name), getattr(theirs, name).double()) < 1e-6, name


def test_emastats_bad_input():
    rx, ry, m = _ema_pair("D4")
    x, y = _data(rx, ry, n=4)
    with pytest.raises(ValueError, match=r"x of shape \(N, 11\)"):
        m(x[:, :-1], y)
    with pytest.raises(ValueError, match="same number of samples"):
        m(x, y[:3])
    with pytest.raises(ValueError, match="at least 2 samples"):
        symm.nn.EMAStats(3)(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match="momentum"):
        symm.nn.eEMAStats(rx, momentum=0.0)
    with pytest.raises(ValueError, match="same group"):
        symm.nn.eEMAStats(rx, symm.Representation.regular(symm.group("C8")))


# --------------------------------------------------------------------------------------- eMultivariateNormal

@pytest.mark.parametrize("spec", GROUPS)
def test_emultivariatenormal_dense_and_invariant(spec):
    rep = _rep(spec)
    head = symm.nn.eMultivariateNormal(rep, dtype=torch.float64)
    assert head.in_rep.size == rep.size + len(rep.irreps) and head.n_cov_params == len(rep.irreps)
    u = torch.randn(4, head.in_rep.size, dtype=torch.float64)
    dist = head(u)
    q = rep.change_of_basis
    dims = [rep.group.irrep(k).dim for k in rep.irreps]
    v = torch.repeat_interleave(u[:, rep.size:].exp(), torch.tensor(dims), dim=-1) + 1e-6
    sigma = q @ torch.diag_embed(v) @ q.T
    assert _err(dist.covariance_matrix, sigma) < TOL and _err(dist.mean, u[:, :rep.size]) < TOL
    ref = torch.distributions.MultivariateNormal(u[:, :rep.size], covariance_matrix=sigma)
    y = torch.randn(3, 1, rep.size, dtype=torch.float64)
    lp = dist.log_prob(y)
    assert lp.shape == (3, 4) and _err(lp, ref.log_prob(y)) < TOL
    assert _err(dist.entropy(), ref.entropy()) < TOL
    assert dist.rsample((5,)).shape == (5, 4, rep.size)
    # p(ρ_Y(g) y | ρ_in(g) u) = p(y | u) for every g (ρ_in acts trivially on the log-variances).
    for g in range(rep.group.order):
        rin = head.in_rep(g).double()
        assert _err(head(u @ rin.T).log_prob(y @ rep(g).T), lp) < TOL
    # Gradients reach the input through log_prob and rsample.
    ug = u.clone().requires_grad_()
    (head(ug).log_prob(y).sum() + head(ug).rsample().sum()).backward()
    assert float(ug.grad[:, rep.size:].abs().max()) > 0


def test_emultivariatenormal_agrees_with_symm_learning():
    eg = pytest.importorskip("escnn.group")
    sl_nn = pytest.importorskip("symm_learning.nn")
    G = eg.dihedral_group(4)
    ery = eg.directsum([G.regular_representation, G.irrep(1, 1)])
    ry = symm.interop.rep_from_escnn(ery)
    ours, theirs = symm.nn.eMultivariateNormal(ry, dtype=torch.float64), sl_nn.eMultivariateNormal(ery).double()
    u = torch.randn(6, ours.in_rep.size, dtype=torch.float64)
    a, b = ours(u), theirs(u)
    assert _err(a.mean, b.mean.double()) < 1e-6
    # symm_learning keeps only the diagonal of Σ in the original basis: equal diagonals, and equal densities where
    # Σ is diagonal there.
    assert _err(torch.diagonal(a.covariance_matrix, dim1=-2, dim2=-1),
                torch.diagonal(b.covariance_matrix, dim1=-2, dim2=-1).double()) < 1e-6


def test_emultivariatenormal_bad_input():
    rep = _rep("D4")
    head = symm.nn.eMultivariateNormal(rep, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"\(\.\.\., 19\)"):
        head(torch.randn(2, rep.size, dtype=torch.float64))
    with pytest.raises(ValueError, match="diagonal"):
        symm.nn.eMultivariateNormal(rep, diagonal=False)


def test_emultivariatenormal_agrees_with_cpp(tmp_path):
    from symm import checkpoint
    rep = _rep("Q8")
    head = symm.nn.eMultivariateNormal(rep, dtype=torch.float64)
    twin = checkpoint.cpp_twin(head)
    u = torch.randn(5, head.in_rep.size, dtype=torch.float64)
    y = torch.randn(5, rep.size, dtype=torch.float64)
    dist = head(u)
    mean, cov = twin.forward(u)
    assert _err(dist.mean, mean) < TOL and _err(dist.covariance_matrix, cov) < TOL
    assert _err(dist.log_prob(y), twin.log_prob(u, y)) < TOL and _err(dist.entropy(), twin.entropy(u)) < TOL
    # No state: a checkpoint holds the architecture only, and another representation's refuses to load.
    path = tmp_path / "head.symm"
    symm.save(head, path)
    symm.load(symm.nn.eMultivariateNormal(rep, dtype=torch.float64), path)
    with pytest.raises(RuntimeError):
        symm.load(symm.nn.eMultivariateNormal(_rep("D4")), path)

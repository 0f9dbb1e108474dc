"""The operators torch.ops.symm.* with the constants symm._C publishes: their values (equivariant, the
orthonormal Hom_G basis), and PyTorch's contracts for custom operators: opcheck (schema, autograd, fake
tensors, AOT dispatch), gradcheck and gradgradcheck, torch.func, torch.compile(fullgraph=True) and
torch.export with a dynamic batch."""
import pytest
import torch

import symm
from symm import _C

ops = torch.ops.symm


def reps(spec):
    g = symm.group(spec)
    regular = symm.Representation.regular(g)
    return {
        "tiles": (regular.copies(2), regular.copies(3)),
        # regular + trivial has a prime size here (3, 7, 9): no side-by-side copies of one block, so no tiles.
        "blocks": (regular + symm.Representation.trivial(g, 1), regular + symm.Representation.trivial(g, 1)),
    }


def weight_op(constants, dtype):
    """theta -> W through hom_tiles or hom_blocks, with the constants in dtype."""
    c = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in constants.items()}
    if "tiles" in c:
        index, tiles, m_out = c.get("tile_index"), c["tiles"], int(c["tile_m_out"])
        return lambda theta: ops.hom_tiles(theta, index, tiles, m_out)
    m_in = [int(m) for m in c["m_in"]]
    psi = [c[f"endomorphisms.{b}"] for b in range(len(m_in))]
    q_out = [c[f"q_out.{b}"] for b in range(len(m_in))]
    return lambda theta: ops.hom_blocks(theta, psi, q_out, c["q_in_t"], m_in)


# The synthesis operators read coefficients and constants, whose sizes are fixed by the representations: they
# are checked with static shapes (a dynamic batch reaches only the maps' inputs; see the export test below).
STATIC = ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_static")

CASES = [(spec, kind) for spec in ("C2", "D3", "Q8") for kind in ("tiles", "blocks")]


@pytest.fixture(params=CASES, ids=[f"{s}-{k}" for s, k in CASES])
def linear(request):
    spec, kind = request.param
    rep_in, rep_out = reps(spec)[kind]
    constants = _C.linear_constants(rep_in, rep_out)
    assert (kind == "tiles") == ("tiles" in constants), f"{spec} {kind}: constants {sorted(constants)}"
    return rep_in, rep_out, constants


def test_synthesis_is_equivariant_and_isometric(linear):
    rep_in, rep_out, constants = linear
    w_of = weight_op(constants, torch.float64)
    theta = torch.randn(constants["init_std"].numel(), dtype=torch.float64)
    w = w_of(theta)
    assert w.shape == (rep_out.size, rep_in.size)
    for g in range(rep_in.group.order):
        err = (rep_out(g) @ w - w @ rep_in(g)).abs().max().item()
        assert err < 1e-10 * w.abs().max().item(), f"element {g}: {err}"
    # The Hom_G basis is orthonormal in the Frobenius inner product.
    assert abs(w.norm().item() - theta.norm().item()) < 1e-10 * theta.norm().item()


def test_synthesis_gradcheck_and_opcheck(linear):
    _, _, constants = linear
    w_of = weight_op(constants, torch.float64)
    theta = torch.randn(constants["init_std"].numel(), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(w_of, (theta,))
    assert torch.autograd.gradgradcheck(w_of, (theta,))
    if not hasattr(torch.library, "opcheck"):
        pytest.skip("torch.library.opcheck needs torch >= 2.4")
    c = constants
    if "tiles" in c:
        torch.library.opcheck(ops.hom_tiles.default, (theta, c.get("tile_index"), c["tiles"], int(c["tile_m_out"])),
                              test_utils=STATIC)
    else:
        m_in = [int(m) for m in c["m_in"]]
        args = (theta, [c[f"endomorphisms.{b}"] for b in range(len(m_in))], [c[f"q_out.{b}"] for b in range(len(m_in))],
                c["q_in_t"], m_in)
        torch.library.opcheck(ops.hom_blocks.default, args, test_utils=STATIC)


def test_synthesis_under_torch_func_equals_eager(linear):
    """vmap and grad run the composite form; eager on the CPU may take the tile loops: the same values."""
    _, _, constants = linear
    w_of = weight_op(constants, torch.float32)
    thetas = torch.randn(3, constants["init_std"].numel())
    eager = torch.stack([w_of(t) for t in thetas])
    torch.testing.assert_close(torch.func.vmap(w_of)(thetas), eager, rtol=1e-6, atol=1e-6)
    r = torch.randn_like(eager[0])
    theta = thetas[0].clone().requires_grad_(True)
    (w_of(theta) * r).sum().backward()
    torch.testing.assert_close(torch.func.grad(lambda t: (w_of(t) * r).sum())(thetas[0]), theta.grad, rtol=1e-6, atol=1e-6)


def norm_case():
    g = symm.group("D3")
    rep = symm.Representation.regular(g).copies(2) + symm.Representation.trivial(g, 1)
    return rep, _C.layer_norm_constants(rep)["centre"]


@pytest.mark.parametrize("dim", [-1, 0])
def test_normalisations(dim):
    rep, centre = norm_case()
    x = torch.randn(5, rep.size, dtype=torch.float64) + 0.3
    xs = x if dim == -1 else x.T.contiguous()
    y = ops.rms_normalise(xs, dim, 1e-5)
    torch.testing.assert_close(y, xs * torch.rsqrt(xs.square().mean(dim, keepdim=True) + 1e-5))
    yl = ops.layer_normalise(xs, centre, dim, 1e-5)
    u = centre if dim == -1 else centre[:, None]
    c = xs - (xs * u).sum(dim, keepdim=True) * u
    torch.testing.assert_close(yl, c * torch.rsqrt(c.square().mean(dim, keepdim=True) + 1e-5))
    for f in (lambda t: ops.rms_normalise(t, dim, 1e-5), lambda t: ops.layer_normalise(t, centre, dim, 1e-5)):
        t = xs.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(f, (t,))
        assert torch.autograd.gradgradcheck(f, (t,))
    if hasattr(torch.library, "opcheck"):
        torch.library.opcheck(ops.rms_normalise.default, (xs.float().requires_grad_(), dim, 1e-5))
        torch.library.opcheck(ops.layer_normalise.default, (xs.float().requires_grad_(), centre.float(), dim, 1e-5))


def test_normalisation_under_vmap_equals_eager():
    rep, centre = norm_case()
    x = torch.randn(3, 4, rep.size)
    eager = torch.stack([ops.layer_normalise(t, centre.float(), -1, 1e-5) for t in x])
    vmapped = torch.func.vmap(lambda t: ops.layer_normalise(t, centre.float(), -1, 1e-5))(x)
    torch.testing.assert_close(vmapped, eager, rtol=1e-6, atol=1e-6)


class _Map(torch.nn.Module):
    """An eLinear-like map then an eRMSNorm-like normalisation, made of the operators alone."""

    def __init__(self, constants):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.randn(constants["init_std"].numel()) * 0.3)
        self.w_of = weight_op(constants, torch.float32)

    def forward(self, x):
        return ops.rms_normalise(torch.nn.functional.linear(x, self.w_of(self.theta)), -1, 1e-5)


def test_compile_fullgraph_and_export_with_dynamic_batch(linear):
    rep_in, _, constants = linear
    torch._dynamo.reset()  # each case compiles _Map.forward afresh, not against the recompile limit of the others
    module = _Map(constants)
    x = torch.randn(4, 3, rep_in.size)
    eager = module(x)
    # aot_eager: the whole graph captured (fullgraph) and differentiated by AOTAutograd through the operators,
    # without inductor's code generation (the modules' tests compile with the default backend).
    compiled = torch.compile(module, fullgraph=True, dynamic=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), eager, rtol=1e-5, atol=1e-5)
    x2 = torch.randn(7, 3, rep_in.size, requires_grad=True)
    out = compiled(x2)
    torch.testing.assert_close(out, module(x2), rtol=1e-5, atol=1e-5)
    out.sum().backward()
    grad_compiled = module.theta.grad.clone()
    module.theta.grad = None
    module(x2).sum().backward()
    torch.testing.assert_close(grad_compiled, module.theta.grad, rtol=1e-4, atol=1e-5)

    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(module, (x,), dynamic_shapes={"x": {0: batch}})
    x3 = torch.randn(11, 3, rep_in.size)
    torch.testing.assert_close(program.module()(x3), module(x3), rtol=1e-5, atol=1e-5)


def isotypic_linear(x, theta, bias_dof, c):
    """eLinear's isotypic path made of the operators: into the isotypic layout, the block products, back."""
    f = lambda name: c[name].to(x.dtype)
    z = ops.to_isotypic(x, f("isotypic_in.basis"), int(c["isotypic_in.chunks"]))
    n_groups = len(c["isotypic.in_rows"])
    k = int((c["isotypic.in_rows"] >= 0).sum())
    weights = ops.isotypic_weights(theta, [c[f"isotypic.index.{i}"] for i in range(k)],
                                   [f(f"isotypic.endomorphisms.{i}") for i in range(k)], [int(d) for d in c["isotypic.dims"]])
    out_rows = [int(r) for r in c["isotypic.out_rows"]]
    bias = f("isotypic_out.fix") @ bias_dof if "isotypic_out.fix" in c else torch.zeros(sum(out_rows), dtype=x.dtype)
    per_group, it = [], iter(weights)
    for i in range(n_groups):
        per_group.append(next(it) if int(c["isotypic.in_rows"][i]) >= 0 else None)
    biases = [b.reshape(w.size(0), -1, 1) if w is not None else b for w, b in zip(per_group, bias.split(out_rows))]
    y = ops.isotypic_blocks(z, per_group, biases, [int(r) for r in c["isotypic.in_rows"]], out_rows)
    return ops.from_isotypic(y, f("isotypic_out.basis"), int(c["isotypic_out.chunks"])).view(*x.shape[:-1], -1)


def test_isotypic_path_equals_dense(linear):
    rep_in, rep_out, c = linear
    theta = torch.randn(c["init_std"].numel(), dtype=torch.float64, requires_grad=True)
    bias_dof = torch.randn(c["fix"].shape[1], dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 3, rep_in.size, dtype=torch.float64)
    dense = torch.nn.functional.linear(x, weight_op(c, torch.float64)(theta), c["fix"] @ bias_dof)
    iso = isotypic_linear(x, theta, bias_dof, c)
    torch.testing.assert_close(iso, dense, rtol=1e-12, atol=1e-12)
    r = torch.randn_like(dense)
    g_dense = torch.autograd.grad((dense * r).sum(), (theta, bias_dof))
    g_iso = torch.autograd.grad((isotypic_linear(x, theta, bias_dof, c) * r).sum(), (theta, bias_dof))
    for a, b in zip(g_iso, g_dense):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    if hasattr(torch.library, "opcheck"):
        k = int((c["isotypic.in_rows"] >= 0).sum())
        torch.library.opcheck(ops.isotypic_weights.default, (theta, [c[f"isotypic.index.{i}"] for i in range(k)],
                                                             [c[f"isotypic.endomorphisms.{i}"] for i in range(k)],
                                                             [int(d) for d in c["isotypic.dims"]]), test_utils=STATIC)


def _channel_rms_reference(x, eps):
    """What torch.ops.symm.rms_normalise(x, 1, eps) replaced: symm.nn.ops.channel_rms, x (N, C, T) over dim 1."""
    return x * torch.rsqrt(x.square().mean(1, keepdim=True) + eps)


# (N, C, T) over its channels, with T above one block of the kernel's columns (256); (N, C) (dim 1 is the last).
@pytest.mark.parametrize("shape", [(3, 12, 5), (2, 5, 300), (4, 6)])
def test_rms_normalise_over_a_middle_dimension(shape):
    x = torch.randn(*shape, dtype=torch.float64) + 0.3
    torch.testing.assert_close(ops.rms_normalise(x, 1, 1e-6), _channel_rms_reference(x, 1e-6), rtol=1e-12, atol=1e-12)
    # Strided input: the same values.
    xt = x.transpose(0, 1).contiguous().transpose(0, 1)
    torch.testing.assert_close(ops.rms_normalise(xt, 1, 1e-6), _channel_rms_reference(x, 1e-6), rtol=1e-12, atol=1e-12)
    t = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: ops.rms_normalise(v, 1, 1e-6), (t,))
    assert torch.autograd.gradgradcheck(lambda v: ops.rms_normalise(v, 1, 1e-6), (t,))
    # The eager kernel's backward against the previous implementation's autograd, in float32.
    xf = x.float().requires_grad_(True)
    g = torch.randn_like(xf)
    (ops.rms_normalise(xf, 1, 1e-6) * g).sum().backward()
    ref = xf.detach().clone().requires_grad_(True)
    (_channel_rms_reference(ref, 1e-6) * g).sum().backward()
    torch.testing.assert_close(xf.grad, ref.grad, rtol=1e-5, atol=1e-6)
    # torch.func runs the composition: the same gradient.
    torch.testing.assert_close(torch.func.grad(lambda v: (ops.rms_normalise(v, 1, 1e-6) * g).sum())(xf.detach()), xf.grad,
                               rtol=1e-5, atol=1e-6)
    if hasattr(torch.library, "opcheck"):
        torch.library.opcheck(ops.rms_normalise.default, (xf.detach().requires_grad_(), 1, 1e-6))


def _batch_norm_case(kind, dtype=torch.float64):
    """eBatchNorm1d's constants for the operator: regular copies of D4 (Q in 8×8 blocks) or a mixed representation
    (Q one dense block), with non-trivial affine values."""
    g = symm.group("D4")
    regular = symm.Representation.regular(g)
    rep = regular.copies(3) if kind == "blocks" else regular + symm.Representation.irrep(g, 1) + symm.Representation.irrep(g, 4)
    m = symm.nn.eBatchNorm1d(rep, dtype=dtype)
    assert m._basis.shape[0] == (3 if kind == "blocks" else 1)
    weight = torch.rand(m.num_copies, dtype=dtype) + 0.5
    bias = m.affine._fix @ torch.randn(m.affine.num_fix, dtype=dtype)  # in Fix(ρ)
    return rep, m, weight, bias


def _batch_norm_reference(x, m, weight, bias, eps=1e-5):
    """eBatchNorm1d's training forward before torch.ops.symm.batch_norm_train (python/symm/nn/batchnorm.py, dense Q)."""
    q = m._q
    fix = m.in_rep.invariant_basis.to(x.dtype)
    timed = x.dim() == 3
    dims = (0, 2) if timed else (0,)
    col = (lambda v: v.unsqueeze(-1)) if timed else (lambda v: v)
    mean = torch.mv(fix @ fix.T, x.mean(dims))
    z = torch.matmul(q.T, x - col(mean)) if timed else (x - mean) @ q
    var = torch.zeros(m.num_copies, dtype=x.dtype).index_add(0, m._copy_of, z.square().mean(dims)) / m._dims
    a = (torch.rsqrt(var + eps) * weight).index_select(0, m._copy_of)
    y = torch.matmul(q, z * col(a)) if timed else (z * a) @ q.T
    return y + col(bias), mean, var


def _batch_norm_op(m, eps=1e-5):
    return lambda x, w, b: ops.batch_norm_train(x, m._basis, m._copy_of, m._dims, m._trivial, w, b, eps)


@pytest.mark.parametrize("kind", ["blocks", "dense"])
@pytest.mark.parametrize("timed", [True, False])
def test_batch_norm_train_equals_the_previous_implementation_with_its_gradients(kind, timed):
    rep, m, weight, bias = _batch_norm_case(kind)
    f = _batch_norm_op(m)
    # 37 time steps: the kernel's tiles of two vectors (8 doubles) and a remainder; (B, C): the remainder alone.
    shape = (6, rep.size, 37) if timed else (9, rep.size)
    x = torch.randn(*shape, dtype=torch.float64) * 2 + 0.7
    for got, want in zip(f(x, weight, bias), _batch_norm_reference(x, m, weight, bias)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    y, _, _ = f(x, None, None)
    torch.testing.assert_close(y, _batch_norm_reference(x, m, torch.ones_like(weight), torch.zeros_like(bias))[0],
                               rtol=1e-12, atol=1e-12)
    # The hand backward (eager) against autograd through the previous implementation, for x, weight and bias.
    args = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
    ref = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
    g = torch.randn_like(x)
    (f(*args)[0] * g).sum().backward()
    (_batch_norm_reference(*ref[:1], m, *ref[1:])[0] * g).sum().backward()
    for a, r in zip(args, ref):
        torch.testing.assert_close(a.grad, r.grad, rtol=1e-10, atol=1e-10)
    # torch.func runs the composition: the same gradients.
    grads = torch.func.grad(lambda *t: (f(*t)[0] * g).sum(), argnums=(0, 1, 2))(x, weight, bias)
    for a, r in zip(args, grads):
        torch.testing.assert_close(a.grad, r, rtol=1e-10, atol=1e-10)
    small = [t.clone().requires_grad_(True) for t in (x[:3, :, :5] if timed else x[:4], weight, bias)]
    assert torch.autograd.gradcheck(lambda *t: f(*t)[0], small)
    assert torch.autograd.gradgradcheck(lambda *t: f(*t)[0], small)
    if hasattr(torch.library, "opcheck"):
        # In float64: the weight's gradient sums over the whole batch, where float32's rounding of a near-zero sum
        # exceeds opcheck's tolerance between two summation orders.
        torch.library.opcheck(ops.batch_norm_train.default,
                              (small[0].detach().requires_grad_(), m._basis, m._copy_of, m._dims, m._trivial,
                               weight.requires_grad_(), bias.requires_grad_(), 1e-5))


@pytest.mark.parametrize("kind", ["blocks", "dense"])
def test_batch_norm_train_is_equivariant(kind):
    rep, m, weight, bias = _batch_norm_case(kind, torch.float32)
    f = _batch_norm_op(m)
    x = torch.randn(8, rep.size, 20) * 2 + 0.5
    y = f(x, weight.float(), bias.float())[0]
    for e in range(rep.group.order):
        r = rep(e).float()
        gy = f(torch.matmul(r, x), weight.float(), bias.float())[0]
        err = float((gy - torch.matmul(r, y)).abs().max())
        assert err < 1e-5 * float(y.abs().max()), (kind, e, err)

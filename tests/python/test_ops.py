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

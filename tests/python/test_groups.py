import json

import pytest
import torch

import symm


@pytest.mark.parametrize("spec,order", [("C8", 8), ("D8", 16), ("K4", 4), ("S4", 24), ("A5", 60), ("Q8", 8), ("I", 60),
                                        ("C2xD3", 12)])
def test_named_groups_and_irreps(spec, order):
    G = symm.group(spec)
    assert G.order == order
    # Σ d_k² / S_k = |G| over the real irreps; the trivial irrep comes first.
    assert sum(r.dim ** 2 // r.endo_dim for r in G.irreps) == order
    assert G.irreps[0].is_trivial


def test_regular_copies_sum_and_isotypic_decomposition():
    G = symm.group("D8")
    reg = symm.Representation.regular(G)
    assert reg.size == 16 and reg.copies(3).size == 48
    both = reg.copies(2) + symm.Representation.trivial(G, 3)
    assert both.size == 35
    # The regular representation holds each real irrep d/S times.
    dec = reg.isotypic_decomposition()
    assert dec == {r.id: r.dim // r.endo_dim for r in G.irreps}
    assert reg.copies(2).regular_copies == 2 and both.regular_copies is None
    iso = both.isotypic_order()
    assert iso.size == both.size and iso.isotypic_decomposition() == both.isotypic_decomposition()


def test_representation_is_an_orthogonal_homomorphism():
    G = symm.group("Q8")
    rep = symm.Representation.regular(G).copies(2) + symm.Representation.irrep(G, len(G.irreps) - 1)
    for a in range(G.order):
        ra = rep(a)
        assert torch.allclose(ra @ ra.T, torch.eye(rep.size, dtype=torch.float64), atol=1e-10)
        for b in range(G.order):
            assert torch.allclose(ra @ rep(b), rep(G.mul(a, b)), atol=1e-10)


def test_from_generators_decomposes_a_permutation_representation():
    G = symm.group("D5")  # generators: rotation, reflection
    rot = torch.roll(torch.eye(5, dtype=torch.float64), 1, dims=0)
    ref = torch.eye(5, dtype=torch.float64)[[(-k) % 5 for k in range(5)]]

    def order(g):
        k, x = 1, g
        while x != 0:
            x, k = G.mul(x, g), k + 1
        return k

    images = [rot if order(g) == 5 else ref for g in G.generators]
    rep = symm.Representation.from_generators(G, images, "ring")
    assert rep.size == 5
    assert sum(rep.multiplicities) == 3  # trivial + two 2-dimensional irreps
    for k, g in enumerate(G.generators):
        assert torch.allclose(rep(g), images[k], atol=1e-10)


def test_from_generators_refuses_a_non_homomorphism():
    G = symm.group("C4")
    with pytest.raises(ValueError, match="generator"):
        symm.Representation.from_generators(G, [2.0 * torch.eye(2)])


def test_json_group_and_bad_spec(tmp_path):
    path = tmp_path / "c3.json"
    path.write_text(json.dumps({"name": "C3perm", "permutations": [[1, 2, 0]]}))
    assert symm.group(path).order == 3
    with pytest.raises(ValueError):
        symm.group("nonsense")

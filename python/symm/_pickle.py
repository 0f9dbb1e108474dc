"""Pickling and copying of groups and representations, so that modules holding them can be deep-copied,
pickled and saved with torch.save. Both are immutable: a copy is the object itself. A pickled group is its
name and the permutations its generators induce on the elements; unpickling rebuilds it once per process
(every representation of one module tree then shares one group, which the C++ side compares by identity)."""
from __future__ import annotations

import pickle

from . import _C

_groups: dict = {}


def _permutations(group):
    n = group.order
    return tuple(tuple(group.mul(g, h) for h in range(n)) for g in group.generators)


def _rebuild_group(name, permutations):
    key = (name, permutations)
    group = _groups.get(key)
    if group is not None:
        return group
    candidates = []
    try:
        candidates.append(_C.group(name))
    except (RuntimeError, ValueError):
        pass
    candidates.append(_C.group_from_permutations(name, [list(p) for p in permutations]))
    for group in candidates:
        if _permutations(group) == permutations:
            _groups[key] = group
            return group
    raise pickle.UnpicklingError(f"symm: cannot rebuild the group {name!r} with the same element order from the "
                                 f"permutations of its generators")


def _reduce_group(group):
    key = (group.name, _permutations(group))
    _groups.setdefault(key, group)
    return _rebuild_group, key


def _rebuild_representation(group, irreps, change_of_basis, name):
    return _C.Representation(group, list(irreps), change_of_basis, name)


def _reduce_representation(rep):
    return _rebuild_representation, (rep.group, tuple(rep.irreps), rep.change_of_basis, rep.name)


def _itself(obj, memo=None):
    return obj


for cls, reduce in ((_C.Group, _reduce_group), (_C.Representation, _reduce_representation)):
    cls.__reduce__ = reduce
    cls.__copy__ = _itself
    cls.__deepcopy__ = _itself

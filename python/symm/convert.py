"""python -m symm.convert [--factory MODULE:FUNCTION] MODEL.pt OUT.symm: a saved symm_learning model to a
symm checkpoint for the C++ side.

symm_learning's layers hold parametrized weights, which torch.save can store only as a state_dict: with
--factory, MODEL.pt is a state_dict and MODULE:FUNCTION (importable, called without arguments) builds the
symm_learning model to load it into; without it, MODEL.pt is a pickled module (torch.save of the module).

Writes OUT.symm (``symm::save`` format), OUT.symm.group.json (the group as permutations, which
``symm::group::make_group`` reads) and OUT.symm.json (the architecture and the input representation's images
of the group's generators, for ``Representation::from_generators``). ``load_converted(OUT.symm)`` rebuilds
the model from them in Python. Exits with code 2 and one message when the model cannot be converted.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys

import torch

from . import Representation, _C, interop, nn
from .checkpoint import load, save


def build(spec: dict):
    """The (untrained) symm model a conversion spec describes."""
    group = _C.group_from_permutations(spec["group"]["name"], spec["group"]["permutations"])
    rep = Representation(group, spec["in_rep"]["irreps"], torch.tensor(spec["in_rep"]["change_of_basis"], dtype=torch.float64))
    options = dict(spec["layer"])
    options["activation"] = interop.ACTIVATIONS[options["activation"]]()
    layer = nn.eTransformerEncoderLayer(rep, nn.eMultiheadAttention(rep, **spec["attention"]), **options)
    if spec["num_layers"] is None:
        return layer
    norm = None if spec["final_norm"] is None else nn.eRMSNorm(rep, **spec["final_norm"])
    return nn.eTransformerEncoder(layer, spec["num_layers"], norm=norm)


def load_converted(path):
    """The model written by ``python -m symm.convert`` at path (OUT.symm), loaded, in eval mode."""
    with open(f"{path}.json") as f:
        model = build(json.load(f))
    load(model, path)
    return model.eval()


def convert(module, out) -> dict:
    """Converts a symm_learning model and writes OUT, OUT.json and OUT.group.json; returns the spec."""
    model = interop.from_symm_learning(module)
    spec = getattr(model, "conversion_spec", None)
    if spec is None:  # the time modules: their architecture has no spec that build() reads
        raise interop.ConversionError(f"{type(module).__name__}: only transformer encoders are written here; convert "
                                      "it with symm.interop.from_symm_learning and write it with symm.save")
    if spec["layer"]["activation"] is None:
        raise interop.ConversionError(f"activation {module_activation(module)!r}: only "
                                      f"{', '.join(interop.ACTIVATIONS)} can be written beside a checkpoint")
    save(model, out)
    with open(f"{out}.json", "w") as f:
        json.dump(spec, f)
    with open(f"{out}.group.json", "w") as f:
        json.dump(spec["group"], f)
    return spec


def module_activation(module):
    layers = list(module.layers) if hasattr(module, "layers") else [module]
    return layers[0].activation


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m symm.convert", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n")[1])
    parser.add_argument("model", help="a symm_learning eTransformerEncoderLayer or encoder stack saved with torch.save "
                                      "(its state_dict with --factory)")
    parser.add_argument("out", help="the .symm checkpoint to write")
    parser.add_argument("--factory", metavar="MODULE:FUNCTION", help="builds the symm_learning model for a state_dict")
    args = parser.parse_args(argv)
    try:
        if args.factory:
            name, _, function = args.factory.partition(":")
            module = getattr(importlib.import_module(name), function)()
            module.load_state_dict(torch.load(args.model, map_location="cpu"))
        else:
            module = torch.load(args.model, weights_only=False, map_location="cpu")
        if not isinstance(module, torch.nn.Module):
            raise interop.ConversionError(f"{args.model}: expected a pickled torch.nn.Module, got {type(module).__name__}")
        spec = convert(module, args.out)
    except (OSError, RuntimeError, ValueError, AttributeError, ImportError) as e:
        print(f"symm.convert: {e}", file=sys.stderr)
        return 2
    layers = spec["num_layers"] or 1
    print(f"wrote {args.out}: {spec['group']['name']}, {layers} layer(s), D={len(spec['in_rep']['change_of_basis'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

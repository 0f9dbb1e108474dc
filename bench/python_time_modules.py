"""Python-side timings of the time-series modules, in one process: symm.nn's (ours) vs symm_learning's vs the plain
torch module of the same width, eval forward (no grad) and training step (zero_grad, forward, mean square,
backward), medians of interleaved repetitions, with the ratios issue 23 holds ours to (ours/symm_learning,
ours/torch). One line per model and config; not a test.

    python bench/python_time_modules.py [--quick] [--threads N] [--models eConv1d,eBatchNorm1d,eTimeCNNEncoder,...]

A model is one entry of MODELS: a function of (group spec, copies, symm_learning's modules or None) returning
{name: (module, input)} for ours, symm_learning's (when there) and torch's. The process sets glibc's malloc as
`symm bench` does (mmap threshold 32 MiB, trim threshold 128 MiB).
"""
import argparse
import os
import sys

import torch

import symm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from python_layers import configure_allocator, escnn_group, interleaved  # noqa: E402

# group, regular copies, batch, time steps
CONFIGS = [("C2", 16, 32, 64), ("D8", 8, 32, 64), ("D8", 16, 32, 64), ("O", 8, 32, 64)]
KERNEL = 5


def _sl_rep(sl, spec, copies):
    return sl.direct_sum([escnn_group(spec).regular_representation] * copies)


def conv(spec, copies, B, T, sl, name="Conv1d"):
    """eConv1d (or eConvTranspose1d) from and to `copies` regular copies, kernel 5, padding 2 (length kept)."""
    rep = symm.Representation.regular(symm.group(spec)).copies(copies)
    x = torch.randn(B, rep.size, T)
    models = {"ours": (getattr(symm.nn, "e" + name)(rep, rep, KERNEL, padding=KERNEL // 2), x)}
    if sl is not None:
        erep = _sl_rep(sl, spec, copies)
        models["symm_learning"] = (getattr(sl.nn, "e" + name)(erep, erep, KERNEL, padding=KERNEL // 2), x)
    models["torch"] = (getattr(torch.nn, name)(rep.size, rep.size, KERNEL, padding=KERNEL // 2), x)
    return models


def conv_transpose(spec, copies, B, T, sl):
    return conv(spec, copies, B, T, sl, "ConvTranspose1d")


def batchnorm(spec, copies, B, T, sl):
    """eBatchNorm1d with affine over (B, D, T); symm_learning's takes the channels last, (B, T, D)."""
    rep = symm.Representation.regular(symm.group(spec)).copies(copies)
    x = torch.randn(B, rep.size, T)
    models = {"ours": (symm.nn.eBatchNorm1d(rep), x)}
    if sl is not None:
        models["symm_learning"] = (sl.nn.eBatchNorm1d(_sl_rep(sl, spec, copies)), x.transpose(1, 2).contiguous())
    models["torch"] = (torch.nn.BatchNorm1d(rep.size), x)
    return models


def time_cnn(spec, copies, B, T, sl):
    """eTimeCNNEncoder from and to `copies` regular copies: three stride-2 blocks of the same width with the RMS
    norm (batch_norm), ReLU, an eMLP head of one hidden layer of that width on the flattened T/8 frames (our
    representations hold at most 2048 channels: 8 frames of D8 m=16)."""
    rep = symm.Representation.regular(symm.group(spec)).copies(copies)
    D = rep.size
    x = torch.randn(B, D, T)
    opts = dict(batch_norm=True, mlp_hidden=[D])
    models = {"ours": (symm.nn.eTimeCNNEncoder(rep, rep, [D] * 3, T, **opts), x)}
    if sl is not None:
        erep = _sl_rep(sl, spec, copies)
        models["symm_learning"] = (sl.models.eTimeCNNEncoder(erep, erep, [D] * 3, T, **opts), x)
    models["torch"] = (symm.nn.TimeCNNEncoder(D, D, [D] * 3, T, normalize=True, mlp_hidden=[D]), x)
    return models


def unet(spec, copies, B, T, sl):
    """eConditionalUnet1D on `copies` regular copies, one level of that width (symm_learning 0.8.1's decoder
    does not return the horizon with more), the same copies as global condition, step embedding 32, kernel 5;
    input (sample, timesteps, None, film_cond). torch's ConditionalUnet1D of that width also has its decoder stage
    at the level (its skips all used)."""
    rep = symm.Representation.regular(symm.group(spec)).copies(copies)
    D = rep.size
    x = (torch.randn(B, D, T), torch.randint(0, 100, (B,)), None, torch.randn(B, D))
    opts = dict(diffusion_step_embed_dim=32, down_dims=[D], kernel_size=KERNEL)
    models = {"ours": (symm.nn.eConditionalUnet1D(rep, None, rep, **opts), x)}
    if sl is not None:
        erep = _sl_rep(sl, spec, copies)
        models["symm_learning"] = (sl.models.eConditionalUnet1D(erep, None, erep, **opts), x)
    models["torch"] = (symm.nn.ConditionalUnet1D(D, None, D, **opts), x)
    return models


MODELS = {"eConv1d": conv, "eConvTranspose1d": conv_transpose, "eBatchNorm1d": batchnorm, "eTimeCNNEncoder": time_cnn, "eConditionalUnet1D": unet}


def _call(model, x):
    """A model's forward on its input (a tuple: the U-Net's arguments)."""
    return model(*x) if isinstance(x, tuple) else model(x)


def _step(model, params, x):
    for p in params:
        p.grad = None
    _call(model, x).square().mean().backward()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="few repetitions (a smoke run)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    args = parser.parse_args()
    allocator = configure_allocator()
    torch.set_num_threads(args.threads)
    warmup, reps = (2, 5) if args.quick else (5, 21)
    try:
        import symm_learning.models
        import symm_learning.nn
        import symm_learning.representation_theory
        sl = argparse.Namespace(nn=symm_learning.nn, models=symm_learning.models,
                                direct_sum=symm_learning.representation_theory.direct_sum)
    except ImportError as e:  # still time ours against torch's
        sl, why = None, str(e)
    print(f"# torch {torch.__version__} threads={torch.get_num_threads()} allocator=\"{allocator}\" "
          f"loadavg={' '.join(f'{v:.2f}' for v in os.getloadavg())}; medians in ms of {reps} interleaved repetitions")
    print(f"# columns: ours{' / symm_learning' if sl else ''} / torch; ratios "
          f"{'ours/symm_learning, ' if sl else ''}ours/torch")
    for name in args.models.split(","):
        build = MODELS[name]
        for spec, copies, B, T in CONFIGS:
            torch.manual_seed(0)
            models = build(spec, copies, B, T, sl)
            params = {k: list(m.parameters()) for k, (m, _) in models.items()}
            parts = []
            for mode in ("eval", "train"):
                for m, _ in models.values():
                    m.train(mode == "train")
                if mode == "train":
                    t = interleaved([lambda k=k: _step(models[k][0], params[k], models[k][1]) for k in models],
                                    warmup, reps)
                else:
                    with torch.no_grad():
                        t = interleaved([lambda k=k: _call(*models[k]) for k in models], warmup, reps)
                t = dict(zip(models, t))
                ratios = [f"{t['ours'] / t['symm_learning']:.2f}"] if "symm_learning" in t else []
                ratios.append(f"{t['ours'] / t['torch']:.2f}")
                parts.append(f"{mode} {' / '.join(f'{v:.3f}' for v in t.values())} (ratios {' / '.join(ratios)})")
            D = models["ours"][0].in_rep.size
            print(f"{name} {spec} m={copies} D={D} B{B} T{T}: {'; '.join(parts)}", flush=True)
    if sl is None:
        print(f"symm_learning not timed: {why}")


if __name__ == "__main__":
    main()

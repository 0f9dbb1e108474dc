"""Python-side timings, in one process: symm.nn.eTransformerEncoderLayer (ours, eager and torch.compile'd) vs
symm_learning's eTransformerEncoderLayer vs torch.nn.TransformerEncoderLayer (batch-first, pre-norm, GELU), eval
forward (no grad) and training step (zero_grad, forward, mean square, backward), medians of interleaved
repetitions, with the ratios issue 22 holds ours to. One line per config; not a test.

    python bench/python_layers.py [--quick] [--threads N] [--backend inductor|aot_eager|none]

The process sets glibc's malloc as `symm bench` does (mmap threshold 32 MiB, trim threshold 128 MiB).
"""
import argparse
import ctypes
import statistics
import time

import torch

import symm

# group, regular copies, heads, B, T, what is timed
CONFIGS = [("C2", 32, 4, 32, 32, "both"), ("C8", 16, 4, 32, 32, "both"), ("D8", 8, 4, 32, 32, "both"),
           ("D8", 32, 4, 16, 32, "both"), ("O", 16, 4, 16, 32, "both"), ("I", 8, 4, 16, 32, "both"),
           ("D8", 4, 4, 1, 16, "eval")]  # batch 1: D=64, eval only


def configure_allocator():
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    ok = libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(M_TRIM_THRESHOLD, 128 << 20)
    return "glibc mallopt mmap_threshold=33554432 trim_threshold=134217728" if ok else "glibc default"


def escnn_group(spec):
    import escnn.group as eg
    if spec == "O":
        return eg.octa_group()
    if spec == "I":
        return eg.ico_group()
    return eg.cyclic_group(int(spec[1:])) if spec[0] == "C" else eg.dihedral_group(int(spec[1:]))


def step(model, params, x):
    for p in params:
        p.grad = None
    model(x).square().mean().backward()


def interleaved(fns, warmup, reps, inner=1):
    """Medians over reps of the mean of `inner` back-to-back calls (many at batch 1, where one call is ~100 µs)."""
    for _ in range(warmup):
        for f in fns:
            f()
    times = [[] for _ in fns]
    for r in range(reps):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for k in order:
            t0 = time.perf_counter()
            for _ in range(inner):
                fns[k]()
            times[k].append((time.perf_counter() - t0) * 1e3 / inner)
    return [statistics.median(t) for t in times]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="few repetitions (a smoke run)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", default="inductor", help="torch.compile backend for ours; none: not compiled")
    parser.add_argument("--freezing", action="store_true",
                        help="inductor's freezing (parameters folded into the compiled inference graph, as for "
                             "deployment); eval rows only")
    args = parser.parse_args()
    if args.freezing:
        from torch._inductor import config as inductor_config
        inductor_config.freezing = True
    allocator = configure_allocator()
    torch.set_num_threads(args.threads)
    warmup, reps = (2, 5) if args.quick else (5, 21)
    try:
        import symm_learning.nn as sl
        from symm_learning.representation_theory import direct_sum
    except ImportError as e:  # still time ours against torch's
        sl, why = None, str(e)
    names = ["ours", *(["compiled"] if args.backend != "none" else []), *(["symm_learning"] if sl else []), "torch"]
    print(f"# torch {torch.__version__} threads={torch.get_num_threads()} allocator=\"{allocator}\" "
          f"compile backend={args.backend}{' freezing' if args.freezing else ''}; medians in ms of {reps} interleaved "
          f"repetitions")
    print(f"# columns: {' / '.join(names)}; ratios ours/symm_learning, compiled/ours, ours/torch")
    for spec, copies, heads, B, T, what in CONFIGS:
        torch._dynamo.reset()  # each config compiles the same forwards anew: keep them off the recompile limit
        torch.manual_seed(0)
        rep = symm.Representation.regular(symm.group(spec)).copies(copies)
        D = rep.size
        ff = 4 * D
        ours = symm.nn.eTransformerEncoderLayer(rep, symm.nn.eMultiheadAttention(rep, heads), dim_feedforward=ff,
                                                dropout=0.0)
        models = {"ours": ours}
        if args.backend != "none":
            models["compiled"] = torch.compile(ours, backend=args.backend, fullgraph=True)
        if sl is not None:
            erep = direct_sum([escnn_group(spec).regular_representation] * copies)
            models["symm_learning"] = sl.eTransformerEncoderLayer(erep, sl.eMultiheadAttention(erep, heads),
                                                                  dim_feedforward=ff, dropout=0.0)
        models["torch"] = torch.nn.TransformerEncoderLayer(D, heads, ff, dropout=0.0, activation="gelu",
                                                           batch_first=True, norm_first=True)
        x = torch.randn(B, T, D)
        params = {k: list((ours if k == "compiled" else m).parameters()) for k, m in models.items()}

        def timed(train):
            for k in models:
                (ours if k == "compiled" else models[k]).train(train)
            if train:
                return interleaved([lambda k=k: step(models[k], params[k], x) for k in models], warmup, reps)
            with torch.no_grad():
                return interleaved([lambda k=k: models[k](x) for k in models], warmup, reps, 50 if B == 1 else 1)

        results = {"eval": dict(zip(models, timed(False)))}
        if what == "both" and not args.freezing:
            results["train"] = dict(zip(models, timed(True)))
        parts = []
        for mode, t in results.items():
            ratios = []
            if "symm_learning" in t:
                ratios.append(f"{t['ours'] / t['symm_learning']:.2f}")
            if "compiled" in t:
                ratios.append(f"{t['compiled'] / t['ours']:.2f}")
            ratios.append(f"{t['ours'] / t['torch']:.2f}")
            parts.append(f"{mode} {' / '.join(f'{t[k]:.3f}' for k in models)} (ratios {' / '.join(ratios)})")
        print(f"{spec} m={copies} D={D} h{heads} ff{ff} B{B} T{T}: {'; '.join(parts)}", flush=True)
    if sl is None:
        print(f"symm_learning not timed: {why}")


if __name__ == "__main__":
    main()

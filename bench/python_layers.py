"""Python-side timings, in one process: symm.nn.eTransformerEncoderLayer vs symm_learning's
eTransformerEncoderLayer vs torch.nn.TransformerEncoderLayer (batch-first) on the CPU configs of
`symm bench`, eval forward and training step (zero_grad, forward, mean square, backward), medians of
interleaved repetitions; and the binding's own overhead: the same layer called from Python vs timed inside C++
(symm._C._time_layer_ms), alternating call by call.

    python bench/python_layers.py [--quick] [--threads N]

The process sets glibc's malloc as `symm bench` does (mmap threshold 32 MiB, trim threshold 128 MiB).
"""
import argparse
import ctypes
import statistics
import time

import torch

import symm

CONFIGS = [("C2", 32, 4, 32, 32), ("C8", 16, 4, 32, 32), ("D8", 8, 4, 32, 32)]  # group, copies, heads, B, T


def configure_allocator():
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    ok = libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(M_TRIM_THRESHOLD, 128 << 20)
    return "glibc mallopt mmap_threshold=33554432 trim_threshold=134217728" if ok else "glibc default"


def escnn_group(spec):
    import escnn.group as eg
    return eg.cyclic_group(int(spec[1:])) if spec[0] == "C" else eg.dihedral_group(int(spec[1:]))


def step(model, x):
    model.zero_grad()
    model(x).square().mean().backward()


def interleaved(fns, warmup, reps):
    for _ in range(warmup):
        for f in fns:
            f()
    times = [[] for _ in fns]
    for r in range(reps):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for k in order:
            t0 = time.perf_counter()
            fns[k]()
            times[k].append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def overhead(from_python, in_cpp, warmup, reps):
    """Median wall time of the call from Python over the median time the C++ side measures for the same work,
    alternating the two call by call."""
    for _ in range(warmup):
        from_python(), in_cpp()
    py, cpp = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        from_python()
        py.append((time.perf_counter() - t0) * 1e3)
        cpp.append(in_cpp())
    return statistics.median(py) / statistics.median(cpp)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    allocator = configure_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    warmup, reps = (1, 5) if args.quick else (3, 21)
    try:
        import symm_learning.nn as sl
        from symm_learning.representation_theory import direct_sum
    except ImportError as e:  # still time ours against torch's
        sl, why = None, str(e)
    print(f"# torch {torch.__version__} threads={torch.get_num_threads()} allocator=\"{allocator}\"; medians in ms")
    print("| config | eval ours / symm_learning / torch | train ours / symm_learning / torch | "
          "binding overhead eval / train |")
    print("|---|---|---|---|")
    for spec, copies, heads, B, T in CONFIGS:
        torch.manual_seed(0)
        rep = symm.Representation.regular(symm.group(spec)).copies(copies)
        D = rep.size
        ours = symm.nn.eTransformerEncoderLayer(rep, symm.nn.eMultiheadAttention(rep, heads), dim_feedforward=4 * D,
                                                dropout=0.0)
        ff = ours._cpp.hidden_size
        torch_layer = torch.nn.TransformerEncoderLayer(D, heads, ff, dropout=0.0, activation="gelu", batch_first=True)
        models = [ours, torch_layer]
        if sl is not None:
            erep = direct_sum([escnn_group(spec).regular_representation] * copies)
            models.insert(1, sl.eTransformerEncoderLayer(erep, sl.eMultiheadAttention(erep, heads), dim_feedforward=ff,
                                                         dropout=0.0))
        x = torch.randn(B, T, D)

        for m in models:
            m.eval()
        with torch.no_grad():
            ev = interleaved([lambda m=m: m(x) for m in models], warmup, reps)
            over_eval = overhead(lambda: ours(x), lambda: symm._C._time_layer_ms(ours._cpp, x, False), warmup, reps)
        for m in models:
            m.train()
        tr = interleaved([lambda m=m: step(m, x) for m in models], warmup, reps)
        over_train = overhead(lambda: step(ours, x), lambda: symm._C._time_layer_ms(ours._cpp, x, True), warmup, reps)
        fmt = lambda v: " / ".join(f"{t:.2f}" for t in v) if sl is not None else f"{v[0]:.2f} / n.a. / {v[1]:.2f}"
        print(f"| {spec} m={copies} (D={D}) h{heads} ff{ff} B{B} T{T} | {fmt(ev)} | {fmt(tr)} | "
              f"{over_eval:.3f} / {over_train:.3f} |", flush=True)
    # The fixed cost of one call from Python, on a layer so small that the work itself is negligible.
    rep = symm.Representation.regular(symm.group("C2")).copies(2)
    tiny = symm.nn.eTransformerEncoderLayer(rep, symm.nn.eMultiheadAttention(rep, 1), dim_feedforward=4, dropout=0.0).eval()
    x = torch.randn(1, 1, rep.size)
    with torch.no_grad():
        ratio = overhead(lambda: tiny(x), lambda: symm._C._time_layer_ms(tiny._cpp, x, False), 100, 2000)
        cpp = statistics.median([symm._C._time_layer_ms(tiny._cpp, x, False) for _ in range(2000)])
    print(f"per-call overhead (D=4, one token, eval): {(ratio - 1) * cpp * 1e3:.1f} us")
    if sl is None:
        print(f"symm_learning not timed: {why}")


if __name__ == "__main__":
    main()

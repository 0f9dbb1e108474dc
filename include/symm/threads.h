#pragma once
// The intra-op threads of a process. torch::set_num_threads sizes LibTorch's own pool (and MKL's), but a
// LibTorch that calls OpenBLAS's pthread build (Debian's) leaves OpenBLAS's pool at the machine's cores:
// `--threads 1` then still ran every GEMM on all cores, and torch's few large GEMMs gained more from it
// than a layer's many small products. No torch here: any program may call it.
#include <string>

namespace symm {

/// Sets LibTorch's intra-op threads and, when the process runs OpenBLAS, OpenBLAS's threads to n (n >= 1),
/// and returns thread_setting().
std::string set_num_threads(int n);

/// One-line description of the threads GEMMs and elementwise ops run on and how their idle workers wait,
/// e.g. "torch=2 openblas=2 omp_wait=PASSIVE openblas_timeout=20", or "torch=2 omp_wait=default" when no
/// OpenBLAS is loaded.
std::string thread_setting();

/// Bounds how long idle pool workers spin: OMP_WAIT_POLICY=PASSIVE for LibTorch's OpenMP pool, and
/// OPENBLAS_THREAD_TIMEOUT=20 for OpenBLAS's (its workers yield for 2^20 cycles, about 0.3 ms, then sleep,
/// where OpenBLAS's default is 2^28), each unless the environment already sets it. Two pools spinning
/// against each other for the same cores slowed both layers on a 2-core machine (bench/RESULTS.md). Both runtimes read these only when they load, so when one was missing this sets it
/// and starts the program again with the same arguments (execv of /proc/self/exe): call it first in main,
/// before any thread or state exists. Returns when nothing was missing, or when the restart failed.
void restart_with_sleeping_idle_threads();

}  // namespace symm

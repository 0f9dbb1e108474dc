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

/// One-line description of the threads GEMMs and elementwise ops run on, e.g. "torch=1 openblas=1", or
/// "torch=2" when no OpenBLAS is loaded.
std::string thread_setting();

}  // namespace symm

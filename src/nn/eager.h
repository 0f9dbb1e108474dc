#pragma once
// What the hand kernels of the functional core share (functional.cpp, functional_batch_norm.cpp).
#include <torch/torch.h>

namespace symm::nn::detail {

/// Whether a hand kernel (a C++ torch::autograd::Function reading raw data) may run: plain eager mode. Not
/// under a functorch transform (which refuses C++ autograd Functions), not on fake, meta or other Python
/// tensors or under a Python dispatch mode (no data, or a trace that would record the kernel's empty output,
/// not the loop), not while the JIT traces.
bool plain_eager(const torch::Tensor& t);

}  // namespace symm::nn::detail

// Code built for baseline x86-64 (SSE2) gets an AVX2 clone chosen at load time, as LibTorch's own kernels do.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SYMM_AVX2_CLONE __attribute__((target_clones("avx2", "default")))
#else
#define SYMM_AVX2_CLONE
#endif

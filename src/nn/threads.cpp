#include "symm/threads.h"

#include <stdexcept>

#include <ATen/Parallel.h>
#include <dlfcn.h>

namespace symm {

namespace {

// Resolved at run time: a LibTorch linked to MKL, or to a BLAS without its own pool, has no such symbol.
using SetThreads = void (*)(int);
using GetThreads = int (*)();

SetThreads openblas_set() { return reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")); }
GetThreads openblas_get() { return reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads")); }

}  // namespace

std::string set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("set_num_threads: expected at least 1 thread, got " + std::to_string(n));
  at::set_num_threads(n);
  if (const auto set = openblas_set()) set(n);
  return thread_setting();
}

std::string thread_setting() {
  std::string s = "torch=" + std::to_string(at::get_num_threads());
  if (const auto get = openblas_get()) s += " openblas=" + std::to_string(get());
  return s;
}

}  // namespace symm

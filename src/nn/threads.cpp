#include "symm/threads.h"

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <utility>
#include <vector>

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <unistd.h>

namespace symm {

namespace {

// Resolved at run time: a LibTorch linked to MKL, or to a BLAS without its own pool, has no such symbol.
using SetThreads = void (*)(int);
using GetThreads = int (*)();

SetThreads openblas_set() { return reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")); }
GetThreads openblas_get() { return reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads")); }
// The OPENBLAS_THREAD_TIMEOUT OpenBLAS read when it loaded; 0 when unset (its default, 2^28 cycles of spinning).
GetThreads openblas_timeout() { return reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_thread_timeout")); }

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
  const char* wait = std::getenv("OMP_WAIT_POLICY");
  s += std::string(" omp_wait=") + (wait != nullptr ? wait : "default");
  if (const auto timeout = openblas_timeout()) {
    const int t = timeout();
    s += " openblas_timeout=" + (t > 0 ? std::to_string(t) : std::string("default"));
  }
  return s;
}

void restart_with_sleeping_idle_threads() {
  bool missing = false;
  for (const auto& [name, value] : {std::pair{"OMP_WAIT_POLICY", "PASSIVE"}, std::pair{"OPENBLAS_THREAD_TIMEOUT", "20"}}) {
    if (std::getenv(name) != nullptr) continue;
    setenv(name, value, 1);
    missing = true;
  }
  if (!missing) return;
  // The same arguments, from the kernel's copy of them.
  std::ifstream file("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  for (std::string arg; std::getline(file, arg, '\0');) args.push_back(arg);
  if (args.empty()) return;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv("/proc/self/exe", argv.data());  // returns only on failure: then run as we are
}

}  // namespace symm

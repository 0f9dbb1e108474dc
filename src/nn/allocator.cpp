#include "symm/allocator.h"

#include <cstdlib>
#include <cstring>
#include <mutex>

#include <dlfcn.h>
#include <malloc.h>

namespace symm {

namespace {

constexpr int kMmapThreshold = 32 << 20;   // glibc refuses more than HEAP_MAX_SIZE / 2 = 32 MiB on 64-bit
constexpr int kTrimThreshold = 128 << 20;

std::mutex mutex;
std::string configured;  // description of what configure_allocator set, empty before

/// The malloc this process resolved: another allocator exports its own entry points.
const char* loaded_allocator() {
  if (dlsym(RTLD_DEFAULT, "mallctl") != nullptr) return "jemalloc";
  if (dlsym(RTLD_DEFAULT, "MallocExtension_GetNumericProperty") != nullptr) return "tcmalloc";
  return nullptr;
}

const char* glibc_tunables() {
  const char* t = std::getenv("GLIBC_TUNABLES");
  return t != nullptr && std::strstr(t, "glibc.malloc.") != nullptr ? t : nullptr;
}

std::string describe_unlocked() {
  if (const char* other = loaded_allocator()) return other;
  if (!configured.empty()) return configured;
  if (const char* t = glibc_tunables()) return std::string("glibc GLIBC_TUNABLES=") + t;
  return "glibc default";
}

}  // namespace

std::string configure_allocator() {
  std::lock_guard<std::mutex> lock(mutex);
  if (configured.empty() && loaded_allocator() == nullptr && glibc_tunables() == nullptr) {
    // Setting either threshold also stops glibc from moving the mmap threshold by itself.
    const bool ok = mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1 && mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1;
    configured = ok ? "glibc mallopt mmap_threshold=" + std::to_string(kMmapThreshold) +
                          " trim_threshold=" + std::to_string(kTrimThreshold)
                    : "glibc default (mallopt refused)";
  }
  return describe_unlocked();
}

std::string allocator_setting() {
  std::lock_guard<std::mutex> lock(mutex);
  return describe_unlocked();
}

}  // namespace symm

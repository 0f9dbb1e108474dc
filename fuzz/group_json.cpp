// JSON group files: a group or std::invalid_argument.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "fuzz_limits.h"
#include "symm/group/named.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto g = symm::group::group_from_json_text(std::string(reinterpret_cast<const char*>(data), size), symm::fuzz::kMaxOrder);
    if (g->order() < 1 || g->order() > symm::fuzz::kMaxOrder || g->irreps().empty()) __builtin_trap();
  } catch (const std::invalid_argument&) {
  }
  return 0;
}

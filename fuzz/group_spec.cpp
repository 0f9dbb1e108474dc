// Group spec strings ("D8", "C2xI", ...): parse_group_spec, under the library's own limits, accepts a spec
// with its factors and order, or throws std::invalid_argument. Each distinct accepted spec of a small order
// is also built once, and the group built must have the order the parser announced.
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>

#include "fuzz_limits.h"
#include "symm/group/named.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::map<std::string, long> built;  // canonical spec → order: few, as their order is capped
  try {
    const auto spec = symm::group::parse_group_spec(std::string(reinterpret_cast<const char*>(data), size));
    if (spec.order > symm::fuzz::kMaxBuiltOrder) return 0;
    std::string canonical;
    for (const auto& f : spec.factors) canonical += (canonical.empty() ? "" : "x") + f;
    if (built.count(canonical)) return 0;
    const auto g = symm::group::parse_group(canonical, symm::fuzz::kMaxOrder);
    if (g->order() != spec.order || g->irreps().empty()) __builtin_trap();
    built[canonical] = g->order();
  } catch (const std::invalid_argument&) {
  }
  return 0;
}

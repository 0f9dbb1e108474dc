// Representation spec strings ("4*regular + 2*trivial + irrep(3)"): the first byte picks a group, the rest
// is the spec. A representation of the announced size, or std::invalid_argument.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "symm/group/named.h"
#include "symm/group/representation.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace symm::group;
  static const std::vector<GroupPtr> groups{make_group("C1"), make_group("C5"), make_group("D4"),
                                            make_group("Q8"), make_group("A4"), make_group("I")};
  if (size == 0) return 0;
  const auto& g = groups[data[0] % groups.size()];
  try {
    const auto rep = Representation::parse(g, std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
    long dims = 0;
    for (int k : rep.irreps()) dims += g->irrep(k).dim;
    if (rep.size() < 1 || rep.size() > kMaxRepresentationSize || dims != rep.size()) __builtin_trap();
  } catch (const std::invalid_argument&) {
  }
  return 0;
}

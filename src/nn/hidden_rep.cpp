#include "symm/nn/hidden_rep.h"

#include <algorithm>

#include <c10/util/Exception.h>

#include "symm/group/group.h"

namespace symm::nn {

Representation hidden_regular(const std::string& module, const symm::group::GroupPtr& g,
                              const std::optional<Representation>& hidden_rep) {
  auto regular = Representation::regular(g);
  if (!hidden_rep) return regular;
  const auto& h = *hidden_rep;
  TORCH_CHECK(h.group() == g && symm::group::same_representation(h, regular), module,
              ": hidden_rep must be the regular representation of ", g->name(),
              " in the permutation basis (one copy, in any irrep decomposition), got ", h.name().empty() ? "a representation" : h.name(),
              " of size ", h.size(), " of ", h.group() ? h.group()->name() : std::string("no group"));
  return h;
}

Representation regular_copies(const Representation& regular, int64_t units) {
  const int64_t n = regular.size();
  return regular.copies(static_cast<int>(std::max<int64_t>(1, (units + n - 1) / n)));
}

bool is_our_decomposition(const Representation& rep) {
  const auto& g = rep.group();
  if (!g || rep.size() % g->order()) return false;
  return symm::group::same_decomposition(rep, Representation::regular(g).copies(rep.size() / g->order()));
}

std::optional<Representation> unless_ours(const Representation& rep) {
  if (is_our_decomposition(rep)) return std::nullopt;
  return rep;
}

}  // namespace symm::nn

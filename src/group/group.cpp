#include "symm/group/group.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <queue>
#include <sstream>
#include <stdexcept>

#include "irreps_internal.h"

namespace symm::group {

namespace {

// Entries rounded to a fine grid identify a matrix; generators are orthogonal so entries are bounded.
std::vector<long long> key_of(const Eigen::MatrixXd& m) {
  std::vector<long long> key(m.size());
  for (Eigen::Index i = 0; i < m.size(); ++i) key[i] = std::llround(m.data()[i] * 1e7);
  return key;
}

}  // namespace

const char* to_string(IrrepType t) {
  switch (t) {
    case IrrepType::R: return "R";
    case IrrepType::C: return "C";
    case IrrepType::H: return "H";
  }
  return "?";
}

GroupPtr Group::from_generators(std::string name, const std::vector<Eigen::MatrixXd>& generators,
                                const std::vector<IrrepImages>& irrep_images, int max_order) {
  // Groups without closed-form irreps get them numerically, which bounds their order further.
  const int limit = irrep_images.empty() ? kMaxNumericalOrder : kMaxOrder;
  const char* limit_name = irrep_images.empty() ? " (kMaxNumericalOrder)" : " (kMaxOrder)";
  if (max_order >= limit) max_order = limit;
  else limit_name = "";
  if (generators.empty()) throw std::invalid_argument("group '" + name + "': no generators given");
  if (generators.size() > static_cast<size_t>(kMaxGenerators)) {
    throw std::invalid_argument("group '" + name + "': " + std::to_string(generators.size()) +
                                " generators given, the limit is " + std::to_string(kMaxGenerators) + " (kMaxGenerators)");
  }
  const auto dim = generators.front().rows();
  if (dim > kMaxGeneratorSize) {
    throw std::invalid_argument("group '" + name + "': generators of size " + std::to_string(dim) + "x" +
                                std::to_string(dim) + " exceed the limit of " + std::to_string(kMaxGeneratorSize) +
                                " (kMaxGeneratorSize)");
  }
  for (size_t s = 0; s < generators.size(); ++s) {
    const auto& g = generators[s];
    if (g.rows() != g.cols() || g.rows() != dim || dim == 0) {
      std::ostringstream msg;
      msg << "group '" << name << "': generator " << s << " is " << g.rows() << "x" << g.cols()
          << ", expected a square " << dim << "x" << dim << " matrix";
      throw std::invalid_argument(msg.str());
    }
    if (!g.allFinite()) throw std::invalid_argument("group '" + name + "': generator " + std::to_string(s) + " has a non-finite entry");
    const double err = (g.transpose() * g - Eigen::MatrixXd::Identity(dim, dim)).cwiseAbs().maxCoeff();
    if (err > 1e-8) {
      std::ostringstream msg;
      msg << "group '" << name << "': generator " << s << " is not orthogonal (max |GᵀG - I| = " << err << ")";
      throw std::invalid_argument(msg.str());
    }
  }
  // Breadth-first closure under right multiplication by the generators.
  std::vector<Eigen::MatrixXd> elements{Eigen::MatrixXd::Identity(dim, dim)};
  std::map<std::vector<long long>, int> index{{key_of(elements[0]), 0}};
  std::vector<int> rmul;  // rmul[i * ngen + s] = i · s
  const int ngen = static_cast<int>(generators.size());
  for (size_t i = 0; i < elements.size(); ++i) {
    for (int s = 0; s < ngen; ++s) {
      Eigen::MatrixXd prod = elements[i] * generators[s];
      auto [it, inserted] = index.emplace(key_of(prod), static_cast<int>(elements.size()));
      if (inserted) {
        if (static_cast<int>(elements.size()) >= max_order) {
          throw std::invalid_argument("group '" + name + "': the generators generate more than " +
                                      std::to_string(max_order) + " elements, the limit" + limit_name);
        }
        elements.push_back(std::move(prod));
      }
      rmul.push_back(it->second);
    }
  }
  const int n = static_cast<int>(elements.size());
  // Multiplication table from right multiplications: h = parent(h) · s  ⇒  g·h = (g·parent(h)) · s.
  std::vector<int> parent(n, -1), parent_gen(n, -1);
  for (int i = 0; i < n; ++i)
    for (int s = 0; s < ngen; ++s) {
      const int j = rmul[i * ngen + s];
      if (j != 0 && parent[j] < 0 && j > i) { parent[j] = i; parent_gen[j] = s; }
    }
  std::vector<int> table(static_cast<size_t>(n) * n);
  for (int g = 0; g < n; ++g) {
    table[static_cast<size_t>(g) * n] = g;
    for (int h = 1; h < n; ++h)
      table[static_cast<size_t>(g) * n + h] = rmul[table[static_cast<size_t>(g) * n + parent[h]] * ngen + parent_gen[h]];
  }
  std::vector<int> gens(ngen);
  for (int s = 0; s < ngen; ++s) gens[s] = rmul[s];
  std::shared_ptr<Group> group(new Group(std::move(name), n, std::move(table), std::move(gens)));
  if (irrep_images.empty()) {
    group->set_irreps(numerical_irreps(*group));
  } else {
    std::vector<Irrep> irreps;
    for (const auto& images : irrep_images) irreps.push_back(irrep_from_matrices(*group, group->extend(images)));
    group->set_irreps(std::move(irreps));
  }
  return group;
}

GroupPtr Group::from_permutations(std::string name, const std::vector<std::vector<int>>& permutations, int max_order) {
  if (permutations.empty()) throw std::invalid_argument("group '" + name + "': no permutations given");
  const size_t k = permutations.front().size();
  if (k > static_cast<size_t>(kMaxGeneratorSize)) {
    throw std::invalid_argument("group '" + name + "': permutations of " + std::to_string(k) + " points exceed the limit of " +
                                std::to_string(kMaxGeneratorSize) + " (kMaxGeneratorSize)");
  }
  std::vector<Eigen::MatrixXd> mats;
  for (size_t s = 0; s < permutations.size(); ++s) {
    const auto& p = permutations[s];
    std::vector<bool> seen(k, false);
    bool ok = p.size() == k && k > 0;
    for (size_t i = 0; ok && i < p.size(); ++i) {
      ok = p[i] >= 0 && static_cast<size_t>(p[i]) < k && !seen[p[i]];
      if (ok) seen[p[i]] = true;
    }
    if (!ok) {
      throw std::invalid_argument("group '" + name + "': permutation " + std::to_string(s) +
                                  " is not a permutation of 0.." + std::to_string(static_cast<long>(k) - 1));
    }
    Eigen::MatrixXd m = Eigen::MatrixXd::Zero(k, k);
    for (size_t i = 0; i < k; ++i) m(p[i], i) = 1.0;  // e_i ↦ e_{p(i)}
    mats.push_back(std::move(m));
  }
  return from_generators(std::move(name), mats, {}, max_order);
}

GroupPtr Group::direct_product(const GroupPtr& a, const GroupPtr& b) {
  const int na = a->order(), nb = b->order();
  if (static_cast<long>(na) * nb > kMaxNumericalOrder) {
    throw std::invalid_argument("group '" + a->name() + "x" + b->name() + "': order " +
                                std::to_string(static_cast<long>(na) * nb) + " exceeds " +
                                std::to_string(kMaxNumericalOrder) + ", the limit for numerically computed irreps (kMaxNumericalOrder)");
  }
  const int n = na * nb;
  std::vector<int> table(static_cast<size_t>(n) * n);
  for (int g1 = 0; g1 < na; ++g1)
    for (int h1 = 0; h1 < nb; ++h1)
      for (int g2 = 0; g2 < na; ++g2)
        for (int h2 = 0; h2 < nb; ++h2)
          table[static_cast<size_t>(g1 * nb + h1) * n + g2 * nb + h2] = a->mul(g1, g2) * nb + b->mul(h1, h2);
  std::vector<int> gens;
  for (int s : a->generators()) gens.push_back(s * nb);
  for (int s : b->generators()) gens.push_back(s);
  std::shared_ptr<Group> group(new Group(a->name() + "x" + b->name(), n, std::move(table), std::move(gens)));
  group->set_irreps(numerical_irreps(*group));
  return group;
}

Group::Group(std::string name, int n, std::vector<int> table, std::vector<int> generators)
    : name_(std::move(name)), n_(n), table_(std::move(table)), generators_(std::move(generators)) {
  inverse_.assign(n_, -1);
  for (int a = 0; a < n_; ++a)
    for (int b = 0; b < n_; ++b)
      if (mul(a, b) == 0) { inverse_[a] = b; break; }
  build_tree_and_classes();
}

void Group::build_tree_and_classes() {
  parent_.assign(n_, -1);
  parent_gen_.assign(n_, -1);
  std::vector<int> order{0};
  std::vector<bool> seen(n_, false);
  seen[0] = true;
  for (size_t i = 0; i < order.size(); ++i)
    for (size_t s = 0; s < generators_.size(); ++s) {
      const int j = mul(order[i], generators_[s]);
      if (!seen[j]) { seen[j] = true; parent_[j] = order[i]; parent_gen_[j] = static_cast<int>(s); order.push_back(j); }
    }
  if (static_cast<int>(order.size()) != n_) throw std::logic_error("group '" + name_ + "': generators do not generate the table");
  tree_order_ = std::move(order);
  std::vector<int> cls(n_, -1);
  for (int g = 0; g < n_; ++g) {
    if (cls[g] >= 0) continue;
    std::vector<int> c;
    for (int h = 0; h < n_; ++h) {
      const int x = mul(mul(h, g), inverse_[h]);
      if (cls[x] < 0) { cls[x] = static_cast<int>(classes_.size()); c.push_back(x); }
    }
    std::sort(c.begin(), c.end());
    classes_.push_back(std::move(c));
  }
}

std::vector<Eigen::MatrixXd> Group::extend(const std::vector<Eigen::MatrixXd>& images) const {
  if (images.size() != generators_.size()) {
    throw std::invalid_argument("group '" + name_ + "': " + std::to_string(images.size()) +
                                " generator images given, expected " + std::to_string(generators_.size()));
  }
  const auto d = images.empty() ? 1 : images.front().rows();
  std::vector<Eigen::MatrixXd> out(n_);
  out[0] = Eigen::MatrixXd::Identity(d, d);
  for (size_t i = 1; i < tree_order_.size(); ++i) {
    const int g = tree_order_[i];
    out[g] = out[parent_[g]] * images[parent_gen_[g]];
  }
  return out;
}

void Group::set_irreps(std::vector<Irrep> irreps) {
  irreps_ = sort_and_validate_irreps(*this, std::move(irreps));
}

}  // namespace symm::group

#include "symm/group/named.h"

#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <stdexcept>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

namespace symm::group {

namespace {

constexpr double kPi = 3.14159265358979323846;

Eigen::MatrixXd rotation(double angle) {
  Eigen::Matrix2d r;
  r << std::cos(angle), -std::sin(angle), std::sin(angle), std::cos(angle);
  return r;
}

Eigen::MatrixXd scalar(double v) { return Eigen::MatrixXd::Constant(1, 1, v); }

std::vector<int> cycle(int n, const std::vector<int>& points) {
  std::vector<int> p(n);
  for (int i = 0; i < n; ++i) p[i] = i;
  for (size_t i = 0; i < points.size(); ++i) p[points[i]] = points[(i + 1) % points.size()];
  return p;
}

void require_positive(const std::string& what, int n) {
  if (n < 1) throw std::invalid_argument("group " + what + std::to_string(n) + ": the index must be at least 1");
}

bool is_file(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

int parse_index(const std::string& spec, size_t prefix) {
  const std::string digits = spec.substr(prefix);
  if (digits.empty() || digits.size() > 6 || digits.find_first_not_of("0123456789") != std::string::npos) {
    throw std::invalid_argument("unknown group '" + spec + "': expected a number after '" + spec.substr(0, prefix) + "'");
  }
  return std::stoi(digits);
}

GroupPtr make_factor(const std::string& spec) {
  if (spec == "K4") return klein_group();
  if (spec == "Q8") return quaternion_group();
  if (spec == "T") return tetrahedral_group();
  if (spec == "O") return octahedral_group();
  if (spec == "I") return icosahedral_group();
  if (!spec.empty()) {
    switch (spec[0]) {
      case 'C': return cyclic_group(parse_index(spec, 1));
      case 'D': return dihedral_group(parse_index(spec, 1));
      case 'S': return symmetric_group(parse_index(spec, 1));
      case 'A': return alternating_group(parse_index(spec, 1));
      default: break;
    }
  }
  throw std::invalid_argument("unknown group '" + spec +
                              "': expected C<n>, D<n>, K4, S<n>, A<n>, Q8, T, O, I, a product GxH or a JSON file");
}

}  // namespace

GroupPtr cyclic_group(int n) {
  require_positive("C", n);
  std::vector<IrrepImages> irreps{{scalar(1)}};
  if (n % 2 == 0) irreps.push_back({scalar(-1)});
  for (int k = 1; 2 * k < n; ++k) irreps.push_back({rotation(2 * kPi * k / n)});
  return Group::from_generators("C" + std::to_string(n), {rotation(2 * kPi / n)}, irreps);
}

GroupPtr dihedral_group(int n) {
  require_positive("D", n);
  const Eigen::MatrixXd flip = Eigen::Vector2d(1, -1).asDiagonal();
  std::vector<IrrepImages> irreps{{scalar(1), scalar(1)}, {scalar(1), scalar(-1)}};
  if (n % 2 == 0) {
    irreps.push_back({scalar(-1), scalar(1)});
    irreps.push_back({scalar(-1), scalar(-1)});
  }
  for (int k = 1; 2 * k < n; ++k) irreps.push_back({rotation(2 * kPi * k / n), flip});
  return Group::from_generators("D" + std::to_string(n), {rotation(2 * kPi / n), flip}, irreps);
}

GroupPtr klein_group() {
  return Group::from_generators("K4", {Eigen::Vector2d(-1, 1).asDiagonal(), Eigen::Vector2d(1, -1).asDiagonal()});
}

GroupPtr symmetric_group(int n) {
  require_positive("S", n);
  if (n > 6) throw std::invalid_argument("group S" + std::to_string(n) + ": too large, at most S6 is supported");
  if (n == 1) return Group::from_permutations("S1", {{0}});
  std::vector<int> all(n);
  for (int i = 0; i < n; ++i) all[i] = i;
  return Group::from_permutations("S" + std::to_string(n), {cycle(n, {0, 1}), cycle(n, all)});
}

GroupPtr alternating_group(int n) {
  require_positive("A", n);
  if (n > 6) throw std::invalid_argument("group A" + std::to_string(n) + ": too large, at most A6 is supported");
  std::vector<std::vector<int>> gens;
  for (int k = 2; k < n; ++k) gens.push_back(cycle(n, {0, 1, k}));
  if (gens.empty()) gens.push_back(cycle(n, {}));
  return Group::from_permutations("A" + std::to_string(n), gens);
}

GroupPtr quaternion_group() {
  // Left multiplication by the units i and j on (1, i, j, k).
  Eigen::Matrix4d qi, qj;
  qi << 0, -1, 0, 0, 1, 0, 0, 0, 0, 0, 0, -1, 0, 0, 1, 0;
  qj << 0, 0, -1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, -1, 0, 0;
  return Group::from_generators("Q8", {qi, qj});
}

GroupPtr tetrahedral_group() {
  Eigen::Matrix3d three, two;
  three << 0, 0, 1, 1, 0, 0, 0, 1, 0;  // 3-fold about (1,1,1)
  two = Eigen::Vector3d(1, -1, -1).asDiagonal();
  return Group::from_generators("T", {three, two});
}

GroupPtr octahedral_group() {
  Eigen::Matrix3d three, four;
  three << 0, 0, 1, 1, 0, 0, 0, 1, 0;
  four << 0, -1, 0, 1, 0, 0, 0, 0, 1;  // 4-fold about z
  return Group::from_generators("O", {three, four});
}

GroupPtr icosahedral_group() {
  // The rotation group of the icosahedron is A5: the even permutations of its five inscribed cubes.
  return Group::from_permutations("I", {cycle(5, {0, 1, 2, 3, 4}), cycle(5, {0, 1, 2})});
}

GroupPtr group_from_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("group file '" + path + "': cannot be read");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument("group file '" + path + "': malformed JSON (" + e.what() + ")");
  }
  try {
    if (!j.is_object()) throw std::invalid_argument("expected a JSON object");
    const std::string name = j.value("name", path);
    if (j.contains("permutations")) return Group::from_permutations(name, j.at("permutations").get<std::vector<std::vector<int>>>());
    if (!j.contains("generators")) throw std::invalid_argument("expected a \"generators\" or \"permutations\" field");
    std::vector<Eigen::MatrixXd> gens;
    for (const auto& g : j.at("generators")) {
      const auto rows = g.get<std::vector<std::vector<double>>>();
      Eigen::MatrixXd m(rows.size(), rows.empty() ? 0 : rows.front().size());
      for (size_t r = 0; r < rows.size(); ++r) {
        if (rows[r].size() != static_cast<size_t>(m.cols()))
          throw std::invalid_argument("generator " + std::to_string(gens.size()) + " has rows of different lengths");
        for (size_t c = 0; c < rows[r].size(); ++c) m(r, c) = rows[r][c];
      }
      gens.push_back(std::move(m));
    }
    return Group::from_generators(name, gens);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument("group file '" + path + "': " + e.what());
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    if (what.rfind("group", 0) == 0) throw;
    throw std::invalid_argument("group file '" + path + "': " + what);
  }
}

GroupPtr make_group(const std::string& spec) {
  static std::mutex mutex;
  static std::map<std::string, GroupPtr> cache;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = cache.find(spec); it != cache.end()) return it->second;
  }
  GroupPtr result;
  if (is_file(spec)) {
    result = group_from_json(spec);
  } else {
    if (spec.empty()) throw std::invalid_argument("empty group spec");
    size_t start = 0;
    while (true) {
      const size_t x = spec.find('x', start);
      GroupPtr factor = make_factor(spec.substr(start, x == std::string::npos ? std::string::npos : x - start));
      result = result ? Group::direct_product(result, factor) : factor;
      if (x == std::string::npos) break;
      start = x + 1;
    }
  }
  std::lock_guard<std::mutex> lock(mutex);
  cache.emplace(spec, result);
  return result;
}

}  // namespace symm::group

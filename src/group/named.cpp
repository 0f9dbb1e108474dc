#include "symm/group/named.h"

#include <climits>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
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

// A factor of a spec, checked and with its order known before anything is built.
struct Factor {
  std::string spec;
  long order;
};

Factor parse_factor(const std::string& spec) {
  static const std::map<std::string, long> fixed{{"K4", 4}, {"Q8", 8}, {"T", 12}, {"O", 24}, {"I", 60}};
  if (auto it = fixed.find(spec); it != fixed.end()) return {spec, it->second};
  if (!spec.empty() && std::string("CDSA").find(spec[0]) != std::string::npos) {
    const long n = parse_index(spec, 1);
    require_positive(spec.substr(0, 1), static_cast<int>(n));
    const std::string canonical = spec.substr(0, 1) + std::to_string(n);
    if (spec[0] == 'C') return {canonical, n};
    if (spec[0] == 'D') return {canonical, 2 * n};
    if (n > 6) throw std::invalid_argument("group " + spec + ": too large, at most " + spec.substr(0, 1) + "6 is supported");
    long factorial = 1;
    for (long k = 2; k <= n; ++k) factorial *= k;
    return {canonical, spec[0] == 'S' || n < 2 ? factorial : factorial / 2};
  }
  throw std::invalid_argument("unknown group '" + spec +
                              "': expected C<n>, D<n>, K4, S<n>, A<n>, Q8, T, O, I, a product GxH or a JSON file");
}

GroupPtr make_factor(const std::string& spec) {
  if (spec == "K4") return klein_group();
  if (spec == "Q8") return quaternion_group();
  if (spec == "T") return tetrahedral_group();
  if (spec == "O") return octahedral_group();
  if (spec == "I") return icosahedral_group();
  const int n = parse_index(spec, 1);
  switch (spec[0]) {
    case 'C': return cyclic_group(n);
    case 'D': return dihedral_group(n);
    case 'S': return symmetric_group(n);
    default: return alternating_group(n);
  }
}

int integer(const nlohmann::json& j, const char* what) {
  if (!j.is_number_integer() || j.get<long long>() < INT_MIN || j.get<long long>() > INT_MAX) {
    throw std::invalid_argument(std::string("expected an integer ") + what + ", got " + j.dump());
  }
  return j.get<int>();
}

GroupPtr from_json(const std::string& text, const std::string& where, const std::string& default_name, int max_order) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(where + ": malformed JSON (" + e.what() + ")");
  }
  try {
    if (!j.is_object()) throw std::invalid_argument("expected a JSON object");
    if (j.contains("name") && !j["name"].is_string()) throw std::invalid_argument("expected \"name\" to be a string");
    const std::string name = j.value("name", default_name);
    const bool permutations = j.contains("permutations");
    if (!permutations && !j.contains("generators")) throw std::invalid_argument("expected a \"generators\" or \"permutations\" field");
    const auto& list = j.at(permutations ? "permutations" : "generators");
    if (!list.is_array()) throw std::invalid_argument(std::string("expected an array of ") + (permutations ? "permutations" : "generators"));
    if (list.size() > static_cast<size_t>(kMaxGenerators)) {
      throw std::invalid_argument(std::to_string(list.size()) + " generators given, the limit is " +
                                  std::to_string(kMaxGenerators) + " (kMaxGenerators)");
    }
    auto check_length = [](const nlohmann::json& a, const char* what) {
      if (!a.is_array()) throw std::invalid_argument(std::string("expected ") + what + " as an array, got " + a.type_name());
      if (a.size() > static_cast<size_t>(kMaxGeneratorSize)) {
        throw std::invalid_argument(std::string(what) + " of length " + std::to_string(a.size()) + " exceeds the limit of " +
                                    std::to_string(kMaxGeneratorSize) + " (kMaxGeneratorSize)");
      }
    };
    if (permutations) {
      std::vector<std::vector<int>> perms;
      for (const auto& p : list) {
        check_length(p, "a permutation");
        perms.emplace_back();
        for (const auto& v : p) perms.back().push_back(integer(v, "permutation entry"));
      }
      return Group::from_permutations(name, perms, max_order);
    }
    std::vector<Eigen::MatrixXd> gens;
    for (const auto& g : list) {
      check_length(g, "a generator matrix");
      Eigen::MatrixXd m(g.size(), g.empty() ? 0 : (g.front().is_array() ? g.front().size() : 0));
      for (size_t r = 0; r < g.size(); ++r) {
        check_length(g[r], "a matrix row");
        if (g[r].size() != static_cast<size_t>(m.cols()))
          throw std::invalid_argument("generator " + std::to_string(gens.size()) + " has rows of different lengths");
        for (size_t c = 0; c < g[r].size(); ++c) {
          if (!g[r][c].is_number()) throw std::invalid_argument("expected a number in generator " + std::to_string(gens.size()) + ", got " + g[r][c].dump());
          m(r, c) = g[r][c].get<double>();
        }
      }
      gens.push_back(std::move(m));
    }
    return Group::from_generators(name, gens, {}, max_order);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(where + ": " + e.what());
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    if (what.rfind("group", 0) == 0) throw;
    throw std::invalid_argument(where + ": " + what);
  }
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
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("group file '" + path + "': cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  return from_json(text.str(), "group file '" + path + "'", path, kMaxOrder);
}

GroupPtr group_from_json_text(const std::string& text, int max_order) {
  return from_json(text, "group JSON", "json", max_order);
}

GroupSpec parse_group_spec(const std::string& spec, int max_order) {
  max_order = std::min(max_order, kMaxOrder);
  if (spec.empty()) throw std::invalid_argument("empty group spec");
  GroupSpec out;
  for (size_t start = 0;;) {
    const size_t x = spec.find('x', start);
    const Factor f = parse_factor(spec.substr(start, x == std::string::npos ? std::string::npos : x - start));
    // Every factor of a product costs a numerical irrep computation of the product so far: trivial factors
    // would let a long spec repeat the most expensive one without bound. The others number at most 10.
    if (f.order == 1 && (start > 0 || x != std::string::npos)) {
      throw std::invalid_argument("group '" + spec + "': factor '" + f.spec +
                                  "' is the trivial group, which a product does not take (leave it out)");
    }
    out.factors.push_back(f.spec);
    out.order *= f.order;  // each factor is below 10^7, and the product is checked at every step
    // Products and every group but C<n> and D<n> get their irreps numerically.
    const bool closed_form = out.factors.size() == 1 && (spec[0] == 'C' || spec[0] == 'D');
    const long limit = std::min<long>(max_order, closed_form ? kMaxOrder : kMaxNumericalOrder);
    if (out.order > limit) {
      throw std::invalid_argument("group '" + spec + "': order " + (x == std::string::npos ? "" : "at least ") +
                                  std::to_string(out.order) + " exceeds the limit of " + std::to_string(limit) +
                                  (limit == kMaxOrder ? " (kMaxOrder)" : limit == kMaxNumericalOrder ? " (kMaxNumericalOrder)" : ""));
    }
    if (x == std::string::npos) return out;
    start = x + 1;
  }
}

GroupPtr parse_group(const std::string& spec, int max_order) {
  if (is_file(spec)) return group_from_json(spec);
  GroupPtr result;
  for (const auto& f : parse_group_spec(spec, max_order).factors) {
    GroupPtr factor = make_factor(f);
    result = result ? Group::direct_product(result, factor) : factor;
  }
  return result;
}

GroupPtr make_group(const std::string& spec) {
  static std::mutex mutex;
  static std::map<std::string, GroupPtr> cache;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = cache.find(spec); it != cache.end()) return it->second;
  }
  GroupPtr result = parse_group(spec);
  std::lock_guard<std::mutex> lock(mutex);
  cache.emplace(spec, result);
  return result;
}

}  // namespace symm::group

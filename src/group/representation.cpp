#include "symm/group/representation.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "symm/group/random.h"

namespace symm::group {

namespace {

double orthogonality_error(const Eigen::MatrixXd& m) {
  return (m.transpose() * m - Eigen::MatrixXd::Identity(m.cols(), m.cols())).cwiseAbs().maxCoeff();
}

// Adds to `copies` the isometric intertwiners ψ → ρ obtained from the candidates by Gram–Schmidt over
// End(ψ): Tᵢᵀ T is an endomorphism of ψ, not a scalar, and TᵀT of a symmetric intertwiner is a scalar.
template <typename Candidate>
void collect_copies(std::vector<Eigen::MatrixXd>& copies, int wanted, int max_tries, Candidate next) {
  for (int t = 0; t < max_tries && static_cast<int>(copies.size()) < wanted; ++t) {
    Eigen::MatrixXd c = next(t);
    const double scale = c.norm();
    if (scale < 1e-12) continue;
    for (int pass = 0; pass < 2; ++pass)
      for (const auto& u : copies) c -= u * (u.transpose() * c);
    const double s = (c.transpose() * c).trace() / static_cast<double>(c.cols());
    if (s < 1e-10 * scale * scale) continue;
    copies.push_back(c / std::sqrt(s));
  }
}

Eigen::MatrixXd block_diagonal(const std::vector<Eigen::MatrixXd>& blocks) {
  Eigen::Index r = 0, c = 0;
  for (const auto& b : blocks) { r += b.rows(); c += b.cols(); }
  Eigen::MatrixXd out = Eigen::MatrixXd::Zero(r, c);
  r = c = 0;
  for (const auto& b : blocks) {
    out.block(r, c, b.rows(), b.cols()) = b;
    r += b.rows();
    c += b.cols();
  }
  return out;
}

// FNV-1a over the entries of m on a 1e-6 grid (numerical noise, ~1e-12, stays inside a cell), continuing hash.
constexpr std::uint64_t kFnvOffset = 1469598103934665603ULL;
std::uint64_t mix_rounded(std::uint64_t hash, const Eigen::MatrixXd& m) {
  for (Eigen::Index i = 0; i < m.size(); ++i) {
    const long long v = std::llround(m.data()[i] * 1e6);
    for (int b = 0; b < 8; ++b) { hash ^= static_cast<unsigned char>(v >> (8 * b)); hash *= 1099511628211ULL; }
  }
  return hash;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

}  // namespace

Representation::Representation(GroupPtr group, std::vector<int> irreps, Eigen::MatrixXd q, std::string name)
    : Representation(Blocks{}, std::move(group), std::move(irreps), std::move(q), std::move(name)) {
  if (size() > 0 && orthogonality_error(q_) > 1e-8) {
    throw std::invalid_argument("Representation of " + group_->name() + ": change of basis is not orthogonal");
  }
}

Representation::Representation(Blocks, GroupPtr group, std::vector<int> irreps, Eigen::MatrixXd q, std::string name)
    : group_(std::move(group)), irreps_(std::move(irreps)), q_(std::move(q)), name_(std::move(name)) {
  if (!group_) throw std::invalid_argument("Representation: no group given");
  long size = 0;
  for (int k : irreps_) {
    if (k < 0 || k >= static_cast<int>(group_->irreps().size())) {
      throw std::invalid_argument("Representation of " + group_->name() + ": irrep index " + std::to_string(k) +
                                  " out of range 0.." + std::to_string(group_->irreps().size() - 1));
    }
    size += group_->irrep(k).dim;
  }
  check_size(group_, size, "Representation");
  if (q_.rows() != size || q_.cols() != size) {
    std::ostringstream msg;
    msg << "Representation of " << group_->name() << ": change of basis is " << q_.rows() << "x" << q_.cols()
        << ", expected " << size << "x" << size;
    throw std::invalid_argument(msg.str());
  }
  if (name_.empty()) {
    std::ostringstream n;
    n << group_->name() << ":[";
    for (size_t i = 0; i < irreps_.size(); ++i) n << (i ? "," : "") << irreps_[i];
    n << "]";
    name_ = n.str();
  }
}

void Representation::check_size(const GroupPtr& g, long size, const std::string& what) {
  if (size > kMaxRepresentationSize) {
    throw std::invalid_argument(what + " of " + g->name() + ": size " + std::to_string(size) + " exceeds the limit of " +
                                std::to_string(kMaxRepresentationSize) + " (kMaxRepresentationSize)");
  }
}

Representation Representation::trivial(GroupPtr g, int copies) {
  check_size(g, copies, "trivial representation");
  const std::string name = g->name() + ":" + (copies == 1 ? "" : std::to_string(copies) + "*") + "trivial";
  return Representation(g, std::vector<int>(copies, 0), Eigen::MatrixXd::Identity(copies, copies), name);
}

Representation Representation::irrep(GroupPtr g, int k) {
  const int d = g->irrep(k).dim;
  return Representation(g, {k}, Eigen::MatrixXd::Identity(d, d), g->name() + ":irrep(" + std::to_string(k) + ")");
}

Representation Representation::regular(GroupPtr g) {
  const int n = g->order();
  std::vector<int> irreps;
  std::vector<Eigen::MatrixXd> columns;
  for (int k = 0; k < static_cast<int>(g->irreps().size()); ++k) {
    const Irrep& psi = g->irrep(k);
    const int d = psi.dim;
    // Matrix coefficients h ↦ ψ(h)[:, j] span copies of ψ inside the regular representation.
    std::vector<Eigen::MatrixXd> copies;
    collect_copies(copies, d / psi.endo_dim(), d, [&](int j) {
      Eigen::MatrixXd u(n, d);
      for (int h = 0; h < n; ++h) u.row(h) = psi.matrices[h].col(j).transpose();
      return u;
    });
    if (static_cast<int>(copies.size()) != d / psi.endo_dim()) throw std::logic_error("regular representation: missing copies");
    for (auto& c : copies) {
      irreps.push_back(k);
      columns.push_back(std::move(c));
    }
  }
  Eigen::MatrixXd q(n, n);
  Eigen::Index col = 0;
  for (const auto& c : columns) { q.middleCols(col, c.cols()) = c; col += c.cols(); }
  return Representation(g, std::move(irreps), std::move(q), g->name() + ":regular");
}

Representation Representation::from_generators(GroupPtr g, const std::vector<Eigen::MatrixXd>& images, std::string name) {
  const auto& gens = g->generators();
  if (images.size() != gens.size()) {
    throw std::invalid_argument("representation of " + g->name() + ": " + std::to_string(images.size()) +
                                " generator matrices given, expected " + std::to_string(gens.size()));
  }
  const auto dim = images.empty() ? 0 : images.front().rows();
  check_size(g, dim, "representation");
  for (size_t s = 0; s < images.size(); ++s) {
    if (images[s].rows() != dim || images[s].cols() != dim || dim == 0) {
      std::ostringstream msg;
      msg << "representation of " << g->name() << ": generator " << s << " matrix is " << images[s].rows() << "x"
          << images[s].cols() << ", expected " << dim << "x" << dim;
      throw std::invalid_argument(msg.str());
    }
    const double err = orthogonality_error(images[s]);
    if (!(err <= 1e-8)) {
      std::ostringstream msg;
      msg << "representation of " << g->name() << ": generator " << s << " is not orthogonal (max |ρᵀρ - I| = " << err << ")";
      throw std::invalid_argument(msg.str());
    }
  }
  const auto mats = g->extend(images);
  const int n = g->order();
  for (size_t s = 0; s < gens.size(); ++s) {
    double err = 0;
    for (int a = 0; a < n; ++a) err = std::max(err, (mats[a] * mats[gens[s]] - mats[g->mul(a, gens[s])]).cwiseAbs().maxCoeff());
    if (err > 1e-8) {
      std::ostringstream msg;
      msg << "representation of " << g->name() << ": not a homomorphism, the relations through generator " << s
          << " fail by " << err;
      throw std::invalid_argument(msg.str());
    }
  }
  Eigen::VectorXd chi(n);
  for (int a = 0; a < n; ++a) chi(a) = mats[a].trace();
  std::vector<int> irreps;
  std::vector<Eigen::MatrixXd> blocks;
  Rng rng(0x5245505253ULL);
  for (int k = 0; k < static_cast<int>(g->irreps().size()); ++k) {
    const Irrep& psi = g->irrep(k);
    const int m = static_cast<int>(std::lround(chi.dot(psi.character) / n / psi.endo_dim()));
    if (m == 0) continue;
    // Random matrices averaged into Hom_G(ψ, ρ): (1/|G|) Σ ρ(g) E ψ(g)ᵀ.
    std::vector<Eigen::MatrixXd> copies;
    collect_copies(copies, m, 4 * m + 16, [&](int) {
      Eigen::MatrixXd e(dim, psi.dim);
      for (Eigen::Index i = 0; i < e.size(); ++i) e.data()[i] = rng.normal();
      Eigen::MatrixXd t = Eigen::MatrixXd::Zero(dim, psi.dim);
      for (int a = 0; a < n; ++a) t += mats[a] * e * psi.matrices[a].transpose();
      return Eigen::MatrixXd(t / n);
    });
    if (static_cast<int>(copies.size()) != m) throw std::logic_error("representation of " + g->name() + ": decomposition failed");
    for (auto& c : copies) { irreps.push_back(k); blocks.push_back(std::move(c)); }
  }
  Eigen::MatrixXd q(dim, dim);
  Eigen::Index col = 0;
  for (const auto& c : blocks) {
    if (col + c.cols() > dim) throw std::logic_error("representation of " + g->name() + ": decomposition overflows");
    q.middleCols(col, c.cols()) = c;
    col += c.cols();
  }
  if (col != dim) throw std::logic_error("representation of " + g->name() + ": decomposition is incomplete");
  return Representation(g, std::move(irreps), std::move(q), std::move(name));
}

Representation Representation::parse(GroupPtr g, const std::string& spec) {
  // The terms are checked and their total size bounded first; Q is then assembled once.
  std::vector<std::pair<int, Representation>> terms;  // (multiplicity, term)
  long total = 0;
  std::optional<Representation> reg;
  std::stringstream ss(spec);
  std::string term;
  while (std::getline(ss, term, '+')) {
    term = trim(term);
    int m = 1;
    if (const auto star = term.find('*'); star != std::string::npos) {
      const std::string count = trim(term.substr(0, star));
      if (count.empty() || count.find_first_not_of("0123456789") != std::string::npos || count.size() > 6 || std::stoi(count) < 1) {
        throw std::invalid_argument("representation spec '" + spec + "': bad multiplicity '" + count + "'");
      }
      m = std::stoi(count);
      term = trim(term.substr(star + 1));
    }
    Representation r;
    if (term == "regular") {
      check_size(g, total + static_cast<long>(m) * g->order(), "representation '" + spec + "'");
      if (!reg) reg = regular(g);
      r = *reg;
    } else if (term == "trivial") {
      r = trivial(g);
    } else if (term.rfind("irrep(", 0) == 0 && term.back() == ')') {
      const std::string k = term.substr(6, term.size() - 7);
      const int nk = static_cast<int>(g->irreps().size());
      if (k.empty() || k.find_first_not_of("0123456789") != std::string::npos || k.size() > 6 || std::stoi(k) >= nk) {
        throw std::invalid_argument("representation spec '" + spec + "': irrep '" + k + "' is not one of 0.." + std::to_string(nk - 1));
      }
      r = irrep(g, std::stoi(k));
    } else {
      throw std::invalid_argument("representation spec '" + spec + "': unknown term '" + term +
                                  "', expected regular, trivial or irrep(k), optionally as m*term");
    }
    total += static_cast<long>(m) * r.size();
    check_size(g, total, "representation '" + spec + "'");
    terms.emplace_back(m, std::move(r));
  }
  if (terms.empty()) throw std::invalid_argument("representation spec is empty");
  std::vector<int> irreps;
  std::vector<Eigen::MatrixXd> blocks;
  for (const auto& [m, r] : terms)
    for (int i = 0; i < m; ++i) {
      irreps.insert(irreps.end(), r.irreps_.begin(), r.irreps_.end());
      blocks.push_back(r.q_);
    }
  return Representation(Blocks{}, g, std::move(irreps), block_diagonal(blocks), g->name() + ":" + trim(spec));
}

std::vector<int> Representation::multiplicities() const {
  std::vector<int> m(group_->irreps().size(), 0);
  for (int k : irreps_) ++m[k];
  return m;
}

Eigen::MatrixXd Representation::operator()(int g) const {
  if (g < 0 || g >= group_->order()) {
    throw std::invalid_argument("Representation " + name_ + ": element " + std::to_string(g) + " out of range 0.." +
                                std::to_string(group_->order() - 1));
  }
  std::vector<Eigen::MatrixXd> blocks;
  for (int k : irreps_) blocks.push_back(group_->irrep(k).matrices[g]);
  return q_ * block_diagonal(blocks) * q_.transpose();
}

Eigen::VectorXd Representation::character() const {
  Eigen::VectorXd chi = Eigen::VectorXd::Zero(group_->order());
  for (int k : irreps_) chi += group_->irrep(k).character;
  return chi;
}

Representation Representation::isotypic_order() const {
  std::vector<int> order(irreps_.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return irreps_[a] < irreps_[b]; });
  std::vector<Eigen::Index> offset(irreps_.size() + 1, 0);
  for (size_t i = 0; i < irreps_.size(); ++i) offset[i + 1] = offset[i] + group_->irrep(irreps_[i]).dim;
  Eigen::MatrixXd q(q_.rows(), q_.cols());
  std::vector<int> irreps;
  Eigen::Index col = 0;
  for (int i : order) {
    const auto d = offset[i + 1] - offset[i];
    q.middleCols(col, d) = q_.middleCols(offset[i], d);
    col += d;
    irreps.push_back(irreps_[i]);
  }
  return Representation(Blocks{}, group_, std::move(irreps), std::move(q), name_);  // Q's columns permuted
}

Representation Representation::change_basis(const Eigen::MatrixXd& p, std::string name) const {
  if (p.rows() != size() || p.cols() != size() || orthogonality_error(p) > 1e-8) {
    std::ostringstream msg;
    msg << "Representation " << name_ << ": change of basis must be an orthogonal " << size() << "x" << size()
        << " matrix, got " << p.rows() << "x" << p.cols();
    throw std::invalid_argument(msg.str());
  }
  return Representation(group_, irreps_, p * q_, name.empty() ? name_ + "'" : std::move(name));
}

Representation Representation::copies(int m) const {
  if (m < 1) throw std::invalid_argument("Representation " + name_ + ": copies must be at least 1, got " + std::to_string(m));
  check_size(group_, static_cast<long>(m) * size(), "Representation " + name_ + " copied " + std::to_string(m) + " times");
  std::vector<int> irreps;
  for (int i = 0; i < m; ++i) irreps.insert(irreps.end(), irreps_.begin(), irreps_.end());
  const std::string name = m == 1 ? name_ : std::to_string(m) + "*(" + name_ + ")";
  return Representation(Blocks{}, group_, std::move(irreps), block_diagonal(std::vector<Eigen::MatrixXd>(m, q_)), name);
}

Eigen::MatrixXd Representation::invariant_basis() const {
  std::vector<Eigen::Index> cols;
  Eigen::Index offset = 0;
  for (int k : irreps_) {
    if (k == 0) cols.push_back(offset);
    offset += group_->irrep(k).dim;
  }
  Eigen::MatrixXd basis(size(), static_cast<Eigen::Index>(cols.size()));
  for (size_t i = 0; i < cols.size(); ++i) basis.col(i) = q_.col(cols[i]);
  return basis;
}

bool Representation::is_regular_copies(int* copies) const {
  const auto m = multiplicities();
  for (size_t k = 0; k < m.size(); ++k) {
    const auto& psi = group_->irrep(static_cast<int>(k));
    if (m[k] != m[0] * psi.dim / psi.endo_dim()) return false;
  }
  if (copies) *copies = m[0];
  return m[0] > 0;
}

std::string Representation::fingerprint() const {
  // Over the generator matrices: independent of the numerical irrep basis.
  std::uint64_t hash = kFnvOffset;
  for (int s : group_->generators()) hash = mix_rounded(hash, (*this)(s));
  std::ostringstream out;
  out << group_->name() << "/" << group_->order() << "/" << size() << "/" << std::hex << hash;
  return out.str();
}

std::string Representation::decomposition_fingerprint() const {
  // The ids as m repeats of their shortest period: copies of one representation read as such.
  const size_t n = irreps_.size();
  size_t period = n;
  for (size_t p = 1; p < n; ++p) {
    if (n % p) continue;
    bool repeats = true;
    for (size_t i = p; i < n && repeats; ++i) repeats = irreps_[i] == irreps_[i - p];
    if (repeats) { period = p; break; }
  }
  std::ostringstream out;
  if (period > 0 && period < n) out << n / period << "x";
  out << "[";
  for (size_t i = 0; i < period; ++i) out << (i ? "," : "") << irreps_[i];
  out << "]/";
  out << std::hex << mix_rounded(kFnvOffset, q_);
  return out.str();
}

Representation direct_sum(const Representation& a, const Representation& b) {
  if (a.group_ != b.group_) {
    throw std::invalid_argument("direct_sum: representations of different groups (" + a.group_->name() + ", " +
                                b.group_->name() + ")");
  }
  Representation::check_size(a.group_, static_cast<long>(a.size()) + b.size(), "direct_sum");
  std::vector<int> irreps = a.irreps_;
  irreps.insert(irreps.end(), b.irreps_.begin(), b.irreps_.end());
  return Representation(Representation::Blocks{}, a.group_, std::move(irreps), block_diagonal({a.q_, b.q_}),
                        a.name_ + "+" + b.name_);
}

bool same_representation(const Representation& a, const Representation& b, double tol) {
  if (a.group() != b.group() || a.size() != b.size()) return false;
  for (int s : a.group()->generators())
    if ((a(s) - b(s)).cwiseAbs().maxCoeff() > tol) return false;
  return true;
}

bool same_decomposition(const Representation& a, const Representation& b, double tol) {
  return a.group() == b.group() && a.irreps() == b.irreps() && a.size() == b.size() &&
         (a.size() == 0 || (a.change_of_basis() - b.change_of_basis()).cwiseAbs().maxCoeff() <= tol);
}

}  // namespace symm::group

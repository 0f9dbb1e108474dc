#include "symm/linalg/hom_basis.h"

#include <cmath>
#include <stdexcept>

#include "symm/group/random.h"

namespace symm::linalg {

namespace {

// Columns of Q belonging to irrep k, copy-major.
Eigen::MatrixXd irrep_columns(const Representation& rep, int k) {
  const auto& g = *rep.group();
  std::vector<Eigen::Index> starts;
  Eigen::Index offset = 0;
  for (int j : rep.irreps()) {
    if (j == k) starts.push_back(offset);
    offset += g.irrep(j).dim;
  }
  const int d = g.irrep(k).dim;
  Eigen::MatrixXd cols(rep.size(), static_cast<Eigen::Index>(starts.size()) * d);
  for (size_t c = 0; c < starts.size(); ++c) cols.middleCols(c * d, d) = rep.change_of_basis().middleCols(starts[c], d);
  return cols;
}

}  // namespace

InitScheme parse_init_scheme(const std::string& name) {
  if (name == "xavier_uniform") return InitScheme::xavier_uniform;
  if (name == "xavier_normal") return InitScheme::xavier_normal;
  if (name == "kaiming_uniform") return InitScheme::kaiming_uniform;
  if (name == "kaiming_normal") return InitScheme::kaiming_normal;
  throw std::invalid_argument("unknown init_scheme '" + name +
                              "': expected xavier_uniform, xavier_normal, kaiming_uniform or kaiming_normal");
}

const char* to_string(InitScheme s) {
  switch (s) {
    case InitScheme::xavier_uniform: return "xavier_uniform";
    case InitScheme::xavier_normal: return "xavier_normal";
    case InitScheme::kaiming_uniform: return "kaiming_uniform";
    case InitScheme::kaiming_normal: return "kaiming_normal";
  }
  return "?";
}

HomBasis::HomBasis(const Representation& in, const Representation& out) : in_(in), out_(out) {
  if (in.group() != out.group()) {
    throw std::invalid_argument("HomBasis: representations of different groups (" + in.group()->name() + ", " +
                                out.group()->name() + ")");
  }
  const auto& g = *in.group();
  const auto m_in = in.multiplicities(), m_out = out.multiplicities();
  for (int k = 0; k < static_cast<int>(m_in.size()); ++k) {
    if (m_in[k] == 0 || m_out[k] == 0) continue;
    Block b;
    b.irrep = k;
    b.dim = g.irrep(k).dim;
    b.endo = g.irrep(k).endo_dim();
    b.m_in = m_in[k];
    b.m_out = m_out[k];
    b.offset = dim_;
    b.q_in = irrep_columns(in, k);
    b.q_out = irrep_columns(out, k);
    dim_ += b.size();
    blocks_.push_back(std::move(b));
  }
}

Eigen::MatrixXd HomBasis::synthesize(const Eigen::VectorXd& theta) const {
  if (theta.size() != dim_) {
    throw std::invalid_argument("HomBasis::synthesize: " + std::to_string(theta.size()) + " coefficients given, expected " +
                                std::to_string(dim_));
  }
  Eigen::MatrixXd w = Eigen::MatrixXd::Zero(out_.size(), in_.size());
  for (const auto& b : blocks_) {
    const auto& psi = in_.group()->irrep(b.irrep).endomorphisms;
    Eigen::MatrixXd block = Eigen::MatrixXd::Zero(b.m_out * b.dim, b.m_in * b.dim);
    for (int s = 0; s < b.endo; ++s)
      for (int i = 0; i < b.m_out; ++i)
        for (int j = 0; j < b.m_in; ++j)
          block.block(i * b.dim, j * b.dim, b.dim, b.dim) += theta(b.offset + (s * b.m_out + i) * b.m_in + j) * psi[s];
    w += b.q_out * block * b.q_in.transpose();
  }
  return w;
}

Eigen::VectorXd HomBasis::coefficients(const Eigen::MatrixXd& w) const {
  if (w.rows() != out_.size() || w.cols() != in_.size()) {
    throw std::invalid_argument("HomBasis::coefficients: matrix is " + std::to_string(w.rows()) + "x" +
                                std::to_string(w.cols()) + ", expected " + std::to_string(out_.size()) + "x" +
                                std::to_string(in_.size()));
  }
  Eigen::VectorXd theta(dim_);
  for (const auto& b : blocks_) {
    const auto& psi = in_.group()->irrep(b.irrep).endomorphisms;
    const Eigen::MatrixXd block = b.q_out.transpose() * w * b.q_in;
    for (int s = 0; s < b.endo; ++s)
      for (int i = 0; i < b.m_out; ++i)
        for (int j = 0; j < b.m_in; ++j)
          theta(b.offset + (s * b.m_out + i) * b.m_in + j) =
              (psi[s].array() * block.block(i * b.dim, j * b.dim, b.dim, b.dim).array()).sum();
  }
  return theta;
}

Eigen::VectorXd HomBasis::init_std(InitScheme scheme) const {
  Eigen::VectorXd std(dim_);
  for (const auto& b : blocks_) {
    const double fan_in = b.m_in * b.dim, fan_out = b.m_out * b.dim;
    const bool xavier = scheme == InitScheme::xavier_uniform || scheme == InitScheme::xavier_normal;
    // Variance of the entries of W; kaiming with the gain of ReLU, as torch's default for these schemes.
    const double var = xavier ? 2.0 / (fan_in + fan_out) : 2.0 / fan_in;
    // Each row of a block holds S·m_in coefficients times orthonormal Ψ rows of norm² 1/d.
    std.segment(b.offset, b.size()).setConstant(std::sqrt(var * b.dim * b.dim / b.endo));
  }
  return std;
}

Eigen::VectorXd HomBasis::initial(InitScheme scheme, std::uint64_t seed) const {
  const Eigen::VectorXd std = init_std(scheme);
  const bool uniform = scheme == InitScheme::xavier_uniform || scheme == InitScheme::kaiming_uniform;
  symm::group::Rng rng(seed);
  Eigen::VectorXd theta(dim_);
  for (int i = 0; i < dim_; ++i)
    theta(i) = uniform ? rng.uniform(-std::sqrt(3.0) * std(i), std::sqrt(3.0) * std(i)) : std(i) * rng.normal();
  return theta;
}

}  // namespace symm::linalg

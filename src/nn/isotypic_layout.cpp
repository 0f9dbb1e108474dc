#include "isotypic_layout.h"

#include "symm/nn/functional.h"

#include <algorithm>
#include <cmath>

#include "isotypic.h"

namespace symm::nn::detail {

IsotypicLayout::IsotypicLayout(const Representation& rep) {
  const auto& g = *rep.group();
  const auto& q = rep.change_of_basis();
  const int size = rep.size();
  const int kinds = int(g.irreps().size());
  // Columns of Q of each occurrence of each irrep, and its position in rep.irreps().
  std::vector<std::vector<int>> column(kinds), position(kinds);
  for (int p = 0, col = 0; p < int(rep.irreps().size()); ++p) {
    const int k = rep.irreps()[p];
    column[k].push_back(col);
    position[k].push_back(p);
    col += g.irrep(k).dim;
  }
  // copy[k][c][μ]: occurrence of the μ-th copy of irrep k inside chunk c.
  std::vector<std::vector<std::vector<int>>> copy(kinds);
  auto split = [&](int s) {
    for (int k = 0; k < kinds; ++k) {
      if (column[k].empty()) continue;
      const int d = g.irrep(k).dim;
      Eigen::MatrixXd qk(size, Eigen::Index(column[k].size()) * d);
      for (size_t j = 0; j < column[k].size(); ++j) qk.middleCols(Eigen::Index(j) * d, d) = q.middleCols(column[k][j], d);
      copy[k] = copies_by_chunk(qk, d, s, size / s);
      if (copy[k].empty()) return false;
    }
    return true;
  };
  s_ = detail::chunk_size(size, {&q});
  if (!split(int(s_))) {
    s_ = size;  // one chunk always splits
    split(size);
  }
  m_ = size / s_;

  Eigen::MatrixXd p(s_, s_);
  std::vector<int64_t> copy_of_row(static_cast<size_t>(size));
  copy_index_.assign(kinds, {});
  Eigen::MatrixXd fix_rows;
  const Eigen::MatrixXd f = rep.invariant_basis();
  int64_t row = 0;
  for (int k = 0; k < kinds; ++k) {
    if (column[k].empty()) continue;
    const auto& irrep = g.irrep(k);
    const int64_t mu = int64_t(copy[k][0].size());
    blocks_.push_back({k, irrep.dim, irrep.endo_dim(), mu * m_, row});
    copy_index_[k].assign(column[k].size(), 0);
    for (int64_t c = 0; c < m_; ++c)
      for (int64_t u = 0; u < mu; ++u) copy_index_[k][copy[k][c][u]] = u * m_ + c;
    for (int a = 0; a < irrep.dim; ++a)
      for (int64_t u = 0; u < mu; ++u, ++row) {
        p.col(row) = q.block(0, column[k][copy[k][0][u]] + a, s_, 1);
        for (int64_t c = 0; c < m_; ++c) copy_of_row[row * m_ + c] = position[k][copy[k][c][u]];
      }
    if (irrep.is_trivial() && f.cols() > 0) {
      trivial_offset_ = blocks_.back().chunk_offset * m_;
      trivial_copies_ = mu * m_;
      fix_rows.resize(trivial_copies_, f.cols());
      for (size_t j = 0; j < column[k].size(); ++j) fix_rows.row(copy_index_[k][j]) = q.col(column[k][j]).transpose() * f;
    }
  }
  std::vector<torch::Tensor> master{to_tensor(p), torch::tensor(copy_of_row, torch::kInt64)};
  if (trivial_copies_ > 0) master.push_back(to_tensor(fix_rows));
  constants_ = Constants(std::move(master));
}

const IsotypicLayout::Block* IsotypicLayout::block_of(int irrep) const {
  for (const auto& b : blocks_)
    if (b.irrep == irrep) return &b;
  return nullptr;
}

torch::Tensor IsotypicLayout::to_isotypic(const torch::Tensor& x) const {
  return functional::to_isotypic(x, constants_.get(x)[0], m_);
}

torch::Tensor IsotypicLayout::from_isotypic(const torch::Tensor& z, c10::IntArrayRef sizes) const {
  return functional::from_isotypic(z, constants_.get(z)[0], m_).view(sizes);
}

torch::Tensor IsotypicLayout::to_chunk_basis(const torch::Tensor& z) const {
  return torch::mm(constants_.get(z)[0], z.view({s_, -1}));
}

torch::Tensor IsotypicLayout::from_chunk_basis(const torch::Tensor& h) const {
  return torch::mm(constants_.get(h)[0].t(), h).view({size(), -1});
}

void IsotypicLayout::append_constants(NamedConstants& out, const std::string& prefix) const {
  const auto& c = constants_.masters();
  out.emplace_back(prefix + ".chunks", torch::tensor(m_, torch::kInt64));
  out.emplace_back(prefix + ".basis", c[0]);
  out.emplace_back(prefix + ".copy_of_row", c[1]);
  if (trivial_copies_ > 0) {
    out.emplace_back(prefix + ".fix_rows", c[2]);
    out.emplace_back(prefix + ".fix_offset", torch::tensor(trivial_offset_, torch::kInt64));
  }
}

torch::Tensor IsotypicLayout::invariant(const torch::Tensor& f) const {
  if (!f.defined() || trivial_copies_ == 0) return {};
  const auto v = torch::mv(constants_.get(f)[2], f);
  return torch::constant_pad_nd(v, {trivial_offset_, size() - trivial_offset_ - trivial_copies_});
}

}  // namespace symm::nn::detail

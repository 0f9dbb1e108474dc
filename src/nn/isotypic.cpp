#include "isotypic.h"

#include <algorithm>
#include <cmath>

namespace symm::nn::detail {

namespace {
constexpr double kZero = 1e-10;  // entries of orthogonal change-of-basis matrices below this are structural zeros
}  // namespace

int chunk_size(int size, const std::vector<const Eigen::MatrixXd*>& qs) {
  std::vector<std::pair<int, int>> spans;  // first and last nonzero row of each column
  for (const auto* q : qs) {
    for (Eigen::Index j = 0; j < q->cols(); ++j) {
      int first = -1, last = -1;
      for (Eigen::Index i = 0; i < q->rows(); ++i) {
        if (std::abs((*q)(i, j)) > kZero) {
          if (first < 0) first = static_cast<int>(i);
          last = static_cast<int>(i);
        }
      }
      if (first >= 0) spans.emplace_back(first, last);
    }
  }
  for (int s = 1; s < size; ++s) {
    if (size % s) continue;
    if (std::all_of(spans.begin(), spans.end(), [s](const auto& p) { return p.first / s == p.second / s; })) return s;
  }
  return size;
}

int chunk_of(const Eigen::MatrixXd& q, Eigen::Index col, int d, int s) {
  int chunk = -1;
  for (Eigen::Index j = col; j < col + d; ++j) {
    for (Eigen::Index i = 0; i < q.rows(); ++i) {
      if (std::abs(q(i, j)) <= kZero) continue;
      const int c = static_cast<int>(i / s);
      if (chunk >= 0 && c != chunk) return -1;
      chunk = c;
    }
  }
  return chunk;
}

namespace {

/// Copies of one irrep in a representation of `chunks` equal chunks of s rows: copy[c][j] is the global index
/// (column block of q) of the j-th copy inside chunk c. Empty when a copy spreads over chunks, or when the
/// chunks differ in their copies or in the columns of those copies.
std::vector<std::vector<int>> copies_by_chunk(const Eigen::MatrixXd& q, int dim, int s, int chunks) {
  std::vector<std::vector<int>> copy(chunks);
  const int total = static_cast<int>(q.cols()) / dim;
  for (int i = 0; i < total; ++i) {
    const int c = chunk_of(q, Eigen::Index(i) * dim, dim, s);
    if (c < 0 || c >= chunks) return {};
    copy[c].push_back(i);
  }
  for (int c = 1; c < chunks; ++c) {
    if (copy[c].size() != copy[0].size()) return {};
    for (size_t j = 0; j < copy[c].size(); ++j) {
      const auto a = q.block(Eigen::Index(c) * s, Eigen::Index(copy[c][j]) * dim, s, dim);
      const auto b = q.block(0, Eigen::Index(copy[0][j]) * dim, s, dim);
      if (!a.isApprox(b, 1e-9)) return {};
    }
  }
  return copy;
}

}  // namespace

std::shared_ptr<const IsotypicLinear> IsotypicLinear::build(const symm::linalg::HomBasis& basis) {
  std::vector<const Eigen::MatrixXd*> q_in, q_out;
  for (const auto& b : basis.blocks()) {
    q_in.push_back(&b.q_in);
    q_out.push_back(&b.q_out);
  }
  const int d_in = basis.in_rep().size(), d_out = basis.out_rep().size();
  if (auto plan = build(basis, chunk_size(d_in, q_in), chunk_size(d_out, q_out))) return plan;
  return build(basis, d_in, d_out);  // one chunk each: always consistent, dense basis changes
}

std::shared_ptr<const IsotypicLinear> IsotypicLinear::build(const symm::linalg::HomBasis& basis, int s_in, int s_out) {
  const auto& blocks = basis.blocks();
  const int d_in = basis.in_rep().size(), d_out = basis.out_rep().size();
  std::shared_ptr<IsotypicLinear> plan(new IsotypicLinear());
  auto& p = *plan;
  p.s_in_ = s_in;
  p.s_out_ = s_out;
  p.m_in_ = d_in / p.s_in_;
  p.m_out_ = d_out / p.s_out_;
  const auto& g = *basis.in_rep().group();

  std::vector<Eigen::VectorXd> in_columns, out_rows;  // extended input coordinates, output coordinates (chunk 0)
  std::vector<std::vector<int64_t>> index;
  for (size_t i = 0; i < blocks.size();) {
    const auto& b0 = blocks[i];
    const auto in0 = copies_by_chunk(b0.q_in, b0.dim, int(p.s_in_), int(p.m_in_));
    const auto out0 = copies_by_chunk(b0.q_out, b0.dim, int(p.s_out_), int(p.m_out_));
    if (in0.empty() || out0.empty()) return nullptr;
    Shape shape{0, b0.dim, b0.endo, int64_t(in0[0].size()), int64_t(out0[0].size()), int64_t(in_columns.size()),
                int64_t(out_rows.size())};
    std::vector<int64_t> idx;
    size_t j = i;
    for (; j < blocks.size() && blocks[j].dim == b0.dim && blocks[j].endo == b0.endo; ++j) {
      const auto& b = blocks[j];
      const auto in = copies_by_chunk(b.q_in, b.dim, int(p.s_in_), int(p.m_in_));
      const auto out = copies_by_chunk(b.q_out, b.dim, int(p.s_out_), int(p.m_out_));
      if (in.empty() || out.empty()) return nullptr;
      if (int64_t(in[0].size()) != shape.mu_in || int64_t(out[0].size()) != shape.mu_out) break;
      ++shape.count;
      const auto& psi = g.irrep(b.irrep).endomorphisms;
      // Columns (s, j, a): Q_j Ψ_sᵀ, so that the product gives Ψ_s Q_jᵀ x.
      for (int s = 0; s < b.endo; ++s)
        for (int64_t c = 0; c < shape.mu_in; ++c) {
          const Eigen::MatrixXd cols = b.q_in.block(0, Eigen::Index(in[0][c]) * b.dim, p.s_in_, b.dim) * psi[s].transpose();
          for (int a = 0; a < b.dim; ++a) in_columns.push_back(cols.col(a));
        }
      for (int64_t c = 0; c < shape.mu_out; ++c)
        for (int a = 0; a < b.dim; ++a) out_rows.push_back(b.q_out.block(0, Eigen::Index(out[0][c]) * b.dim, p.s_out_, b.dim).col(a));
      // θ[offset + (s·M_out + i_out)·M_in + i_in] at row (s, j, chunk) and column (j', chunk').
      for (int s = 0; s < b.endo; ++s)
        for (int64_t jj = 0; jj < shape.mu_in; ++jj)
          for (int64_t c = 0; c < p.m_in_; ++c)
            for (int64_t jo = 0; jo < shape.mu_out; ++jo)
              for (int64_t co = 0; co < p.m_out_; ++co)
                idx.push_back(b.offset + (int64_t(s) * b.m_out + out[co][jo]) * b.m_in + in[c][jj]);
    }
    p.shapes_.push_back(shape);
    index.push_back(std::move(idx));
    i = j;
  }
  if (p.shapes_.empty()) return nullptr;
  p.width_in_ = int64_t(in_columns.size());
  Eigen::MatrixXd p_in(p.s_in_, p.width_in_), p_out(out_rows.size(), p.s_out_);
  for (size_t c = 0; c < in_columns.size(); ++c) p_in.col(c) = in_columns[c];
  for (size_t r = 0; r < out_rows.size(); ++r) p_out.row(r) = out_rows[r].transpose();
  p.constants_ = Constants({to_tensor(p_in), to_tensor(p_out)});
  p.multiply_adds_ = p.m_in_ * p.s_in_ * p.width_in_ + p.m_out_ * p_out.rows() * p.s_out_;
  for (size_t k = 0; k < p.shapes_.size(); ++k) {
    const auto& sh = p.shapes_[k];
    const int64_t rows = sh.endo * sh.mu_in * p.m_in_, cols = sh.mu_out * p.m_out_;
    p.index_.push_back(torch::tensor(index[k], torch::kInt64).view({sh.count, rows, cols}));
    p.multiply_adds_ += sh.count * sh.dim * rows * cols;
  }
  return plan;
}

const std::vector<torch::Tensor>& IsotypicLinear::index_on(const torch::Device& device) const {
  if (device.is_cpu()) return index_;
  std::lock_guard<std::mutex> lock(mutex_);
  auto& v = index_on_[device.str()];
  if (v.empty())
    for (const auto& t : index_) v.push_back(t.to(device));
  return v;
}

torch::Tensor IsotypicLinear::forward(const torch::Tensor& x, const torch::Tensor& theta, const torch::Tensor& bias) const {
  const auto& c = constants_.get(x);
  const auto& index = index_on(x.device());
  const int64_t n = x.numel() / (m_in_ * s_in_);
  // Coordinates as rows, tokens·chunks as columns: (width_in, [N, m_in]). Then for every irrep, endomorphism s
  // and copy j in a chunk, the (d·N, m_in) matrix of rows (component, token) and columns (chunk) is a strided
  // view, a GEMM operand without a copy.
  const auto zt = torch::mm(c[0].t(), x.reshape({n * m_in_, s_in_}).t());
  torch::Tensor y;
  for (size_t k = 0; k < shapes_.size(); ++k) {
    const auto& sh = shapes_[k];
    const int64_t terms = sh.endo * sh.mu_in;
    const auto z = zt.narrow(0, sh.in_offset, sh.count * terms * sh.dim).view({sh.count, terms, sh.dim * n, m_in_});
    const auto w = theta.index_select(0, index[k].view(-1)).view({sh.count, terms, m_in_, sh.mu_out * m_out_});
    // Per output copy j': Σ over (s, j) of (count, d·N, m_in)·(count, m_in, m_out), so that the result is
    // laid out (count, [j', d], [N, m_out]) for the basis change back.
    std::vector<torch::Tensor> parts;
    for (int64_t jo = 0; jo < sh.mu_out; ++jo) {
      torch::Tensor acc;
      for (int64_t t = 0; t < terms; ++t) {
        const auto wt = w.select(1, t).narrow(2, jo * m_out_, m_out_);
        acc = acc.defined() ? torch::baddbmm(acc, z.select(1, t), wt) : torch::bmm(z.select(1, t), wt);
      }
      parts.push_back(acc);
    }
    const auto yk = (parts.size() == 1 ? parts[0] : torch::stack(parts, 1)).view({sh.count * sh.mu_out * sh.dim, n * m_out_});
    const auto p_out = c[1].narrow(0, sh.out_offset, sh.count * sh.mu_out * sh.dim);
    y = y.defined() ? torch::addmm(y, yk.t(), p_out) : torch::mm(yk.t(), p_out);
  }
  auto sizes = x.sizes().vec();
  sizes.back() = m_out_ * s_out_;
  y = y.view({n, m_out_ * s_out_});
  return (bias.defined() ? y.add(bias) : y).view(sizes);
}

}  // namespace symm::nn::detail

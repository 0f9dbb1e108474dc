#include "isotypic.h"

#include <algorithm>
#include <cmath>

#include "symm/nn/functional.h"

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

IsotypicMap::IsotypicMap(const symm::linalg::HomBasis& basis, std::shared_ptr<const IsotypicLayout> in,
                         std::shared_ptr<const IsotypicLayout> out)
    : in_(std::move(in)), out_(std::move(out)) {
  const auto& g = *basis.in_rep().group();
  std::vector<torch::Tensor> master;
  for (size_t i = 0; i < out_->blocks().size();) {
    // A group: the longest run of output irreps of one shape whose input blocks follow each other too.
    const auto& o0 = out_->blocks()[i];
    const auto* i0 = in_->block_of(o0.irrep);
    Group gr{0, o0.dim, o0.endo, i0 ? i0->copies : 0, o0.copies, i0 ? i0->chunk_offset * in_->chunks() : 0,
             o0.chunk_offset, i0 == nullptr, int(master.size())};
    std::vector<int64_t> index;
    std::vector<torch::Tensor> extra;  // per irrep: its scale Ψ_0(0,0) (R type) or its Ψ (S, d, d)
    size_t j = i;
    for (; j < out_->blocks().size(); ++j) {
      const auto& o = out_->blocks()[j];
      const auto* ib = in_->block_of(o.irrep);
      if (o.dim != gr.dim || o.endo != gr.endo || o.copies != gr.n_out || (ib == nullptr) != gr.zero) break;
      if (ib && (ib->copies != gr.n_in || ib->chunk_offset * in_->chunks() != gr.in_row + gr.count * gr.dim * gr.n_in)) break;
      ++gr.count;
      if (gr.zero) continue;
      const auto& hb = *std::find_if(basis.blocks().begin(), basis.blocks().end(), [&](const auto& b) { return b.irrep == o.irrep; });
      const auto& psi = g.irrep(o.irrep).endomorphisms;
      std::vector<int64_t> idx(size_t(hb.endo) * gr.n_out * gr.n_in);
      for (int s = 0; s < hb.endo; ++s)
        for (int jo = 0; jo < hb.m_out; ++jo)
          for (int ji = 0; ji < hb.m_in; ++ji) {
            const int64_t mo = out_->copy_index(o.irrep, jo), mi = in_->copy_index(o.irrep, ji);
            idx[(size_t(s) * gr.n_out + mo) * gr.n_in + mi] = hb.offset + (int64_t(s) * hb.m_out + jo) * hb.m_in + ji;
          }
      index.insert(index.end(), idx.begin(), idx.end());
      if (gr.endo == 1) {
        extra.push_back(torch::full({1}, psi[0](0, 0), torch::kFloat64));
      } else {
        std::vector<torch::Tensor> p;
        for (const auto& e : psi) p.push_back(to_tensor(e));
        extra.push_back(torch::stack(p));
      }
    }
    if (!gr.zero) {
      master.push_back(torch::tensor(index, torch::kInt64).view({gr.count, gr.endo, gr.n_out, gr.n_in}));
      master.push_back(torch::cat(extra).view(gr.endo == 1 ? std::vector<int64_t>{gr.count, 1, 1}
                                                           : std::vector<int64_t>{gr.count, gr.endo, gr.dim, gr.dim}));
      multiply_adds_ += gr.count * gr.dim * (gr.endo == 1 ? 1 : gr.dim) * gr.n_out * gr.n_in;
    }
    groups_.push_back(gr);
    i = j;
  }
  constants_ = Constants(std::move(master));
}

void IsotypicMap::append_constants(NamedConstants& out, const std::string& prefix) const {
  const auto& c = constants_.masters();
  std::vector<int64_t> dims, in_rows, out_rows;
  for (const auto& gr : groups_) {
    in_rows.push_back(gr.zero ? -1 : gr.in_row);
    out_rows.push_back(gr.count * gr.dim * gr.n_out);
    if (gr.zero) continue;
    const auto k = std::to_string(dims.size());
    out.emplace_back(prefix + ".index." + k, c[gr.constant]);
    out.emplace_back(prefix + ".endomorphisms." + k, c[gr.constant + 1]);
    dims.push_back(gr.dim);
  }
  out.emplace_back(prefix + ".dims", torch::tensor(dims, torch::kInt64));
  out.emplace_back(prefix + ".in_rows", torch::tensor(in_rows, torch::kInt64));
  out.emplace_back(prefix + ".out_rows", torch::tensor(out_rows, torch::kInt64));
}

std::vector<torch::Tensor> IsotypicMap::operands(const torch::Tensor& theta, const torch::Tensor& bias,
                                                 int64_t chunk_begin, int64_t chunk_count) const {
  const auto& c = constants_.get(theta);
  const int64_t m = out_->chunks();
  const int64_t kept = chunk_count < 0 ? m : chunk_count;
  std::vector<torch::Tensor> index, psi;
  std::vector<int64_t> dims;
  for (const auto& gr : groups_) {
    if (gr.zero) continue;
    auto idx = c[gr.constant];  // (count, S, n_out, n_in)
    if (kept != m) idx = idx.view({gr.count, gr.endo, gr.n_out / m, m, gr.n_in}).narrow(3, chunk_begin, kept).reshape({gr.count, gr.endo, -1, gr.n_in});
    index.push_back(idx);
    psi.push_back(c[gr.constant + 1]);
    dims.push_back(gr.dim);
  }
  const auto weights = functional::isotypic_weights(theta, index, psi, dims);
  std::vector<torch::Tensor> ops;
  size_t k = 0;
  for (const auto& gr : groups_) {
    const int64_t mu = gr.n_out / m, rows = gr.count * gr.dim * mu * kept;
    const int64_t batch = gr.endo == 1 ? gr.count * gr.dim : gr.count;
    torch::Tensor b;  // (batch, rows / batch, 1), the bias of the kept chunks
    if (bias.defined()) {
      b = bias.view({out_->chunk_size(), m}).narrow(1, chunk_begin, kept).narrow(0, gr.out_chunk_row, gr.count * gr.dim * mu);
      b = b.reshape({batch, rows / batch, 1});
    }
    ops.push_back(gr.zero ? torch::Tensor() : weights[k++]);
    ops.push_back(b);
  }
  return ops;
}

torch::Tensor IsotypicMap::forward(const torch::Tensor& z, const std::vector<torch::Tensor>& ops, int64_t chunk_count) const {
  const int64_t kept = chunk_count < 0 ? out_->chunks() : chunk_count;
  c10::List<c10::optional<torch::Tensor>> weights, biases;
  std::vector<int64_t> in_rows, out_rows;
  auto optional = [](const torch::Tensor& t) { return t.defined() ? c10::optional<torch::Tensor>(t) : c10::nullopt; };
  for (size_t i = 0; i < groups_.size(); ++i) {
    const auto& gr = groups_[i];
    weights.push_back(optional(ops[2 * i]));
    biases.push_back(optional(ops[2 * i + 1]));
    in_rows.push_back(gr.in_row);
    out_rows.push_back(gr.count * gr.dim * (gr.n_out / out_->chunks()) * kept);
  }
  return functional::isotypic_blocks(z, weights, biases, in_rows, out_rows);
}

torch::Tensor IsotypicMap::forward(const torch::Tensor& z, const torch::Tensor& theta, const torch::Tensor& bias,
                                   int64_t chunk_begin, int64_t chunk_count) const {
  return forward(z, operands(theta, bias, chunk_begin, chunk_count), chunk_count);
}

}  // namespace symm::nn::detail

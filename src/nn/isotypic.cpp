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
             o0.chunk_offset, i0 == nullptr, int(master.size()), -1};
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
  // One split of the input for all groups: under autograd its backward is one cat, where a narrow per
  // group would zero-fill a gradient of the whole input each.
  std::vector<Group*> by_row;
  for (auto& gr : groups_)
    if (!gr.zero) by_row.push_back(&gr);
  std::sort(by_row.begin(), by_row.end(), [](const Group* a, const Group* b) { return a->in_row < b->in_row; });
  int64_t row = 0;
  for (auto* gr : by_row) {
    if (gr->in_row > row) input_pieces_.push_back(gr->in_row - row);
    gr->piece = int(input_pieces_.size());
    input_pieces_.push_back(gr->count * gr->dim * gr->n_in);
    row = gr->in_row + input_pieces_.back();
  }
  if (row < in_->size()) input_pieces_.push_back(in_->size() - row);
}

std::vector<torch::Tensor> IsotypicMap::operands(const torch::Tensor& theta, const torch::Tensor& bias,
                                                 int64_t chunk_begin, int64_t chunk_count) const {
  const auto& c = constants_.get(theta);
  const int64_t m = out_->chunks();
  const int64_t kept = chunk_count < 0 ? m : chunk_count;
  std::vector<torch::Tensor> ops;
  for (const auto& gr : groups_) {
    const int64_t mu = gr.n_out / m, n_out = mu * kept, rows = gr.count * gr.dim * n_out;
    const int64_t batch = gr.endo == 1 ? gr.count * gr.dim : gr.count;
    torch::Tensor w, b;  // b: (batch, rows / batch, 1), the bias of the kept chunks
    if (bias.defined()) {
      b = bias.view({out_->chunk_size(), m}).narrow(1, chunk_begin, kept).narrow(0, gr.out_chunk_row, gr.count * gr.dim * mu);
      b = b.reshape({batch, rows / batch, 1});
    }
    if (!gr.zero) {
      auto index = c[gr.constant];  // (count, S, n_out, n_in)
      if (kept != m) index = index.view({gr.count, gr.endo, mu, m, gr.n_in}).narrow(3, chunk_begin, kept);
      w = theta.index_select(0, index.reshape({-1})).view({gr.count, gr.endo, n_out, gr.n_in});
      if (gr.endo == 1) {
        w = w * c[gr.constant + 1].view({gr.count, 1, 1, 1});
        if (gr.dim > 1) w = w.expand({gr.count, gr.dim, n_out, gr.n_in});
        w = w.reshape({batch, n_out, gr.n_in});
      } else {
        // Σ_s Ψ_s ⊗ Θ_s, rows (component, copy), columns (component, copy).
        w = torch::einsum("ksoi,ksab->kaobi", {w, c[gr.constant + 1]}).reshape({batch, gr.dim * n_out, gr.dim * gr.n_in});
      }
    }
    ops.push_back(w);
    ops.push_back(b);
  }
  return ops;
}

torch::Tensor IsotypicMap::forward(const torch::Tensor& z, const std::vector<torch::Tensor>& ops, int64_t chunk_count) const {
  const int64_t n = z.size(1), kept = chunk_count < 0 ? out_->chunks() : chunk_count;
  // Without autograd every group writes its rows of one output in place; with it, the groups are
  // concatenated (whose backward is a free split).
  auto needs_grad = [](const torch::Tensor& t) { return torch::GradMode::is_enabled() && t.defined() && t.requires_grad(); };
  const bool in_place = !needs_grad(z) && std::none_of(ops.begin(), ops.end(), needs_grad);
  torch::Tensor y = in_place ? torch::empty({out_->chunk_size() * kept, n}, z.options()) : torch::Tensor();
  int64_t row = 0;
  std::vector<torch::Tensor> parts;
  const auto pieces = z.split_with_sizes(input_pieces_, 0);
  for (size_t i = 0; i < groups_.size(); ++i) {
    const auto& gr = groups_[i];
    const auto &w = ops[2 * i], &b = ops[2 * i + 1];
    const int64_t rows = gr.count * gr.dim * (gr.n_out / out_->chunks()) * kept;
    const auto out = in_place ? y.narrow(0, row, rows) : torch::Tensor();
    row += rows;
    if (gr.zero) {
      const auto b_rows = b.defined() ? b.view({rows, 1}) : torch::zeros({rows, 1}, z.options());
      if (in_place) out.copy_(b_rows.expand({rows, n}));
      else parts.push_back(b_rows.expand({rows, n}).contiguous());
      continue;
    }
    const int64_t batch = w.size(0);
    const auto x = pieces[gr.piece].view({batch, w.size(2), n});
    if (in_place) {
      auto o = out.view({batch, w.size(1), n});
      if (b.defined()) torch::baddbmm_out(o, b, w, x);
      else torch::bmm_out(o, w, x);
    } else {
      parts.push_back((b.defined() ? torch::baddbmm(b, w, x) : torch::bmm(w, x)).view({rows, n}));
    }
  }
  if (in_place) return y;
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 0);
}

torch::Tensor IsotypicMap::forward(const torch::Tensor& z, const torch::Tensor& theta, const torch::Tensor& bias,
                                   int64_t chunk_begin, int64_t chunk_count) const {
  return forward(z, operands(theta, bias, chunk_begin, chunk_count), chunk_count);
}

}  // namespace symm::nn::detail

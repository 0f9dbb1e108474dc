#include "symm/nn/linear.h"

#include <functional>

#include "symm/nn/affine.h"
#include "symm/nn/functional.h"

#include "eval_mode.h"
#include "isotypic.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <type_traits>
#include <vector>

#include <ATen/Dispatch.h>

namespace symm::nn {

namespace {

torch::Tensor invariant_basis_tensor(const Representation& rep) { return to_tensor(rep.invariant_basis()); }

// The constants of functional::hom_tiles when both representations are copies of one small block each, side
// by side (regular copies in the permutation basis, for instance): the (s_out, s_in) tile of W for each copy
// pair is then φ·E with φ = θ[index] (r coefficients per pair) and E (r, s_out·s_in) the same for every pair.
// None otherwise, or for a single tile (the general path is as cheap).
struct TileConstants {
  int64_t m_out, m_in, s_out, s_in, r;
  torch::Tensor tiles, index;  // E (r, s_out, s_in); int64 (m_out·m_in·r)
  bool identity;               // index is 0, 1, 2, ...: θ is φ already
};

std::optional<TileConstants> tile_constants(const symm::linalg::HomBasis& basis) {
  const auto& blocks = basis.blocks();
  std::vector<const Eigen::MatrixXd*> q_out, q_in;
  for (const auto& b : blocks) {
    q_out.push_back(&b.q_out);
    q_in.push_back(&b.q_in);
  }
  const int d_out = basis.out_rep().size(), d_in = basis.in_rep().size();
  const int s_out = detail::chunk_size(d_out, q_out), s_in = detail::chunk_size(d_in, q_in);
  const int m_out = d_out / s_out, m_in = d_in / s_in;
  if (int64_t(m_out) * m_in == 1) return {};  // one tile: the general path is as cheap
  const auto& g = *basis.in_rep().group();
  // Every coefficient θ_t of a block (irrep, endomorphism s, copies i, j) contributes
  // Q_out[:, i] Ψ_s Q_in[:, j]ᵀ, which lives in one tile (chunk of i, chunk of j). Pass 0 collects the tiles
  // of pair (0, 0); pass 1 checks that every pair has the same list, in the same order, and records θ's order.
  std::vector<Eigen::MatrixXd> reference;
  std::vector<int64_t> count(size_t(m_out) * m_in, 0);
  std::vector<int64_t> index;
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) {
      if (reference.empty()) return {};
      index.assign(size_t(m_out) * m_in * reference.size(), -1);
    }
    for (const auto& b : blocks) {
      const auto& endo = g.irrep(b.irrep).endomorphisms;
      std::vector<int> chunk_out(b.m_out), chunk_in(b.m_in);
      for (int i = 0; i < b.m_out; ++i) chunk_out[i] = detail::chunk_of(b.q_out, i * b.dim, b.dim, s_out);
      for (int j = 0; j < b.m_in; ++j) chunk_in[j] = detail::chunk_of(b.q_in, j * b.dim, b.dim, s_in);
      for (int s = 0; s < b.endo; ++s) {
        for (int i = 0; i < b.m_out; ++i) {
          for (int j = 0; j < b.m_in; ++j) {
            const int co = chunk_out[i], ci = chunk_in[j];
            if (co < 0 || ci < 0) return {};
            if (pass == 0 && (co != 0 || ci != 0)) continue;
            const Eigen::MatrixXd tile = b.q_out.block(int64_t(co) * s_out, int64_t(i) * b.dim, s_out, b.dim) * endo[s] *
                                         b.q_in.block(int64_t(ci) * s_in, int64_t(j) * b.dim, s_in, b.dim).transpose();
            const int64_t theta = b.offset + (int64_t(s) * b.m_out + i) * b.m_in + j;
            if (pass == 0) {
              reference.push_back(tile);
              continue;
            }
            const size_t pair = size_t(co) * m_in + ci;
            const int64_t t = count[pair]++;
            if (t >= int64_t(reference.size()) || !tile.isApprox(reference[t], 1e-9)) return {};
            index[pair * reference.size() + t] = theta;
          }
        }
      }
    }
  }
  const auto r = static_cast<int64_t>(reference.size());
  if (std::any_of(count.begin(), count.end(), [r](int64_t c) { return c != r; })) return {};
  Eigen::MatrixXd e(r, int64_t(s_out) * s_in);
  for (int64_t t = 0; t < r; ++t) {
    const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> row = reference[t];
    e.row(t) = Eigen::Map<const Eigen::RowVectorXd>(row.data(), row.size());
  }
  const auto index_tensor = torch::tensor(index, torch::kInt64);
  return TileConstants{m_out, m_in, s_out, s_in, r, to_tensor(e).view({r, s_out, s_in}), index_tensor,
                       index_tensor.equal(torch::arange(int64_t(index.size()), torch::kInt64))};
}


// The constants of functional::hom_blocks: blocks batched by shape, for each batch Ψ (nb, S, d, d) and Q_out
// (nb, D_out, m_out d); then Q_inᵀ (Σ m_in d, D_in).
struct BlockConstants {
  struct Batch { int offset, count, endo, dim, m_out, m_in; };
  std::vector<Batch> batches;
  std::vector<torch::Tensor> master;
};

BlockConstants block_constants(const symm::linalg::HomBasis& basis) {
  BlockConstants out;
  const auto& g = *basis.in_rep().group();
  std::vector<torch::Tensor> q_in_all;
  const auto& blocks = basis.blocks();
  int64_t offset = 0;
  for (size_t i = 0; i < blocks.size();) {
    size_t j = i + 1;
    auto same = [&](const auto& a, const auto& b) { return a.endo == b.endo && a.dim == b.dim && a.m_out == b.m_out && a.m_in == b.m_in; };
    while (j < blocks.size() && same(blocks[i], blocks[j])) ++j;
    const auto& b0 = blocks[i];
    // hom_blocks reads each batch's coefficients after the previous batch's.
    TORCH_INTERNAL_ASSERT(b0.offset == offset, "eLinear: the Hom_G coefficients of a batch do not follow the previous batch's");
    out.batches.push_back({b0.offset, static_cast<int>(j - i), b0.endo, b0.dim, b0.m_out, b0.m_in});
    offset += int64_t(j - i) * b0.endo * b0.m_out * b0.m_in;
    std::vector<torch::Tensor> psi, q_out;
    for (size_t k = i; k < j; ++k) {
      std::vector<torch::Tensor> endo;
      for (const auto& e : g.irrep(blocks[k].irrep).endomorphisms) endo.push_back(to_tensor(e));
      psi.push_back(torch::stack(endo));
      q_out.push_back(to_tensor(blocks[k].q_out));
      q_in_all.push_back(to_tensor(blocks[k].q_in));
    }
    out.master.push_back(torch::stack(psi));
    out.master.push_back(torch::stack(q_out));
    i = j;
  }
  out.master.push_back(torch::cat(q_in_all, 1).t().contiguous());
  return out;
}

// Scale of an eAffine on in_rep acting on each coefficient's input copy: the j-th copy of irrep k in the
// basis is the j-th occurrence of k in in_rep.irreps(), which is the eAffine's scale index.
torch::Tensor alpha_index(const symm::linalg::HomBasis& basis) {
  std::vector<int64_t> alpha(basis.dim());
  const auto& irreps = basis.in_rep().irreps();
  for (const auto& b : basis.blocks()) {
    std::vector<int64_t> position;
    for (size_t c = 0; c < irreps.size(); ++c)
      if (irreps[c] == b.irrep) position.push_back(int64_t(c));
    for (int e = 0; e < b.endo; ++e)
      for (int i = 0; i < b.m_out; ++i)
        for (int j = 0; j < b.m_in; ++j) alpha[b.offset + (int64_t(e) * b.m_out + i) * b.m_in + j] = position.at(j);
  }
  return torch::tensor(alpha, torch::kInt64);
}

// A layout's constants for functional::to_isotypic / from_isotypic, and its Fix(ρ) basis in isotypic rows.
void append_layout(NamedConstants& out, const std::string& prefix, const detail::IsotypicLayout& layout, int64_t n_fix) {
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  out.emplace_back(prefix + ".chunks", torch::tensor(layout.chunks(), torch::kInt64));
  out.emplace_back(prefix + ".basis", layout.to_chunk_basis(torch::eye(layout.chunk_size(), f64)));
  out.emplace_back(prefix + ".copy_of_row", layout.copy_of_row(torch::kCPU).clone());
  if (n_fix == 0) return;
  const auto eye = torch::eye(n_fix, f64);
  std::vector<torch::Tensor> columns;
  for (int64_t k = 0; k < n_fix; ++k) columns.push_back(layout.invariant(eye[k]));
  out.emplace_back(prefix + ".fix", torch::stack(columns, 1));
}

}  // namespace

const char* to_string(Execution e) {
  switch (e) {
    case Execution::automatic: return "automatic";
    case Execution::dense: return "dense";
    case Execution::isotypic: return "isotypic";
  }
  return "?";
}

Execution parse_execution(const std::string& name) {
  if (name == "automatic") return Execution::automatic;
  if (name == "dense") return Execution::dense;
  if (name == "isotypic") return Execution::isotypic;
  throw std::invalid_argument("unknown execution '" + name + "': expected automatic, dense or isotypic");
}

eLinearImpl::eLinearImpl(eLinearOptions options_) : options(std::move(options_)) { reset(); }

void eLinearImpl::reset() {
  const auto& in = options.in_rep();
  const auto& out = options.out_rep();
  TORCH_CHECK(in.group() && out.group(), "eLinear: in_rep and out_rep must be set");
  TORCH_CHECK(in.group() == out.group(), "eLinear: in_rep is of group ", in.group()->name(), " but out_rep of ",
              out.group()->name());
  symm::linalg::parse_init_scheme(options.init_scheme());
  basis_ = std::make_shared<symm::linalg::HomBasis>(in, out);
  TORCH_CHECK(basis_->dim() > 0, "eLinear: Hom_G(", in.name(), ", ", out.name(),
              ") is zero-dimensional: no irrep of the output occurs in the input");
  batches_.clear();
  constants_ = Constants();
  fix_ = Constants({invariant_basis_tensor(out)});
  use_tiles_ = build_tiles();
  isotypic_in_ = std::make_shared<detail::IsotypicLayout>(in);
  isotypic_out_ = std::make_shared<detail::IsotypicLayout>(out);
  isotypic_ = std::make_shared<detail::IsotypicMap>(*basis_, isotypic_in_, isotypic_out_);
  if (!use_tiles_) {
    auto c = block_constants(*basis_);
    for (const auto& b : c.batches) batches_.push_back({b.offset, b.count, b.endo, b.dim, b.m_out, b.m_in});
    constants_ = Constants(std::move(c.master));
  }

  alpha_index_ = Constants({alpha_index(*basis_)});
  affine_check_.pre = nullptr;

  weight_dof = register_parameter("weight_dof", torch::empty({basis_->dim()}));
  const auto n_fix = out.invariant_basis().cols();
  if (options.bias() && n_fix > 0) {
    bias_dof = register_parameter("bias_dof", torch::empty({n_fix}));
  } else {
    bias_dof = torch::Tensor();
  }
  for (auto* cache : {&weight_cache_, &bias_cache_, &folded_cache_, &isotypic_cache_}) cache->clear();
  reset_parameters();
}

namespace functional {

NamedConstants linear_constants(const Representation& in_rep, const Representation& out_rep, const std::string& init_scheme) {
  TORCH_CHECK(in_rep.group() && in_rep.group() == out_rep.group(), "linear_constants: expected two representations of one group");
  const symm::linalg::HomBasis basis(in_rep, out_rep);
  TORCH_CHECK(basis.dim() > 0, "linear_constants: Hom_G(", in_rep.name(), ", ", out_rep.name(), ") is zero-dimensional");
  NamedConstants out;
  if (const auto t = tile_constants(basis)) {
    out.emplace_back("tiles", t->tiles);
    out.emplace_back("tile_m_out", torch::tensor(t->m_out, torch::kInt64));
    if (!t->identity) out.emplace_back("tile_index", t->index);
  } else {
    const auto c = block_constants(basis);
    std::vector<int64_t> m_in;
    for (size_t i = 0; i < c.batches.size(); ++i) {
      out.emplace_back("endomorphisms." + std::to_string(i), c.master[2 * i]);
      out.emplace_back("q_out." + std::to_string(i), c.master[2 * i + 1]);
      m_in.push_back(c.batches[i].m_in);
    }
    out.emplace_back("q_in_t", c.master.back());
    out.emplace_back("m_in", torch::tensor(m_in, torch::kInt64));
  }
  out.emplace_back("fix", invariant_basis_tensor(out_rep));
  out.emplace_back("init_std", to_tensor(basis.init_std(symm::linalg::parse_init_scheme(init_scheme))));
  out.emplace_back("bias_bound", torch::tensor(1.0 / std::sqrt(double(in_rep.size())), torch::kFloat64));
  out.emplace_back("alpha_index", alpha_index(basis));
  const auto in = std::make_shared<const detail::IsotypicLayout>(in_rep);
  const auto outl = std::make_shared<const detail::IsotypicLayout>(out_rep);
  detail::IsotypicMap(basis, in, outl).append_constants(out, "isotypic");
  append_layout(out, "isotypic_in", *in, in_rep.invariant_basis().cols());
  append_layout(out, "isotypic_out", *outl, out_rep.invariant_basis().cols());
  return out;
}

}  // namespace functional

void eLinearImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  const auto scheme = symm::linalg::parse_init_scheme(options.init_scheme());
  const auto std = to_tensor(basis_->init_std(scheme)).to(weight_dof.options());
  const bool uniform = scheme == symm::linalg::InitScheme::xavier_uniform || scheme == symm::linalg::InitScheme::kaiming_uniform;
  if (uniform) {
    weight_dof.uniform_(-1.0, 1.0).mul_(std * std::sqrt(3.0));
  } else {
    weight_dof.normal_().mul_(std);
  }
  if (bias_dof.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(options.in_rep().size()));
    bias_dof.uniform_(-bound, bound);
  }
}

bool eLinearImpl::build_tiles() {
  const auto t = tile_constants(*basis_);
  if (!t) return false;
  tiles_ = Tiles{t->m_out, t->m_in, t->s_out, t->s_in, t->r, t->index, t->identity};
  tile_constants_ = Constants({t->tiles, t->index});
  return true;
}

torch::Tensor eLinearImpl::synthesize_weight(const torch::Tensor& theta_all) const {
  if (use_tiles_) {
    const auto& c = tile_constants_.get(theta_all);
    return functional::hom_tiles(theta_all, tiles_.identity ? c10::nullopt : c10::optional<torch::Tensor>(c[1]), c[0], tiles_.m_out);
  }
  const auto& c = constants_.get(theta_all);
  const auto n = batches_.size();
  std::vector<torch::Tensor> psi, q_out;
  std::vector<int64_t> m_in;
  for (size_t i = 0; i < n; ++i) {
    psi.push_back(c[2 * i]);
    q_out.push_back(c[2 * i + 1]);
    m_in.push_back(batches_[i].m_in);
  }
  return functional::hom_blocks(theta_all, psi, q_out, c[2 * n], m_in);
}

torch::Tensor eLinearImpl::weight() {
  if (!detail::use_eval_cache(is_training(), {weight_dof})) return synthesize_weight(weight_dof);
  return detail::eval_cached(weight_cache_, {weight_dof}, [&] { return synthesize_weight(weight_dof); });
}

torch::Tensor eLinearImpl::bias() {
  if (!bias_dof.defined()) return {};
  auto compute = [&] { return torch::mv(fix_.get(bias_dof)[0], bias_dof); };
  if (!detail::use_eval_cache(is_training(), {bias_dof})) return compute();
  return detail::eval_cached(bias_cache_, {bias_dof}, compute);
}

void eLinearImpl::check_input(const torch::Tensor& x) const {
  check_features("eLinear", x, options.in_rep().size());
  check_device_and_dtype("eLinear", x, weight_dof);
}

bool eLinearImpl::uses_isotypic() const {
  // automatic: dense, measured faster on the CPU at every benchmarked size (bench/RESULTS.md), since the
  // basis changes and layout copies around each block GEMM cost more than the multiply-adds they save.
  return options.execution() == Execution::isotypic;
}

int64_t eLinearImpl::isotypic_multiply_adds() const { return isotypic_->multiply_adds(); }

int64_t eLinearImpl::multiply_adds() const {
  if (!uses_isotypic()) return int64_t(options.in_rep().size()) * options.out_rep().size();
  const auto& in = *isotypic_in_;
  const auto& out = *isotypic_out_;
  return isotypic_->multiply_adds() + in.chunk_size() * in.size() + out.chunk_size() * out.size();
}

const detail::IsotypicLayout& eLinearImpl::isotypic_in() const { return *isotypic_in_; }
const detail::IsotypicLayout& eLinearImpl::isotypic_out() const { return *isotypic_out_; }

torch::Tensor eLinearImpl::forward(const torch::Tensor& x) {
  check_input(x);
  if (!uses_isotypic()) return torch::nn::functional::linear(x, weight(), bias());
  return forward_through_isotypic(x, nullptr);
}

torch::Tensor eLinearImpl::forward_through_isotypic(const torch::Tensor& x, eAffineImpl* pre) {
  auto sizes = x.sizes().vec();
  sizes.back() = options.out_rep().size();
  return isotypic_out_->from_isotypic(forward_isotypic(isotypic_in_->to_isotypic(x), pre), sizes);
}

torch::Tensor eLinearImpl::scaled_coefficients(const eAffineImpl& pre) const {
  return weight_dof * pre.scale_dof.index_select(0, alpha_index_.get(weight_dof)[0]);
}

torch::Tensor eLinearImpl::forward_isotypic(const torch::Tensor& z, eAffineImpl* pre, int64_t chunk_begin, int64_t chunk_count) {
  TORCH_CHECK(z.dim() == 2 && z.size(0) == options.in_rep().size(), "eLinear::forward_isotypic: expected (",
              options.in_rep().size(), ", tokens) features-first, got ", z.sizes());
  check_device_and_dtype("eLinear", z, weight_dof);
  const bool folds = pre && affine_matches(*pre);
  auto operands = [&] {
    auto b = isotypic_out_->invariant(bias_dof);
    if (!folds) return isotypic_->operands(weight_dof, b, chunk_begin, chunk_count);
    // W (S z + b_pre) + b: W·S is the map of the scaled coefficients, W b_pre goes through the blocks.
    if (const auto b_pre = isotypic_in_->invariant(pre->bias_dof); b_pre.defined()) {
      const auto wb = isotypic_->forward(b_pre.unsqueeze(1), weight_dof, {}).squeeze(1);
      b = b.defined() ? b + wb : wb;
    }
    return isotypic_->operands(scaled_coefficients(*pre), b, chunk_begin, chunk_count);
  };
  const auto& input = pre && !folds ? pre->forward_isotypic(z, *isotypic_in_) : z;
  const bool all_chunks = chunk_begin == 0 && (chunk_count < 0 || chunk_count == isotypic_out_->chunks());
  auto keys = folds ? std::vector<torch::Tensor>{weight_dof, bias_dof, pre->scale_dof, pre->bias_dof}
                    : std::vector<torch::Tensor>{weight_dof, bias_dof};
  if (!detail::use_eval_cache(is_training(), keys) || !all_chunks) return isotypic_->forward(input, operands(), chunk_count);
  // Eval: the block weights and biases are made once per parameter change (at O m=16's four maps, about a
  // tenth of the layer's time went into gathering them every forward).
  return isotypic_->forward(input, detail::eval_cached_all(isotypic_cache_, keys, operands), chunk_count);
}

bool eLinearImpl::affine_matches(const eAffineImpl& pre) {
  if (affine_check_.pre.load() != &pre) {
    // S = Q·diag(α)·Qᵀ with Q the change of basis of in_rep: then W·S scales the columns of each input irrep
    // copy, that is the coefficients θ of that copy, by its α.
    const auto& a = pre.options.rep();
    const auto& in = options.in_rep();
    affine_check_.folds = pre.options.learnable() && a.irreps() == in.irreps() && a.change_of_basis() == in.change_of_basis();
    affine_check_.pre = &pre;
  }
  return affine_check_.folds;
}

std::pair<std::function<torch::Tensor()>, std::function<torch::Tensor()>> eLinearImpl::fold(eAffineImpl& pre, bool in_theta) {
  // linear(S x + b_pre) = (W·S) x + (b + W b_pre); S is symmetric. W·S is the weight of the scaled
  // coefficients θ·α when S is diagonal in in_rep's irrep copies, else a (D_out, D, D) matmul.
  auto weight_fn = [this, &pre, in_theta] {
    if (!in_theta) return torch::mm(weight(), pre.scale_matrix());
    return synthesize_weight(scaled_coefficients(pre));
  };
  auto bias_fn = [this, &pre] {
    const auto b_pre = pre.bias_vector();
    const auto b = bias();
    if (!b_pre.defined()) return b;
    const auto wb = torch::mv(weight(), b_pre);
    return b.defined() ? b + wb : wb;
  };
  return {weight_fn, bias_fn};
}

void eLinearImpl::check_foldable(const eAffineImpl& pre, const char* where) const {
  TORCH_CHECK(pre.options.learnable(), "eLinear::", where, ": the eAffine must be learnable (FiLM scales change per call)");
  TORCH_CHECK(pre.options.rep().size() == options.in_rep().size(), "eLinear::", where, ": the eAffine acts on ",
              pre.options.rep().size(), " features but this map's input has ", options.in_rep().size());
}

std::optional<std::pair<torch::Tensor, torch::Tensor>> eLinearImpl::cached_fold(eAffineImpl& pre) {
  const std::vector<torch::Tensor> keys{weight_dof, bias_dof, pre.scale_dof, pre.bias_dof};
  if (!detail::use_eval_cache(is_training(), keys)) return std::nullopt;
  const auto& wb = detail::eval_cached_all(folded_cache_, keys, [&] {
    const auto [fold_weight, fold_bias] = fold(pre, !pre.is_diagonal() && affine_matches(pre));
    return std::vector<torch::Tensor>{fold_weight(), fold_bias()};
  });
  return std::pair{wb[0], wb[1]};
}

std::pair<torch::Tensor, torch::Tensor> eLinearImpl::dense_after(eAffineImpl* pre) {
  if (pre == nullptr) return {weight(), bias()};
  check_foldable(*pre, "dense_after");
  if (auto cached = cached_fold(*pre)) return *cached;
  const auto [fold_weight, fold_bias] = fold(*pre, !pre->is_diagonal() && affine_matches(*pre));
  return {fold_weight(), fold_bias()};
}

torch::Tensor eLinearImpl::forward_after(const torch::Tensor& x, eAffineImpl& pre) {
  check_input(x);
  check_foldable(pre, "forward_after");
  if (uses_isotypic()) return forward_through_isotypic(x, &pre);
  if (const auto cached = cached_fold(pre)) return torch::nn::functional::linear(x, cached->first, cached->second);
  // Elementwise scales are cheaper applied to x than folded.
  const bool in_theta = !pre.is_diagonal() && affine_matches(pre);
  // Training: the matmul fold pays off only with more tokens than output features.
  const int64_t tokens = x.numel() / std::max<int64_t>(x.size(-1), 1);
  if (pre.is_diagonal() || (!in_theta && tokens <= options.out_rep().size())) return forward(pre.forward(x));
  const auto [fold_weight, fold_bias] = fold(pre, in_theta);
  return torch::nn::functional::linear(x, fold_weight(), fold_bias());
}

void eLinearImpl::set_dense(const torch::Tensor& w, const torch::Tensor& b) {
  const auto out = options.out_rep().size(), in = options.in_rep().size();
  TORCH_CHECK(w.dim() == 2 && w.size(0) == out && w.size(1) == in, "eLinear::set_dense: expected a weight of shape [",
              out, ", ", in, "], got ", w.sizes());
  torch::NoGradGuard no_grad;
  weight_dof.copy_(to_tensor(Eigen::VectorXd(basis_->coefficients(to_eigen(w)))));
  if (b.defined() && bias_dof.defined()) {
    TORCH_CHECK(b.dim() == 1 && b.size(0) == out, "eLinear::set_dense: expected a bias of shape [", out, "], got ", b.sizes());
    bias_dof.copy_(torch::mv(fix_.get(torch::kCPU, torch::kFloat64)[0].t(), b.detach().to(torch::kCPU, torch::kFloat64)));
  }
}

void eLinearImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eLinear(in=" << options.in_rep().name() << ", out=" << options.out_rep().name()
         << ", bias=" << (bias_dof.defined() ? "true" : "false") << ", dof=" << basis_->dim()
         << ", execution=" << (uses_isotypic() ? "isotypic" : "dense") << ")";
}

void set_execution(torch::nn::Module& module, Execution execution) {
  // Not modules(include_self=true): a layer calls this from its constructor, before a holder owns it.
  if (auto* lin = dynamic_cast<eLinearImpl*>(&module)) lin->options.execution(execution);
  for (const auto& m : module.modules(/*include_self=*/false)) {
    if (auto* lin = dynamic_cast<eLinearImpl*>(m.get())) lin->options.execution(execution);
  }
}

InvariantBiasImpl::InvariantBiasImpl(InvariantBiasOptions options_) : options(std::move(options_)) { reset(); }

void InvariantBiasImpl::reset() {
  constants_ = Constants({invariant_basis_tensor(options.rep())});
  bias_dof = register_parameter("bias_dof", torch::zeros({options.rep().invariant_basis().cols()}));
  reset_parameters();
}

void InvariantBiasImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  bias_dof.zero_();
}

torch::Tensor InvariantBiasImpl::bias() { return torch::mv(constants_.get(bias_dof)[0], bias_dof); }

torch::Tensor InvariantBiasImpl::forward(const torch::Tensor& x) {
  check_features("InvariantBias", x, options.rep().size());
  if (bias_dof.numel() == 0) return x;
  return x + bias();
}

void InvariantBiasImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::InvariantBias(rep=" << options.rep().name() << ", dof=" << bias_dof.numel() << ")";
}

}  // namespace symm::nn

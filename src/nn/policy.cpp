#include "symm/nn/policy.h"

#include <cmath>
#include <functional>
#include <map>

#include <unsupported/Eigen/SpecialFunctions>

#include "symm/nn/attention.h"
#include "symm/nn/normalization.h"

namespace symm::nn {

namespace {

using Matrix = FlowPolicy::Matrix;
using Row = FlowPolicy::Row;
using Affine = FlowPolicy::Affine;

Matrix to_matrix(const torch::Tensor& t) {
  const auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  TORCH_INTERNAL_ASSERT(c.dim() == 2);
  return Eigen::Map<const Matrix>(c.data_ptr<float>(), c.size(0), c.size(1));
}

/// The affine map a module computes on row vectors, read off its outputs at 0 and at the unit vectors.
Affine probe(const std::function<torch::Tensor(const torch::Tensor&)>& f, int64_t in, const torch::TensorOptions& like) {
  torch::NoGradGuard no_grad;
  const auto x = torch::cat({torch::zeros({1, in}, like), torch::eye(in, like)});
  const Matrix y = to_matrix(f(x));
  Affine a;
  a.bias = y.row(0);
  a.weight = y.bottomRows(in).rowwise() - a.bias;
  return a;
}

/// first then second: x ↦ (x A + a) B + b.
Affine then(const Affine& first, const Affine& second) {
  return {first.weight * second.weight, first.bias * second.weight + second.bias};
}

Affine columns(const Affine& a, int64_t start, int64_t n) { return {a.weight.middleCols(start, n), a.bias.middleCols(start, n)}; }

Affine identity(int64_t dim) { return {Matrix::Identity(dim, dim), Row::Zero(dim)}; }

/// The affine map after an rmsnorm's normalisation (identity when it has none); refuses other norms.
Affine norm_affine(torch::nn::AnyModule& norm, int64_t dim, const torch::TensorOptions& like, double& eps) {
  auto* module = norm.ptr().get();
  if (auto* e = dynamic_cast<eRMSNormImpl*>(module)) {
    eps = e->options.eps();
    if (!e->affine) return identity(dim);
    return probe([&](const torch::Tensor& x) { return e->affine->forward(x); }, dim, like);
  }
  const auto params = module->named_parameters(false);
  TORCH_CHECK(params.size() == 1 && params.contains("weight") && module->name().find("RMSNorm") != std::string::npos,
              "FlowPolicy: only rmsnorm is supported, got ", module->name());
  Affine a = identity(dim);
  a.weight.diagonal() = to_matrix(params["weight"].reshape({1, -1})).row(0);
  eps = 1e-5;  // the plain regressor's RMSNorm
  return a;
}

/// out = in·W + b over row blocks small enough for Eigen to keep its packing buffers on the stack (construction).
template <typename In, typename Out>
void apply(const Affine& a, const In& in, Out&& out) {
  constexpr int64_t kRows = 16;
  for (int64_t r = 0; r < in.rows(); r += kRows) {
    const int64_t n = std::min<int64_t>(kRows, in.rows() - r);
    out.middleRows(r, n).noalias() = in.middleRows(r, n) * a.weight;
    out.middleRows(r, n).rowwise() += a.bias;
  }
}

/// Exact GELU, x Φ(x), through Eigen's vectorised erf (at::gelu_ of LibTorch 1.13 allocates on every call).
template <typename M>
void gelu(M&& x) {
  auto a = x.array();
  a = 0.5f * a * (1.0f + (a * static_cast<float>(M_SQRT1_2)).erf());
}

Eigen::Map<Matrix> eigen(const torch::Tensor& t) { return {t.data_ptr<float>(), t.size(0), t.size(1)}; }

/// out = in·W + b at run time: the product through LibTorch's BLAS (OpenBLAS or MKL, chosen for this CPU when it
/// loads, where Eigen's kernels are compiled for the baseline ISA: 4-wide SSE), into out's storage.
void apply(const Affine& a, const torch::Tensor& in, torch::Tensor& out) {
  at::mm_out(out, in, a.w);
  eigen(out).rowwise() += a.bias;
}

void rms_normalise(const Matrix& x, Matrix& out, int64_t rows, double eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = 1.0f / std::sqrt(x.row(r).squaredNorm() / static_cast<float>(x.cols()) + static_cast<float>(eps));
    out.row(r) = x.row(r) * scale;
  }
}

}  // namespace

/// 2-D tensors over the first rows of the buffers, made on the first call of each batch size: the BLAS products
/// write through them without a tensor made per call.
struct FlowPolicy::BufferViews {
  torch::Tensor h, qkv, q, o, f, mem, mem_hidden;
  std::vector<torch::Tensor> kv;
};

struct FlowPolicy::Buffers {
  int64_t capacity = 0;  // the batch size the storage holds
  Matrix x, h, qkv, q, o, f, a, v;  // tokens; normed; projections; attention output; hidden; actions; velocity
  Matrix mem, mem_hidden;           // encoded observation tokens and the encoder's hidden layer
  std::vector<Matrix> kv;           // per layer: keys and values of the observation tokens (B·To, 2D)
  Matrix scores;                    // one head's logits (T, S)
  std::map<int64_t, BufferViews> views;
};

FlowPolicy::FlowPolicy(eCondTransformerRegressorImpl& model, FlowPolicyOptions options) : options_(options) {
  const auto& o = model.options;
  TORCH_CHECK(symm::group::same_representation(o.in_rep(), o.out_rep()),
              "FlowPolicy: the regressor's in_rep and out_rep must be the same (a velocity of the actions), got ",
              o.in_rep().name(), " and ", o.out_rep().name());
  TORCH_CHECK(o.num_cond_layers() == 0, "FlowPolicy: the condition encoder must act token by token (num_cond_layers 0), got ",
              o.num_cond_layers(), " encoder layers");
  TORCH_CHECK(!o.causal_attn(), "FlowPolicy: causal attention is not supported");
  horizon_ = o.in_horizon(), cond_horizon_ = o.cond_horizon(), action_dim_ = o.in_rep().size(), cond_dim_ = o.cond_rep().size();
  dim_ = o.embedding_dim(), heads_ = o.num_attention_heads();
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  const auto like = model.pos_emb.options();
  input = probe([&](const torch::Tensor& x) { return model.input_emb->forward(x); }, action_dim_, like);
  cond = probe([&](const torch::Tensor& x) { return model.cond_emb->forward(x); }, cond_dim_, like);
  // The invariant projection F Fᵀ of the step and positional embeddings (F: an orthonormal basis of Fix).
  const auto basis = to_tensor(model.embedding_rep().invariant_basis()).to(like);
  auto project_invariant = [&](const torch::Tensor& x) { return torch::matmul(torch::matmul(x, basis), basis.t()); };
  input_pos = to_matrix(project_invariant(model.pos_emb)[0]).rowwise() + input.bias;
  const auto cond_pos_all = project_invariant(model.cond_pos_emb)[0];
  cond_pos = to_matrix(cond_pos_all.narrow(0, 1, cond_horizon_)).rowwise() + cond.bias;
  auto& mlp = *model.cond_mlp;
  TORCH_CHECK(mlp.layers->size() == 2 && mlp.options.activation().name() == "mish",
              "FlowPolicy: the condition encoder must be eLinear → Mish → eLinear");
  cond1 = probe([&](const torch::Tensor& x) { return mlp.layers[0]->as<eLinearImpl>()->forward(x); }, dim_, like);
  cond2 = probe([&](const torch::Tensor& x) { return mlp.layers[1]->as<eLinearImpl>()->forward(x); }, cond1.weight.cols(), like);
  // The step tokens of the time grid, encoded by the regressor's own modules.
  const int64_t n = options_.flow_steps();
  TORCH_CHECK(n > 0, "FlowPolicy: flow_steps must be positive, got ", n);
  const auto k = torch::arange(n, like).mul(options_.step_scale() / static_cast<double>(n));
  const auto steps = model.cond_mlp->forward(project_invariant(sinusoidal_embedding(k, dim_)) + cond_pos_all[0]);
  const Matrix step_tokens = to_matrix(steps);
  for (auto& module : *model.decoder) {
    auto* layer = module->as<eTransformerDecoderLayerImpl>();
    TORCH_CHECK(layer->options.norm_first(), "FlowPolicy: the decoder layers must be pre-norm (norm_first)");
    auto* self = dynamic_cast<eMultiheadAttentionImpl*>(layer->self_attn.get());
    auto* cross = dynamic_cast<eMultiheadAttentionImpl*>(layer->cross_attn.get());
    TORCH_CHECK(self && cross, "FlowPolicy: the decoder's attention must be eMultiheadAttention");
    TORCH_CHECK(layer->options.activation().name() == "gelu", "FlowPolicy: the feed-forward activation must be gelu, got ", layer->options.activation().name());
    double eps = 0;
    Layer l;
    const auto self_in = probe([&](const torch::Tensor& x) { return self->in_proj->forward(x); }, dim_, like);
    const auto cross_in = probe([&](const torch::Tensor& x) { return cross->in_proj->forward(x); }, dim_, like);
    l.qkv = then(norm_affine(layer->norm1, dim_, like, eps), self_in);
    l.self_out = probe([&](const torch::Tensor& x) { return self->out_proj->forward(x); }, dim_, like);
    l.q = then(norm_affine(layer->norm2, dim_, like, eps), columns(cross_in, 0, dim_));
    l.kv = columns(cross_in, dim_, 2 * dim_);
    l.cross_out = probe([&](const torch::Tensor& x) { return cross->out_proj->forward(x); }, dim_, like);
    auto& ff = *layer->feedforward;
    l.ff1 = then(norm_affine(layer->norm3, dim_, like, eps), probe([&](const torch::Tensor& x) { return ff.linear1->forward(x); }, dim_, like));
    l.ff2 = probe([&](const torch::Tensor& x) { return ff.linear2->forward(x); }, l.ff1.weight.cols(), like);
    TORCH_CHECK(std::abs(eps - 1e-5) < 1e-12, "FlowPolicy: the norms' eps must be 1e-5, got ", eps);
    l.step_kv.resize(n, 2 * dim_);
    apply(l.kv, step_tokens, l.step_kv);
    layers.push_back(std::move(l));
  }
  double eps = 0;
  head = then(norm_affine(model.norm, dim_, like, eps),
              probe([&](const torch::Tensor& x) { return model.head->forward(x); }, dim_, like));
  chunk_ = options_.chunk() == 0 ? horizon_ : options_.chunk();
  TORCH_CHECK(chunk_ >= 1 && chunk_ <= horizon_, "FlowPolicy: chunk must be between 1 and the horizon ", horizon_, ", got ",
              options_.chunk());
  if (was_training) model.train();
  finish();
}

FlowPolicy::FlowPolicy(CondTransformerRegressorImpl& model, FlowPolicyOptions options) : options_(options) {
  const auto& o = model.options;
  TORCH_CHECK(o.in_dim() == o.out_dim(), "FlowPolicy: the regressor's in_dim and out_dim must be the same, got ", o.in_dim(), " and ",
              o.out_dim());
  TORCH_CHECK(o.num_cond_layers() == 0, "FlowPolicy: the condition encoder must act token by token (num_cond_layers 0), got ",
              o.num_cond_layers(), " encoder layers");
  TORCH_CHECK(!o.causal_attn(), "FlowPolicy: causal attention is not supported");
  horizon_ = o.in_horizon(), cond_horizon_ = o.cond_horizon(), action_dim_ = o.in_dim(), cond_dim_ = o.cond_dim();
  dim_ = o.embedding_dim(), heads_ = o.num_attention_heads();
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  const auto like = model.pos_emb.options();
  auto linear = [&](torch::nn::Linear& l) { return Affine{to_matrix(l->weight.t()), to_matrix(l->bias.reshape({1, -1})).row(0)}; };
  input = linear(model.input_emb);
  cond = linear(model.cond_emb);
  input_pos = to_matrix(model.pos_emb[0]).rowwise() + input.bias;
  cond_pos = to_matrix(model.cond_pos_emb[0].narrow(0, 1, cond_horizon_)).rowwise() + cond.bias;
  auto* first = model.cond_mlp->ptr(0)->as<torch::nn::LinearImpl>();
  auto* second = model.cond_mlp->ptr(2)->as<torch::nn::LinearImpl>();
  cond1 = {to_matrix(first->weight.t()), to_matrix(first->bias.reshape({1, -1})).row(0)};
  cond2 = {to_matrix(second->weight.t()), to_matrix(second->bias.reshape({1, -1})).row(0)};
  const int64_t n = options_.flow_steps();
  TORCH_CHECK(n > 0, "FlowPolicy: flow_steps must be positive, got ", n);
  const auto k = torch::arange(n, like).mul(options_.step_scale() / static_cast<double>(n));
  const Matrix step_tokens = to_matrix(model.cond_mlp->forward(sinusoidal_embedding(k, dim_) + model.cond_pos_emb[0][0]));
  for (auto& module : *model.decoder) {
    auto* block = module->as<PreNormBlockImpl>();
    auto attention = [&](torch::nn::MultiheadAttention& mha) {
      return std::pair{Affine{to_matrix(mha->in_proj_weight.t()), to_matrix(mha->in_proj_bias.reshape({1, -1})).row(0)},
                       linear(mha->out_proj)};
    };
    const auto [self_in, self_out] = attention(block->self_attn);
    const auto [cross_in, cross_out] = attention(block->cross_attn);
    double eps = 0;
    Layer l;
    l.qkv = then(norm_affine(block->norm1, dim_, like, eps), self_in);
    l.self_out = self_out;
    l.q = then(norm_affine(block->norm2, dim_, like, eps), columns(cross_in, 0, dim_));
    l.kv = columns(cross_in, dim_, 2 * dim_);
    l.cross_out = cross_out;
    l.ff1 = then(norm_affine(block->norm3, dim_, like, eps), linear(block->linear1));
    l.ff2 = linear(block->linear2);
    l.step_kv.resize(n, 2 * dim_);
    apply(l.kv, step_tokens, l.step_kv);
    layers.push_back(std::move(l));
  }
  double eps = 0;
  head = then(norm_affine(model.norm, dim_, like, eps), linear(model.head));
  chunk_ = options_.chunk() == 0 ? horizon_ : options_.chunk();
  TORCH_CHECK(chunk_ >= 1 && chunk_ <= horizon_, "FlowPolicy: chunk must be between 1 and the horizon ", horizon_, ", got ",
              options_.chunk());
  if (was_training) model.train();
  finish();
}

void FlowPolicy::finish() {
  // The run-time products read the tensor alone: the Eigen copy goes.
  auto own = [](Affine& a) {
    a.w = torch::from_blob(a.weight.data(), {a.weight.rows(), a.weight.cols()}, torch::kFloat32).clone();
    a.weight.resize(0, 0);
  };
  for (auto* a : {&cond1, &cond2}) own(*a);
  for (auto& l : layers)
    for (auto* a : {&l.qkv, &l.self_out, &l.q, &l.kv, &l.cross_out, &l.ff1, &l.ff2}) own(*a);
  buffers_ = std::make_shared<Buffers>();
}

void FlowPolicy::check(const torch::Tensor& obs, const torch::Tensor* noise, int64_t noise_len) const {
  TORCH_CHECK(obs.defined() && obs.dim() == 3 && obs.size(1) == cond_horizon_ && obs.size(2) == cond_dim_ && obs.size(0) >= 1,
              "FlowPolicy: expected observations of shape (B, ", cond_horizon_, ", ", cond_dim_, "), got ",
              obs.defined() ? obs.sizes() : c10::IntArrayRef{});
  TORCH_CHECK(obs.scalar_type() == torch::kFloat32 && obs.device().is_cpu() && obs.is_contiguous(),
              "FlowPolicy: expected contiguous float32 observations on the CPU, got ", obs.scalar_type(), " on ", obs.device(),
              obs.is_contiguous() ? "" : " (not contiguous)");
  const int64_t batch = obs.size(0);
  if (noise) {
    TORCH_CHECK(noise->defined() && noise->dim() == 3 && noise->size(0) == batch && noise->size(1) == noise_len &&
                    noise->size(2) == action_dim_,
                "FlowPolicy: expected noise of shape (", batch, ", ", noise_len, ", ", action_dim_, "), got ",
                noise->defined() ? noise->sizes() : c10::IntArrayRef{});
    TORCH_CHECK(noise->scalar_type() == torch::kFloat32 && noise->device().is_cpu() && noise->is_contiguous(),
                "FlowPolicy: expected contiguous float32 noise on the CPU, got ", noise->scalar_type(), " on ", noise->device());
  }
  const float* p = obs.data_ptr<float>();
  for (int64_t i = 0; i < obs.numel(); ++i)
    TORCH_CHECK(std::isfinite(p[i]), "FlowPolicy: observation ", i / (cond_horizon_ * cond_dim_), " holds a non-finite value (",
                p[i], " at token ", (i / cond_dim_) % cond_horizon_, ", feature ", i % cond_dim_, ")");
}

FlowPolicy::BufferViews& FlowPolicy::reserve(int64_t batch) {
  auto& b = *buffers_;
  if (batch > b.capacity) {
    const int64_t rows = batch * horizon_, mem_rows = batch * cond_horizon_;
    const int64_t ff = layers.front().ff1.w.size(1);
    b.x.resize(rows, dim_), b.h.resize(rows, dim_), b.qkv.resize(rows, 3 * dim_), b.q.resize(rows, dim_), b.o.resize(rows, dim_);
    b.f.resize(rows, ff), b.a.resize(rows, action_dim_), b.v.resize(rows, action_dim_);
    b.mem.resize(mem_rows, dim_), b.mem_hidden.resize(mem_rows, cond1.w.size(1));
    b.kv.assign(layers.size(), Matrix(mem_rows, 2 * dim_));
    b.scores.resize(horizon_, std::max(horizon_, cond_horizon_ + 1));
    b.capacity = batch;
    b.views.clear();  // the storage moved
  }
  const auto found = b.views.find(batch);
  if (found != b.views.end()) return found->second;
  const int64_t rows = batch * horizon_, mem_rows = batch * cond_horizon_;
  auto view = [](Matrix& m, int64_t n) { return torch::from_blob(m.data(), {n, m.cols()}, torch::kFloat32); };
  BufferViews v{view(b.h, rows), view(b.qkv, rows), view(b.q, rows), view(b.o, rows), view(b.f, rows),
                   view(b.mem, mem_rows), view(b.mem_hidden, mem_rows), {}};
  for (auto& kv : b.kv) v.kv.push_back(view(kv, mem_rows));
  return b.views.emplace(batch, std::move(v)).first->second;
}

void FlowPolicy::encode(const float* observations, int64_t batch, BufferViews& views) {
  auto& b = *buffers_;
  const int64_t rows = batch * cond_horizon_;
  const Eigen::Map<const Matrix> z(observations, rows, cond_dim_);
  auto mem = b.mem.topRows(rows);
  mem.noalias() = z.lazyProduct(cond.weight);  // a depth of a few observation features
  for (int64_t r = 0; r < rows; ++r) mem.row(r) += cond_pos.row(r % cond_horizon_);
  apply(cond1, views.mem, views.mem_hidden);
  at::mish_(views.mem_hidden);
  apply(cond2, views.mem_hidden, views.mem);
  for (size_t l = 0; l < layers.size(); ++l) apply(layers[l].kv, views.mem, views.kv[l]);
}

void FlowPolicy::evaluate(int64_t batch, int64_t step, BufferViews& views) {
  auto& b = *buffers_;
  const int64_t t = horizon_, rows = batch * t, d = dim_, hd = dim_ / heads_, s_obs = cond_horizon_;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  auto x = b.x.topRows(rows);
  x.noalias() = b.a.topRows(rows).lazyProduct(input.weight);  // a depth of the action's few coordinates
  for (int64_t r = 0; r < rows; ++r) x.row(r) += input_pos.row(r % t);
  // softmax(q kᵀ·scale) v of one (batch element, head), keys [key0 (a single row, may be null); keys].
  auto attend = [&](const auto& q, const float* key0, const float* value0, const auto& keys, const auto& values, auto&& out) {
    const int64_t first = key0 ? 1 : 0, s = keys.rows() + first;
    auto logits = b.scores.topLeftCorner(q.rows(), s);
    // Products of a few rows: coefficient-wise (lazyProduct), not Eigen's blocked GEMM, whose set-up costs more
    // than their arithmetic; at batch 64 there are 512 of these per flow step.
    if (key0) logits.col(0).noalias() = q.lazyProduct(Eigen::Map<const Eigen::VectorXf>(key0, hd)) * scale;
    logits.rightCols(keys.rows()).noalias() = q.lazyProduct(keys.transpose()) * scale;
    for (int64_t i = 0; i < logits.rows(); ++i) {
      auto row = logits.row(i);
      row = (row.array() - row.maxCoeff()).exp();
      row /= row.sum();
    }
    out.noalias() = logits.rightCols(keys.rows()).lazyProduct(values);
    if (value0) out.noalias() += logits.col(0) * Eigen::Map<const Row>(value0, hd);
  };
  for (size_t l = 0; l < layers.size(); ++l) {
    const auto& L = layers[l];
    rms_normalise(b.x, b.h, rows, 1e-5);
    apply(L.qkv, views.h, views.qkv);
    for (int64_t i = 0; i < batch; ++i)
      for (int64_t h = 0; h < heads_; ++h)
        attend(b.qkv.block(i * t, h * hd, t, hd), nullptr, nullptr, b.qkv.block(i * t, d + h * hd, t, hd),
               b.qkv.block(i * t, 2 * d + h * hd, t, hd), b.o.block(i * t, h * hd, t, hd));
    apply(L.self_out, views.o, views.h);
    x += b.h.topRows(rows);
    rms_normalise(b.x, b.h, rows, 1e-5);
    apply(L.q, views.h, views.q);
    const auto& kv = b.kv[l];
    for (int64_t i = 0; i < batch; ++i)
      for (int64_t h = 0; h < heads_; ++h)
        attend(b.q.block(i * t, h * hd, t, hd), L.step_kv.row(step).data() + h * hd, L.step_kv.row(step).data() + d + h * hd,
               kv.block(i * s_obs, h * hd, s_obs, hd), kv.block(i * s_obs, d + h * hd, s_obs, hd), b.o.block(i * t, h * hd, t, hd));
    apply(L.cross_out, views.o, views.h);
    x += b.h.topRows(rows);
    rms_normalise(b.x, b.h, rows, 1e-5);
    apply(L.ff1, views.h, views.f);
    gelu(b.f.topRows(rows));
    apply(L.ff2, views.f, views.h);
    x += b.h.topRows(rows);
  }
  rms_normalise(b.x, b.h, rows, 1e-5);
  // A few output columns (the action's coordinates): OpenBLAS's small-matrix kernel allocates on each such call.
  auto v = b.v.topRows(rows);
  v.noalias() = b.h.topRows(rows).lazyProduct(head.weight);
  v.rowwise() += head.bias;
}

void FlowPolicy::act_into(const torch::Tensor& observations, const torch::Tensor& noise, torch::Tensor& out) {
  check(observations, &noise, horizon_);
  const int64_t batch = observations.size(0);
  TORCH_CHECK(out.defined() && out.dim() == 3 && out.size(0) == batch && out.size(1) == chunk_ && out.size(2) == action_dim_ &&
                  out.scalar_type() == torch::kFloat32 && out.device().is_cpu() && out.is_contiguous(),
              "FlowPolicy: expected out of shape (", batch, ", ", chunk_, ", ", action_dim_, "), contiguous float32 on the CPU, got ",
              out.defined() ? out.sizes() : c10::IntArrayRef{});
  auto& views = reserve(batch);
  auto& b = *buffers_;
  encode(observations.data_ptr<float>(), batch, views);
  const int64_t rows = batch * horizon_, n = options_.flow_steps();
  b.a.topRows(rows) = Eigen::Map<const Matrix>(noise.data_ptr<float>(), rows, action_dim_);
  for (int64_t j = 0; j < n; ++j) {
    evaluate(batch, j, views);
    if (options_.predicts_action()) b.a.topRows(rows) += (b.v.topRows(rows) - b.a.topRows(rows)) / static_cast<float>(n - j);
    else b.a.topRows(rows) += b.v.topRows(rows) / static_cast<float>(n);
  }
  float* o = out.data_ptr<float>();
  for (int64_t i = 0; i < batch; ++i)
    Eigen::Map<Matrix>(o + i * chunk_ * action_dim_, chunk_, action_dim_) = b.a.block(i * horizon_, 0, chunk_, action_dim_);
}

torch::Tensor FlowPolicy::act(const torch::Tensor& observations, const torch::Tensor& noise) {
  check(observations, &noise, horizon_);
  auto out = torch::empty({observations.size(0), chunk_, action_dim_});
  act_into(observations, noise, out);
  return out;
}

torch::Tensor FlowPolicy::velocity(const torch::Tensor& X, int64_t step, const torch::Tensor& observations) {
  check(observations, &X, horizon_);
  TORCH_CHECK(step >= 0 && step < options_.flow_steps(), "FlowPolicy: step must be between 0 and ", options_.flow_steps() - 1,
              ", got ", step);
  const int64_t batch = observations.size(0), rows = batch * horizon_;
  auto& views = reserve(batch);
  auto& b = *buffers_;
  encode(observations.data_ptr<float>(), batch, views);
  b.a.topRows(rows) = Eigen::Map<const Matrix>(X.data_ptr<float>(), rows, action_dim_);
  evaluate(batch, step, views);
  auto out = torch::empty({batch, horizon_, action_dim_});
  Eigen::Map<Matrix>(out.data_ptr<float>(), rows, action_dim_) = b.v.topRows(rows);
  return out;
}

}  // namespace symm::nn

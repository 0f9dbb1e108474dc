#include "symm/nn/cond_regressor.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

namespace symm::nn {

namespace {

/// RMS normalisation with a learnable per-feature scale (torch::nn::RMSNorm exists only in LibTorch >= 2.4).
class RMSNormImpl : public torch::nn::Cloneable<RMSNormImpl> {
 public:
  RMSNormImpl(int64_t dim, double eps) : dim_(dim), eps_(eps) { reset(); }
  void reset() override { weight = register_parameter("weight", torch::ones({dim_})); }
  torch::Tensor forward(const torch::Tensor& x) { return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps_) * weight; }
  torch::Tensor weight;

 private:
  int64_t dim_;
  double eps_;
};
TORCH_MODULE(RMSNorm);

torch::nn::AnyModule plain_norm(const std::string& kind, int64_t dim) {
  if (kind == "rmsnorm") return torch::nn::AnyModule(RMSNorm(dim, 1e-5));
  if (kind == "layernorm") return torch::nn::AnyModule(torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-5)));
  TORCH_CHECK(false, "CondTransformerRegressor: norm_module must be 'rmsnorm' or 'layernorm', got '", kind, "'");
}

Activation mish() { return Activation([](const torch::Tensor& x) { return torch::mish(x); }, "mish"); }

/// Checks the shapes shared by both regressors and returns the step as a (B) tensor of X's dtype and device.
torch::Tensor check_inputs(const char* module, const torch::Tensor& X, const torch::Tensor& k, const torch::Tensor& Z,
                           int64_t in_dim, int64_t cond_dim, int64_t in_horizon, int64_t cond_horizon) {
  TORCH_CHECK(X.defined() && X.dim() == 3 && X.size(2) == in_dim && X.size(1) >= 1 && X.size(1) <= in_horizon, module,
              ": expected X of shape (B, 1..", in_horizon, ", ", in_dim, "), got ", X.defined() ? X.sizes() : c10::IntArrayRef{});
  TORCH_CHECK(Z.defined() && Z.dim() == 3 && Z.size(2) == cond_dim && Z.size(1) >= 1 && Z.size(1) <= cond_horizon, module,
              ": expected Z of shape (B, 1..", cond_horizon, ", ", cond_dim, "), got ", Z.defined() ? Z.sizes() : c10::IntArrayRef{});
  TORCH_CHECK(X.size(0) == Z.size(0), module, ": X and Z must have the same batch size, got ", X.size(0), " and ", Z.size(0));
  TORCH_CHECK(X.is_floating_point() && X.scalar_type() == Z.scalar_type(), module,
              ": X and Z must be floating point of the same dtype, got ", X.scalar_type(), " and ", Z.scalar_type());
  const int64_t batch = X.size(0);
  TORCH_CHECK(k.defined() && (k.numel() == 1 || k.numel() == batch), module, ": the step k must be a scalar or hold one value per batch element (",
              batch, "), got ", k.defined() ? k.sizes() : c10::IntArrayRef{});
  return k.to(X.device(), X.scalar_type()).reshape({-1}).expand({batch});
}

/// Causal masks (true = not allowed): input token t sees input tokens ≤ t, and condition tokens s ≤ t + 1
/// (token 0 is the step, token s ≥ 1 the s-th observation).
std::pair<torch::Tensor, torch::Tensor> causal_masks(int64_t tx, int64_t tm, const torch::Device& device) {
  const auto opts = torch::TensorOptions().dtype(torch::kBool).device(device);
  const auto self = torch::ones({tx, tx}, opts).triu(1);
  const auto t = torch::arange(tx, torch::TensorOptions().device(device)).unsqueeze(1);
  const auto s = torch::arange(tm, torch::TensorOptions().device(device)).unsqueeze(0);
  return {self, s > t + 1};
}

}  // namespace

torch::Tensor sinusoidal_embedding(const torch::Tensor& k, int64_t dim) {
  const int64_t half = dim / 2;
  const auto opts = k.options();
  const double scale = half > 1 ? std::log(10000.0) / static_cast<double>(half - 1) : 0.0;
  const auto freq = torch::exp(torch::arange(half, opts) * -scale);
  const auto arg = k.reshape({-1, 1}) * freq.unsqueeze(0);
  auto emb = torch::cat({arg.sin(), arg.cos()}, -1);
  if (dim % 2) emb = torch::nn::functional::pad(emb, torch::nn::functional::PadFuncOptions({0, 1}));
  return emb;
}

// --- eCondTransformerRegressor ------------------------------------------------------------------------

eCondTransformerRegressorImpl::eCondTransformerRegressorImpl(eCondTransformerRegressorOptions options_)
    : options(std::move(options_)) {
  reset();
}

void eCondTransformerRegressorImpl::reset() {
  const auto& o = options;
  const auto& g = o.in_rep().group();
  TORCH_CHECK(g && o.cond_rep().group() && o.out_rep().group(), "eCondTransformerRegressor: in_rep, cond_rep and out_rep must be set");
  TORCH_CHECK(o.cond_rep().group() == g && o.out_rep().group() == g, "eCondTransformerRegressor: in_rep, cond_rep and out_rep must be of one group, got ",
              g->name(), ", ", o.cond_rep().group()->name(), " and ", o.out_rep().group()->name());
  TORCH_CHECK(o.embedding_dim() > 0 && o.embedding_dim() % g->order() == 0, "eCondTransformerRegressor: embedding_dim (",
              o.embedding_dim(), ") must be a positive multiple of |", g->name(), "| = ", g->order(), " (whole regular copies)");
  const int64_t copies = o.embedding_dim() / g->order();
  TORCH_CHECK(o.num_attention_heads() > 0 && copies % o.num_attention_heads() == 0, "eCondTransformerRegressor: embedding_dim ",
              o.embedding_dim(), " gives ", copies, " regular copies of ", g->name(), ", which num_attention_heads ",
              o.num_attention_heads(), " does not divide (each head owns whole copies)");
  TORCH_CHECK(o.in_horizon() > 0 && o.cond_horizon() > 0, "eCondTransformerRegressor: in_horizon and cond_horizon must be positive, got ",
              o.in_horizon(), " and ", o.cond_horizon());
  TORCH_CHECK(o.num_layers() > 0, "eCondTransformerRegressor: num_layers must be positive, got ", o.num_layers());
  TORCH_CHECK(o.num_cond_layers() >= 0, "eCondTransformerRegressor: num_cond_layers must be >= 0, got ", o.num_cond_layers());
  TORCH_CHECK(o.p_drop_emb() >= 0 && o.p_drop_emb() < 1 && o.p_drop_attn() >= 0 && o.p_drop_attn() < 1,
              "eCondTransformerRegressor: dropout probabilities must be in [0, 1), got ", o.p_drop_emb(), " and ", o.p_drop_attn());
  const int64_t dim = o.embedding_dim();
  embedding_rep_ = Representation::regular(g).copies(static_cast<int>(copies));
  invariant_basis_ = Constants({to_tensor(embedding_rep_.invariant_basis())});
  auto linear = [&](const Representation& in, const Representation& out) {
    return eLinear(eLinearOptions(in, out).init_scheme(o.init_scheme()));
  };
  input_emb = register_module("input_emb", linear(o.in_rep(), embedding_rep_));
  cond_emb = register_module("cond_emb", linear(o.cond_rep(), embedding_rep_));
  pos_emb = register_parameter("pos_emb", torch::zeros({1, o.in_horizon(), dim}));
  cond_pos_emb = register_parameter("cond_pos_emb", torch::zeros({1, o.cond_horizon() + 1, dim}));
  dropout = register_module("dropout", torch::nn::Dropout(o.p_drop_emb()));
  auto attention = [&] {
    return std::make_shared<eMultiheadAttentionImpl>(
        eMultiheadAttentionOptions(embedding_rep_, o.num_attention_heads()).dropout(o.p_drop_attn()).init_scheme(o.init_scheme()));
  };
  if (o.num_cond_layers() > 0) {
    eTransformerEncoderLayer layer(eTransformerEncoderLayerOptions(embedding_rep_, attention())
                                       .dim_feedforward(4 * dim)
                                       .dropout(o.p_drop_attn())
                                       .norm_first(true)
                                       .norm_module(o.norm_module())
                                       .init_scheme(o.init_scheme()));
    cond_encoder = register_module("cond_encoder", eTransformerEncoder(layer, o.num_cond_layers()));
  } else {
    cond_mlp = register_module("cond_mlp", eMLP(eMLPOptions(embedding_rep_, embedding_rep_, {4 * dim})
                                                    .activation(mish())
                                                    .init_scheme(o.init_scheme())));
  }
  decoder = register_module("decoder", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.num_layers(); ++i)
    decoder->push_back(eTransformerDecoderLayer(eTransformerDecoderLayerOptions(embedding_rep_, attention(), attention())
                                                    .dim_feedforward(4 * dim)
                                                    .dropout(o.p_drop_attn())
                                                    .norm_first(true)
                                                    .norm_module(o.norm_module())
                                                    .init_scheme(o.init_scheme())));
  norm = make_norm(o.norm_module(), embedding_rep_, 1e-5, true);
  register_module("norm", norm.ptr());
  head = register_module("head", linear(embedding_rep_, o.out_rep()));
}

void eCondTransformerRegressorImpl::reset_parameters() {
  reset_equivariant_parameters(*this);
  torch::NoGradGuard no_grad;
  pos_emb.zero_();
  cond_pos_emb.zero_();
}

torch::Tensor eCondTransformerRegressorImpl::project_invariant(const torch::Tensor& x) const {
  const auto& basis = invariant_basis_.get(x)[0];
  return torch::matmul(torch::matmul(x, basis), basis.t());
}

torch::Tensor eCondTransformerRegressorImpl::forward(const torch::Tensor& X, double k, const torch::Tensor& Z) {
  return forward(X, torch::tensor(k), Z);
}

torch::Tensor eCondTransformerRegressorImpl::forward(const torch::Tensor& X, const torch::Tensor& k, const torch::Tensor& Z) {
  const auto& o = options;
  const auto steps = check_inputs("eCondTransformerRegressor", X, k, Z, o.in_rep().size(), o.cond_rep().size(),
                                  o.in_horizon(), o.cond_horizon());
  const int64_t dim = o.embedding_dim(), tx = X.size(1), tz = Z.size(1);
  // Condition tokens: the step (invariant), then the embedded observations; invariant positions on both.
  const auto step_token = project_invariant(sinusoidal_embedding(steps, dim)).unsqueeze(1);
  auto cond = torch::cat({step_token, cond_emb->forward(Z)}, 1);
  cond = dropout->forward(cond + project_invariant(cond_pos_emb.narrow(1, 0, tz + 1)));
  cond = cond_encoder ? cond_encoder->forward(cond) : cond_mlp->forward(cond);
  auto x = dropout->forward(input_emb->forward(X) + project_invariant(pos_emb.narrow(1, 0, tx)));
  torch::Tensor self_mask, cross_mask;
  if (o.causal_attn()) std::tie(self_mask, cross_mask) = causal_masks(tx, tz + 1, X.device());
  for (auto& layer : *decoder) x = layer->as<eTransformerDecoderLayerImpl>()->forward(x, cond, self_mask, cross_mask);
  return head->forward(norm.forward(x));
}

EquivarianceError eCondTransformerRegressorImpl::check_equivariance(int64_t batch_size, int64_t in_len, int64_t cond_len,
                                                                    int samples, double atol, double rtol) {
  const auto& o = options;
  in_len = in_len > 0 ? std::min(in_len, o.in_horizon()) : o.in_horizon();
  cond_len = cond_len > 0 ? std::min(cond_len, o.cond_horizon()) : o.cond_horizon();
  const bool was_training = is_training();
  eval();
  torch::NoGradGuard no_grad;
  const auto like = pos_emb;
  auto gen = at::detail::createCPUGenerator(0x5eed);
  auto draw = [&](std::vector<int64_t> shape) { return torch::randn(shape, gen, torch::kFloat64).to(like.options()); };
  const auto X = draw({batch_size, in_len, o.in_rep().size()});
  const auto Z = draw({batch_size, cond_len, o.cond_rep().size()});
  const auto k = torch::rand({batch_size}, gen, torch::kFloat64).mul(100).to(like.options());
  const auto y = forward(X, k, Z);
  const double scale = std::max(y.abs().max().item<double>(), 1e-30);
  EquivarianceError err;
  for (int g : elements_to_check(*o.in_rep().group(), samples)) {
    const auto expected = act(o.out_rep(), g, y);
    const auto diff = (forward(act(o.in_rep(), g, X), k, act(o.cond_rep(), g, Z)) - expected).abs();
    const double worst = diff.max().item<double>();
    if (worst > err.max_absolute) err.max_absolute = worst, err.worst_element = g;
    const double excess = (diff - atol - rtol * expected.abs()).max().item<double>();
    if (excess > 0) {
      if (was_training) train();
      TORCH_CHECK(false, "eCondTransformerRegressor: not equivariant for group element ", g, ": max |f(gX, k, gZ) - g f(X, k, Z)| = ",
                  worst, " exceeds atol ", atol, " + rtol ", rtol, " * |g f|");
    }
  }
  err.max_relative = err.max_absolute / scale;
  if (was_training) train();
  return err;
}

void eCondTransformerRegressorImpl::pretty_print(std::ostream& stream) const {
  const auto& o = options;
  stream << "symm::nn::eCondTransformerRegressor(in=" << o.in_rep().name() << ", cond=" << o.cond_rep().name()
         << ", out=" << o.out_rep().name() << ", embedding=" << embedding_rep_.name() << ", layers=" << o.num_layers()
         << ", cond_layers=" << o.num_cond_layers() << ", heads=" << o.num_attention_heads()
         << ", causal=" << (o.causal_attn() ? "true" : "false") << ", norm=" << o.norm_module() << ")";
}

// --- the plain twin ----------------------------------------------------------------------------------

PreNormBlockImpl::PreNormBlockImpl(int64_t dim_, int64_t heads_, int64_t dim_feedforward_, double dropout_, bool cross_,
                                   std::string norm_module_)
    : dim(dim_), heads(heads_), dim_feedforward(dim_feedforward_), p_dropout(dropout_), cross(cross_),
      norm_module(std::move(norm_module_)) {
  reset();
}

void PreNormBlockImpl::reset() {
  auto mha = [&] { return torch::nn::MultiheadAttention(torch::nn::MultiheadAttentionOptions(dim, heads).dropout(p_dropout)); };
  self_attn = register_module("self_attn", mha());
  if (cross) cross_attn = register_module("cross_attn", mha());
  linear1 = register_module("linear1", torch::nn::Linear(dim, dim_feedforward));
  linear2 = register_module("linear2", torch::nn::Linear(dim_feedforward, dim));
  norm1 = plain_norm(norm_module, dim), norm2 = plain_norm(norm_module, dim);
  register_module("norm1", norm1.ptr());
  register_module("norm2", norm2.ptr());
  if (cross) {
    norm3 = plain_norm(norm_module, dim);
    register_module("norm3", norm3.ptr());
  }
  dropout = register_module("dropout", torch::nn::Dropout(p_dropout));
}

torch::Tensor PreNormBlockImpl::forward(const torch::Tensor& x_, const torch::Tensor& memory, const torch::Tensor& self_mask,
                                        const torch::Tensor& cross_mask) {
  // torch::nn::MultiheadAttention is sequence-first.
  auto attend = [&](torch::nn::MultiheadAttention& attn, const torch::Tensor& q, const torch::Tensor& kv, const torch::Tensor& mask) {
    const auto kv_t = kv.transpose(0, 1);
    // LibTorch 1.13's C++ attention adds the mask to the logits whatever its dtype: pass −inf where not allowed.
    const auto additive = mask.defined() ? torch::zeros(mask.sizes(), q.options()).masked_fill(mask, -INFINITY) : mask;
    return std::get<0>(attn->forward(q.transpose(0, 1), kv_t, kv_t, {}, /*need_weights=*/false, additive)).transpose(0, 1);
  };
  auto x = x_;
  auto h = norm1.forward(x);
  x = x + dropout->forward(attend(self_attn, h, h, self_mask));
  auto* ff_norm = &norm2;
  if (cross) {
    x = x + dropout->forward(attend(cross_attn, norm2.forward(x), memory, cross_mask));
    ff_norm = &norm3;
  }
  return x + dropout->forward(linear2->forward(dropout->forward(torch::gelu(linear1->forward(ff_norm->forward(x))))));
}

CondTransformerRegressorImpl::CondTransformerRegressorImpl(CondTransformerRegressorOptions options_) : options(std::move(options_)) {
  reset();
}

void CondTransformerRegressorImpl::reset() {
  const auto& o = options;
  TORCH_CHECK(o.in_dim() > 0 && o.cond_dim() > 0 && o.out_dim() > 0, "CondTransformerRegressor: in_dim, cond_dim and out_dim must be positive");
  TORCH_CHECK(o.embedding_dim() > 0 && o.num_attention_heads() > 0 && o.embedding_dim() % o.num_attention_heads() == 0,
              "CondTransformerRegressor: embedding_dim (", o.embedding_dim(), ") must be a positive multiple of num_attention_heads (",
              o.num_attention_heads(), ")");
  TORCH_CHECK(o.in_horizon() > 0 && o.cond_horizon() > 0, "CondTransformerRegressor: in_horizon and cond_horizon must be positive");
  TORCH_CHECK(o.num_layers() > 0 && o.num_cond_layers() >= 0, "CondTransformerRegressor: num_layers must be positive and num_cond_layers >= 0");
  TORCH_CHECK(o.p_drop_emb() >= 0 && o.p_drop_emb() < 1 && o.p_drop_attn() >= 0 && o.p_drop_attn() < 1,
              "CondTransformerRegressor: dropout probabilities must be in [0, 1)");
  const int64_t dim = o.embedding_dim();
  input_emb = register_module("input_emb", torch::nn::Linear(o.in_dim(), dim));
  cond_emb = register_module("cond_emb", torch::nn::Linear(o.cond_dim(), dim));
  pos_emb = register_parameter("pos_emb", torch::zeros({1, o.in_horizon(), dim}));
  cond_pos_emb = register_parameter("cond_pos_emb", torch::zeros({1, o.cond_horizon() + 1, dim}));
  dropout = register_module("dropout", torch::nn::Dropout(o.p_drop_emb()));
  if (o.num_cond_layers() > 0) {
    cond_encoder = register_module("cond_encoder", torch::nn::ModuleList());
    for (int64_t i = 0; i < o.num_cond_layers(); ++i)
      cond_encoder->push_back(PreNormBlock(dim, o.num_attention_heads(), 4 * dim, o.p_drop_attn(), false, o.norm_module()));
  } else {
    cond_mlp = register_module("cond_mlp", torch::nn::Sequential(torch::nn::Linear(dim, 4 * dim), torch::nn::Mish(),
                                                                 torch::nn::Linear(4 * dim, dim)));
  }
  decoder = register_module("decoder", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.num_layers(); ++i)
    decoder->push_back(PreNormBlock(dim, o.num_attention_heads(), 4 * dim, o.p_drop_attn(), true, o.norm_module()));
  norm = plain_norm(o.norm_module(), dim);
  register_module("norm", norm.ptr());
  head = register_module("head", torch::nn::Linear(dim, o.out_dim()));
}

void CondTransformerRegressorImpl::reset_parameters() {
  for (auto& m : modules(/*include_self=*/false))
    if (auto* lin = dynamic_cast<torch::nn::LinearImpl*>(m.get())) lin->reset_parameters();
  torch::NoGradGuard no_grad;
  pos_emb.zero_();
  cond_pos_emb.zero_();
}

torch::Tensor CondTransformerRegressorImpl::forward(const torch::Tensor& X, double k, const torch::Tensor& Z) {
  return forward(X, torch::tensor(k), Z);
}

torch::Tensor CondTransformerRegressorImpl::forward(const torch::Tensor& X, const torch::Tensor& k, const torch::Tensor& Z) {
  const auto& o = options;
  const auto steps = check_inputs("CondTransformerRegressor", X, k, Z, o.in_dim(), o.cond_dim(), o.in_horizon(), o.cond_horizon());
  const int64_t tx = X.size(1), tz = Z.size(1);
  auto cond = torch::cat({sinusoidal_embedding(steps, o.embedding_dim()).unsqueeze(1), cond_emb->forward(Z)}, 1);
  cond = dropout->forward(cond + cond_pos_emb.narrow(1, 0, tz + 1));
  if (cond_encoder) {
    for (auto& layer : *cond_encoder) cond = layer->as<PreNormBlockImpl>()->forward(cond);
  } else {
    cond = cond_mlp->forward(cond);
  }
  auto x = dropout->forward(input_emb->forward(X) + pos_emb.narrow(1, 0, tx));
  torch::Tensor self_mask, cross_mask;
  if (o.causal_attn()) std::tie(self_mask, cross_mask) = causal_masks(tx, tz + 1, X.device());
  for (auto& layer : *decoder) x = layer->as<PreNormBlockImpl>()->forward(x, cond, self_mask, cross_mask);
  return head->forward(norm.forward(x));
}

void CondTransformerRegressorImpl::pretty_print(std::ostream& stream) const {
  const auto& o = options;
  stream << "symm::nn::CondTransformerRegressor(in=" << o.in_dim() << ", cond=" << o.cond_dim() << ", out=" << o.out_dim()
         << ", embedding=" << o.embedding_dim() << ", layers=" << o.num_layers() << ", cond_layers=" << o.num_cond_layers()
         << ", heads=" << o.num_attention_heads() << ", causal=" << (o.causal_attn() ? "true" : "false") << ", norm=" << o.norm_module()
         << ")";
}

}  // namespace symm::nn

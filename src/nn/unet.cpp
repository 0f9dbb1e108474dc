#include "symm/nn/unet.h"

#include <algorithm>
#include <cmath>

#include "symm/group/group.h"

namespace symm::nn {

namespace {

torch::IntArrayRef sizes_of(const torch::Tensor& t) { return t.defined() ? t.sizes() : torch::IntArrayRef{}; }

// Timesteps as symm_learning takes them (a scalar, (1) or (B)), broadcast to (B) in the sample's dtype.
torch::Tensor batch_timesteps(const char* name, const torch::Tensor& t, const torch::Tensor& sample) {
  const auto b = sample.size(0);
  TORCH_CHECK(t.defined() && (t.dim() == 0 || (t.dim() == 1 && (t.size(0) == 1 || t.size(0) == b))), name,
              ": expected a timestep that is a scalar, (1) or (", b, "), got shape ", sizes_of(t));
  return t.reshape({-1}).to(sample.device(), sample.scalar_type()).expand({b});
}

void check_sample(const char* name, const torch::Tensor& x, int64_t channels, int64_t multiple) {
  TORCH_CHECK(x.defined() && x.dim() == 3 && x.size(1) == channels, name, ": expected a sample (B, ", channels, ", L), got ",
              sizes_of(x));
  TORCH_CHECK(x.size(2) > 0 && x.size(2) % multiple == 0, name, ": the horizon L must be a positive multiple of ", multiple,
              " (each of the down-samplings halves it and the decoder doubles it back), got L = ", x.size(2));
}

void check_levels(const char* name, const std::vector<int64_t>& dims, int64_t step_dim, int64_t kernel_size) {
  TORCH_CHECK(!dims.empty(), name, ": down_dims must hold at least one level");
  for (auto d : dims) TORCH_CHECK(d > 0, name, ": down_dims must be positive, got ", d);
  TORCH_CHECK(step_dim >= 2 && step_dim % 2 == 0, name, ": diffusion_step_embed_dim must be even and >= 2 (sin and cos halves), got ",
              step_dim);
  TORCH_CHECK(kernel_size > 0 && kernel_size % 2 == 1, name,
              ": kernel_size must be odd (padding kernel_size/2 keeps the horizon), got ", kernel_size);
}

torch::nn::Sequential step_encoder(int64_t d) {
  return torch::nn::Sequential(SinusoidalPosEmb(d), torch::nn::Linear(d, 4 * d), torch::nn::Mish(), torch::nn::Linear(4 * d, d));
}

// eRMSNorm over the channel axis of (B, C, L).
torch::Tensor channel_norm(eRMSNorm& norm, const torch::Tensor& x) {
  return norm ? norm->forward(x.transpose(1, 2)).transpose(1, 2) : x;
}

eConditionalResidualBlock1DImpl& block(torch::nn::ModuleList& list, size_t i) {
  return list->at<eConditionalResidualBlock1DImpl>(i);
}

// A level's down- or up-sampler, the third entry of its ModuleList. The list holds it type-erased (and
// clone() replaces the entries, so no typed handle may be kept beside it): these are the types the two
// U-Nets build; an identity stands at the levels that keep the horizon.
torch::Tensor resample(torch::nn::Module& m, const torch::Tensor& x) {
  if (auto* c = m.as<eConv1dImpl>()) return c->forward(x);
  if (auto* c = m.as<eConvTranspose1dImpl>()) return c->forward(x);
  if (auto* c = m.as<Downsample1dImpl>()) return c->forward(x);
  if (auto* c = m.as<Upsample1dImpl>()) return c->forward(x);
  if (auto* p = m.as<torch::nn::MaxPool1dImpl>()) return p->forward(x);
  if (auto* u = m.as<torch::nn::UpsampleImpl>()) return u->forward(x);
  TORCH_CHECK(m.as<torch::nn::IdentityImpl>(), "U-Net: unexpected resampler ", m.name());
  return x;
}

/// The levels of both U-Nets: each encoder level two Blocks (`after_first`, if defined, added after the very
/// first) and a downsampler, keeping its output as a skip; the middle blocks; each decoder level the input
/// joined with the skips in reverse, two Blocks and an upsampler.
template <typename Block>
torch::Tensor unet_levels(torch::nn::ModuleListImpl& down, torch::nn::ModuleListImpl& mid, torch::nn::ModuleListImpl& up,
                          torch::Tensor x, const torch::Tensor& cond, const torch::Tensor& after_first) {
  std::vector<torch::Tensor> skips;
  for (size_t i = 0; i < down.size(); ++i) {
    const auto level = down[i]->as<torch::nn::ModuleListImpl>();
    x = level->at<Block>(0).forward(x, cond);
    if (i == 0 && after_first.defined()) x = x + after_first;
    x = level->at<Block>(1).forward(x, cond);
    skips.push_back(x);
    x = resample(level->at<torch::nn::Module>(2), x);
  }
  for (const auto& m : mid) x = m->as<Block>()->forward(x, cond);
  for (size_t i = 0; i < up.size(); ++i) {
    const auto level = up[i]->as<torch::nn::ModuleListImpl>();
    x = torch::cat({x, skips[skips.size() - 1 - i]}, 1);
    x = level->at<Block>(0).forward(x, cond);
    x = level->at<Block>(1).forward(x, cond);
    x = resample(level->at<torch::nn::Module>(2), x);
  }
  return x;
}

}  // namespace

namespace functional {
torch::Tensor sinusoidal_pos_emb(const torch::Tensor& t, int64_t dim) {
  TORCH_CHECK(dim >= 2 && dim % 2 == 0, "sinusoidal_pos_emb: dim must be even and >= 2, got ", dim);
  TORCH_CHECK(t.defined() && t.dim() == 1, "sinusoidal_pos_emb: expected timesteps (B), got ", sizes_of(t));
  const auto x = t.is_floating_point() ? t : t.to(torch::get_default_dtype());
  const int64_t half = dim / 2;
  const double step = std::log(10000.0) / std::max<int64_t>(half - 1, 1);
  const auto freq = torch::exp(torch::arange(half, x.options()) * -step);
  const auto arg = x.unsqueeze(1) * freq.unsqueeze(0);
  return torch::cat({arg.sin(), arg.cos()}, -1);
}
}  // namespace functional

SinusoidalPosEmbImpl::SinusoidalPosEmbImpl(int64_t dim_) : dim(dim_) {
  TORCH_CHECK(dim >= 2 && dim % 2 == 0, "SinusoidalPosEmb: dim must be even and >= 2, got ", dim);
}

// ---------------------------------------------------------------------------------------------------------

eConditionalResidualBlock1DImpl::eConditionalResidualBlock1DImpl(eConditionalResidualBlock1DOptions options_)
    : options(std::move(options_)) {
  reset();
}

void eConditionalResidualBlock1DImpl::reset() {
  const auto& o = options;
  const auto& g = o.in_rep().group();
  TORCH_CHECK(g && o.out_rep().group() && o.cond_rep().group(), "eConditionalResidualBlock1D: in_rep, out_rep and cond_rep must be set");
  TORCH_CHECK(o.out_rep().group() == g && o.cond_rep().group() == g, "eConditionalResidualBlock1D: in_rep, out_rep and cond_rep must "
              "be of one group, got ", g->name(), ", ", o.out_rep().group()->name(), " and ", o.cond_rep().group()->name());
  TORCH_CHECK(o.cond_predict_scale(), "eConditionalResidualBlock1D: only cond_predict_scale=true is supported (as symm_learning)");
  TORCH_CHECK(o.kernel_size() > 0 && o.kernel_size() % 2 == 1,
              "eConditionalResidualBlock1D: kernel_size must be odd (padding kernel_size/2 keeps the horizon), got ", o.kernel_size());
  int copies = 0;
  TORCH_CHECK(o.out_rep().is_regular_copies(&copies) &&
                  symm::group::same_representation(o.out_rep(), Representation::regular(g).copies(copies)),
              "eConditionalResidualBlock1D: out_rep must be regular copies in the permutation basis (the activation is "
              "pointwise), got ", o.out_rep().name());
  const auto conv = [&](const Representation& in, const Representation& out, int64_t k) {
    return eConv1d(eConv1dOptions(in, out, k).padding(k / 2).init_scheme(o.init_scheme()));
  };
  conv1 = register_module("conv1", conv(o.in_rep(), o.out_rep(), o.kernel_size()));
  conv2 = register_module("conv2", conv(o.out_rep(), o.out_rep(), o.kernel_size()));
  if (o.normalize()) {
    norm1 = register_module("norm1", eRMSNorm(eRMSNormOptions(o.out_rep()).eps(1e-6)));
    norm2 = register_module("norm2", eRMSNorm(eRMSNormOptions(o.out_rep()).eps(1e-6)));
  }
  affine = register_module("affine", eAffine(eAffineOptions(o.out_rep()).learnable(false)));
  IrrepSubspaceNormPooling pool(o.cond_rep());
  cond_encoder = register_module(
      "cond_encoder", torch::nn::Sequential(pool, torch::nn::Linear(pool->out_rep().size(), film_dims()), torch::nn::Mish()));
  if (!symm::group::same_representation(o.in_rep(), o.out_rep()))
    residual_conv = register_module("residual_conv", conv(o.in_rep(), o.out_rep(), 1));
}

void eConditionalResidualBlock1DImpl::reset_parameters() {
  conv1->reset_parameters();
  conv2->reset_parameters();
  if (norm1) norm1->reset_parameters(), norm2->reset_parameters();
  cond_encoder[1]->as<torch::nn::LinearImpl>()->reset_parameters();
  if (residual_conv) residual_conv->reset_parameters();
}

torch::Tensor eConditionalResidualBlock1DImpl::forward(const torch::Tensor& x, const torch::Tensor& cond) {
  const auto& o = options;
  TORCH_CHECK(x.defined() && x.dim() == 3 && x.size(1) == o.in_rep().size(), "eConditionalResidualBlock1D: expected an input (B, ",
              o.in_rep().size(), ", L), got ", sizes_of(x));
  TORCH_CHECK(cond.defined() && cond.dim() == 2 && cond.size(0) == x.size(0) && cond.size(1) == o.cond_rep().size(),
              "eConditionalResidualBlock1D: expected a condition (", x.size(0), ", ", o.cond_rep().size(), "), got ", sizes_of(cond));
  auto h = o.activation()(channel_norm(norm1, conv1(x)));
  // FiLM: the parameters depend on the condition only through its irrep norms, hence are invariant.
  const auto film = cond_encoder->forward(cond).unsqueeze(1);  // (B, 1, film_dims): broadcast over time
  const auto nc = affine->num_copies();
  const auto bias = affine->num_fix() > 0 ? film.narrow(2, nc, affine->num_fix()) : torch::Tensor();
  h = affine->forward(h.transpose(1, 2), film.narrow(2, 0, nc), bias).transpose(1, 2);
  h = o.activation()(channel_norm(norm2, conv2(h)));
  return h + (residual_conv ? residual_conv(x) : x);
}

void eConditionalResidualBlock1DImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eConditionalResidualBlock1D(in=" << options.in_rep().name() << ", out=" << options.out_rep().name()
         << ", cond=" << options.cond_rep().name() << ", kernel_size=" << options.kernel_size()
         << ", normalize=" << (options.normalize() ? "true" : "false") << ")";
}

// ---------------------------------------------------------------------------------------------------------

eConditionalUnet1DImpl::eConditionalUnet1DImpl(eConditionalUnet1DOptions options_) : options(std::move(options_)) { reset(); }

void eConditionalUnet1DImpl::reset() {
  const auto& o = options;
  const auto& g = o.in_rep().group();
  TORCH_CHECK(g, "eConditionalUnet1D: in_rep must be set");
  check_levels("eConditionalUnet1D", o.down_dims(), o.diffusion_step_embed_dim(), o.kernel_size());
  TORCH_CHECK(o.downsample() == "stride" || o.downsample() == "pooling", "eConditionalUnet1D: downsample must be 'stride' or "
              "'pooling', got '", o.downsample(), "'");
  for (const auto* rep : {&o.local_cond_rep(), &o.global_cond_rep()})
    TORCH_CHECK(!*rep || (*rep)->group() == g, "eConditionalUnet1D: the condition representations must be of in_rep's group ",
                g->name(), ", got ", (*rep)->group() ? (*rep)->group()->name() : std::string("none"));
  const bool stride = o.downsample() == "stride";

  hidden_rep_ = hidden_regular("eConditionalUnet1D", g, o.hidden_rep());
  std::vector<Representation> reps{o.in_rep()};
  for (auto d : o.down_dims()) reps.push_back(regular_copies(hidden_rep_, d));
  const auto steps = Representation::trivial(g, static_cast<int>(o.diffusion_step_embed_dim()));
  cond_rep_ = o.global_cond_rep() ? direct_sum(*o.global_cond_rep(), steps) : steps;

  diffusion_step_encoder = register_module("diffusion_step_encoder", step_encoder(o.diffusion_step_embed_dim()));
  const auto res = [&](const Representation& in, const Representation& out) {
    return eConditionalResidualBlock1D(eConditionalResidualBlock1DOptions(in, out, cond_rep_)
                                           .kernel_size(o.kernel_size()).cond_predict_scale(o.cond_predict_scale())
                                           .activation(o.activation()).normalize(o.normalize()).init_scheme(o.init_scheme()));
  };
  const auto conv_opts = [&](const Representation& rep) {
    return eConv1dOptions(rep, rep, 3).stride(2).padding(1).init_scheme(o.init_scheme());
  };
  if (o.local_cond_rep()) {
    local_cond_encoder = register_module("local_cond_encoder", torch::nn::ModuleList(res(*o.local_cond_rep(), reps[1]),
                                                                                      res(*o.local_cond_rep(), reps[1])));
  } else {
    local_cond_encoder = nullptr;
  }
  mid_modules = register_module("mid_modules", torch::nn::ModuleList(res(reps.back(), reps.back()), res(reps.back(), reps.back())));

  const size_t levels = o.down_dims().size();
  down_modules = register_module("down_modules", torch::nn::ModuleList());
    for (size_t i = 0; i < levels; ++i) {
    torch::nn::AnyModule down;
    if (i + 1 == levels) down = torch::nn::AnyModule(torch::nn::Identity());
    else if (stride) down = torch::nn::AnyModule(eConv1d(conv_opts(reps[i + 1])));
    else down = torch::nn::AnyModule(torch::nn::MaxPool1d(torch::nn::MaxPool1dOptions(2).stride(2)));
    torch::nn::ModuleList level(res(reps[i], reps[i + 1]), res(reps[i + 1], reps[i + 1]));
    level->push_back(down.ptr());
    down_modules->push_back(level);
  }
  // Decoder: levels−1 stages, deepest first, each undoing one down-sampling (skip of level 0 unused, as in
  // the diffusion-policy original).
  up_modules = register_module("up_modules", torch::nn::ModuleList());
    for (size_t i = levels - 1; i >= 1; --i) {
    const auto& target = reps[i];
    torch::nn::AnyModule up;
    if (stride) up = torch::nn::AnyModule(eConvTranspose1d(conv_opts(target).output_padding(1)));  // exactly 2L
    else up = torch::nn::AnyModule(torch::nn::Upsample(
        torch::nn::UpsampleOptions().scale_factor(std::vector<double>{2}).mode(torch::kNearest)));
    // x arrives in reps[i + 1] (the mid blocks' or the deeper stage's output), the skip of level i likewise.
    torch::nn::ModuleList level(res(direct_sum(reps[i + 1], reps[i + 1]), target), res(target, target));
    level->push_back(up.ptr());
    up_modules->push_back(level);
  }
  final_conv = register_module("final_conv", eConv1d(eConv1dOptions(reps[1], reps[1], o.kernel_size())
                                                          .padding(o.kernel_size() / 2).init_scheme(o.init_scheme())));
  if (o.normalize()) final_norm = register_module("final_norm", eRMSNorm(eRMSNormOptions(reps[1]).eps(1e-6)));
  else final_norm = nullptr;
  final_proj = register_module("final_proj", eConv1d(eConv1dOptions(reps[1], o.in_rep(), 1).init_scheme(o.init_scheme())));
}

void eConditionalUnet1DImpl::reset_parameters() {
  // Every learned tensor lives in one of these (the FiLM eAffine is not learnable).
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* c = m->as<eConv1dImpl>()) c->reset_parameters();
    if (auto* c = m->as<eConvTranspose1dImpl>()) c->reset_parameters();
    if (auto* n = m->as<eRMSNormImpl>()) n->reset_parameters();
    if (auto* l = m->as<torch::nn::LinearImpl>()) l->reset_parameters();
  }
}

torch::Tensor eConditionalUnet1DImpl::forward(const torch::Tensor& sample, const torch::Tensor& timestep,
                                              const torch::Tensor& local_cond, const torch::Tensor& film_cond) {
  const auto& o = options;
  const char* name = "eConditionalUnet1D";
  check_sample(name, sample, o.in_rep().size(), horizon_multiple());
  const auto b = sample.size(0), horizon = sample.size(2);
  if (o.global_cond_rep()) {
    TORCH_CHECK(film_cond.defined() && film_cond.dim() == 2 && film_cond.size(0) == b && film_cond.size(1) == o.global_cond_rep()->size(),
                name, ": expected a film_cond (", b, ", ", o.global_cond_rep()->size(), ") for global_cond_rep ",
                o.global_cond_rep()->name(), ", got ", sizes_of(film_cond));
  } else {
    TORCH_CHECK(!film_cond.defined(), name, ": a film_cond was given but the model has no global_cond_rep");
  }
  TORCH_CHECK(!local_cond.defined() || o.local_cond_rep(), name, ": a local_cond was given but the model has no local_cond_rep");
  if (local_cond.defined())
    TORCH_CHECK(local_cond.dim() == 3 && local_cond.size(0) == b && local_cond.size(1) == o.local_cond_rep()->size() &&
                    local_cond.size(2) == horizon,
                name, ": expected a local_cond (", b, ", ", o.local_cond_rep()->size(), ", ", horizon, "), got ", local_cond.sizes());

  const auto steps = diffusion_step_encoder->forward(batch_timesteps(name, timestep, sample));
  const auto cond = film_cond.defined() ? torch::cat({film_cond, steps}, -1) : steps;

  std::vector<torch::Tensor> local;  // added after the first encoder block and after the decoder
  if (local_cond.defined()) {
    for (size_t i = 0; i < 2; ++i) local.push_back(block(local_cond_encoder, i).forward(local_cond, cond));
  }
  auto x = unet_levels<eConditionalResidualBlock1DImpl>(*down_modules, *mid_modules, *up_modules, sample, cond,
                                                       local.empty() ? torch::Tensor() : local[0]);
  if (!local.empty()) x = x + local[1];
  x = o.activation()(channel_norm(final_norm, final_conv(x)));
  return final_proj(x);
}

void eConditionalUnet1DImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eConditionalUnet1D(in=" << options.in_rep().name();
  if (options.local_cond_rep()) stream << ", local_cond=" << options.local_cond_rep()->name();
  if (options.global_cond_rep()) stream << ", global_cond=" << options.global_cond_rep()->name();
  stream << ", step_embed=" << options.diffusion_step_embed_dim() << ", down_dims=[";
  for (size_t i = 0; i < options.down_dims().size(); ++i) stream << (i ? ", " : "") << options.down_dims()[i];
  stream << "], downsample=" << options.downsample() << ")";
}

// ---------------------------------------------------------------------------------------------------------

Conv1dBlockImpl::Conv1dBlockImpl(int64_t in, int64_t out, int64_t k, int64_t groups)
    : in_channels(in), out_channels(out), kernel_size(k), n_groups(groups) {
  reset();
}

void Conv1dBlockImpl::reset() {
  TORCH_CHECK(n_groups > 0 && out_channels % n_groups == 0, "Conv1dBlock: n_groups=", n_groups,
              " must divide the GroupNorm's ", out_channels, " channels");
  block = register_module("block", torch::nn::Sequential(
                                       torch::nn::Conv1d(torch::nn::Conv1dOptions(in_channels, out_channels, kernel_size).padding(kernel_size / 2)),
                                       torch::nn::GroupNorm(n_groups, out_channels), torch::nn::Mish()));
}

void Downsample1dImpl::reset() {
  conv = register_module("conv", torch::nn::Conv1d(torch::nn::Conv1dOptions(dim, dim, 3).stride(2).padding(1)));
}

void Upsample1dImpl::reset() {
  conv = register_module("conv", torch::nn::ConvTranspose1d(torch::nn::ConvTranspose1dOptions(dim, dim, 4).stride(2).padding(1)));
}

ConditionalResidualBlock1DImpl::ConditionalResidualBlock1DImpl(ConditionalResidualBlock1DOptions options_)
    : options(std::move(options_)) {
  reset();
}

void ConditionalResidualBlock1DImpl::reset() {
  const auto& o = options;
  TORCH_CHECK(o.in_channels() > 0 && o.out_channels() > 0 && o.cond_dim() > 0, "ConditionalResidualBlock1D: expected positive "
              "widths, got in_channels=", o.in_channels(), ", out_channels=", o.out_channels(), ", cond_dim=", o.cond_dim());
  TORCH_CHECK(o.kernel_size() > 0 && o.kernel_size() % 2 == 1,
              "ConditionalResidualBlock1D: kernel_size must be odd (padding kernel_size/2 keeps the horizon), got ", o.kernel_size());
  blocks = register_module("blocks", torch::nn::ModuleList(Conv1dBlock(o.in_channels(), o.out_channels(), o.kernel_size(), o.n_groups()),
                                                           Conv1dBlock(o.out_channels(), o.out_channels(), o.kernel_size(), o.n_groups())));
  const auto film = o.out_channels() * (o.cond_predict_scale() ? 2 : 1);
  cond_encoder = register_module("cond_encoder", torch::nn::Sequential(torch::nn::Linear(o.cond_dim(), film), torch::nn::Mish()));
  if (o.in_channels() != o.out_channels())
    residual_conv = register_module("residual_conv", torch::nn::Conv1d(torch::nn::Conv1dOptions(o.in_channels(), o.out_channels(), 1)));
  else
    residual_conv = nullptr;
}

torch::Tensor ConditionalResidualBlock1DImpl::forward(const torch::Tensor& x, const torch::Tensor& cond) {
  const auto& o = options;
  TORCH_CHECK(x.defined() && x.dim() == 3 && x.size(1) == o.in_channels(), "ConditionalResidualBlock1D: expected an input (B, ",
              o.in_channels(), ", L), got ", sizes_of(x));
  TORCH_CHECK(cond.defined() && cond.dim() == 2 && cond.size(0) == x.size(0) && cond.size(1) == o.cond_dim(),
              "ConditionalResidualBlock1D: expected a condition (", x.size(0), ", ", o.cond_dim(), "), got ", sizes_of(cond));
  auto h = blocks[0]->as<Conv1dBlockImpl>()->forward(x);
  const auto embed = cond_encoder->forward(cond).unsqueeze(-1);  // (B, film, 1)
  if (o.cond_predict_scale()) {
    const auto sb = embed.view({x.size(0), 2, o.out_channels(), 1});
    h = sb.select(1, 0) * h + sb.select(1, 1);
  } else {
    h = h + embed;
  }
  h = blocks[1]->as<Conv1dBlockImpl>()->forward(h);
  return h + (residual_conv ? residual_conv(x) : x);
}

void ConditionalResidualBlock1DImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::ConditionalResidualBlock1D(in=" << options.in_channels() << ", out=" << options.out_channels()
         << ", cond=" << options.cond_dim() << ", kernel_size=" << options.kernel_size() << ")";
}

ConditionalUnet1DImpl::ConditionalUnet1DImpl(ConditionalUnet1DOptions options_) : options(std::move(options_)) { reset(); }

void ConditionalUnet1DImpl::reset() {
  const auto& o = options;
  const char* name = "ConditionalUnet1D";
  TORCH_CHECK(o.input_dim() > 0, name, ": input_dim must be positive, got ", o.input_dim());
  check_levels(name, o.down_dims(), o.diffusion_step_embed_dim(), o.kernel_size());
  for (const auto* d : {&o.local_cond_dim(), &o.global_cond_dim()})
    TORCH_CHECK(!*d || **d > 0, name, ": local_cond_dim and global_cond_dim must be positive when given, got ", **d);
  const int64_t start = o.input_dim() + o.local_cond_dim().value_or(0);
  TORCH_CHECK(o.n_groups() > 0, name, ": n_groups must be positive, got ", o.n_groups());
  for (auto w : o.down_dims())
    TORCH_CHECK(w % o.n_groups() == 0, name, ": n_groups=", o.n_groups(), " must divide every width of down_dims, got ", w);
  TORCH_CHECK(start % o.n_groups() == 0, name, ": n_groups=", o.n_groups(), " must divide input_dim + local_cond_dim = ", start);
  const int64_t cond_dim = o.diffusion_step_embed_dim() + o.global_cond_dim().value_or(0);

  diffusion_step_encoder = register_module("diffusion_step_encoder", step_encoder(o.diffusion_step_embed_dim()));
  const auto res = [&](int64_t in, int64_t out) {
    return ConditionalResidualBlock1D(ConditionalResidualBlock1DOptions(in, out, cond_dim)
                                          .kernel_size(o.kernel_size()).n_groups(o.n_groups()).cond_predict_scale(o.cond_predict_scale()));
  };
  std::vector<int64_t> dims{start};
  dims.insert(dims.end(), o.down_dims().begin(), o.down_dims().end());
  const size_t levels = o.down_dims().size();
  mid_modules = register_module("mid_modules", torch::nn::ModuleList(res(dims.back(), dims.back()), res(dims.back(), dims.back())));
  down_modules = register_module("down_modules", torch::nn::ModuleList());
    for (size_t i = 0; i < levels; ++i) {
    torch::nn::AnyModule down = i + 1 == levels ? torch::nn::AnyModule(torch::nn::Identity())
        : torch::nn::AnyModule(Downsample1d(dims[i + 1]));
    torch::nn::ModuleList level(res(dims[i], dims[i + 1]), res(dims[i + 1], dims[i + 1]));
    level->push_back(down.ptr());
    down_modules->push_back(level);
  }
  // symm_learning's decoder: every level, deepest first, ending at the input width (all skips used).
  up_modules = register_module("up_modules", torch::nn::ModuleList());
    for (size_t j = 0; j < levels; ++j) {
    const size_t i = levels - 1 - j;  // the level (dims[i] → dims[i + 1]) this stage undoes
    torch::nn::AnyModule up = j + 1 == levels ? torch::nn::AnyModule(torch::nn::Identity())
        : torch::nn::AnyModule(Upsample1d(dims[i]));
    torch::nn::ModuleList level(res(2 * dims[i + 1], dims[i]), res(dims[i], dims[i]));
    level->push_back(up.ptr());
    up_modules->push_back(level);
  }
  final_conv = register_module("final_conv", torch::nn::Sequential(Conv1dBlock(start, start, o.kernel_size(), o.n_groups()),
                                                                    torch::nn::Conv1d(torch::nn::Conv1dOptions(start, o.input_dim(), 1))));
}

torch::Tensor ConditionalUnet1DImpl::forward(const torch::Tensor& sample, const torch::Tensor& timestep,
                                             const torch::Tensor& local_cond, const torch::Tensor& film_cond) {
  const auto& o = options;
  const char* name = "ConditionalUnet1D";
  check_sample(name, sample, o.input_dim(), horizon_multiple());
  const auto b = sample.size(0);
  if (o.global_cond_dim()) {
    TORCH_CHECK(film_cond.defined() && film_cond.dim() == 2 && film_cond.size(0) == b && film_cond.size(1) == *o.global_cond_dim(),
                name, ": expected a film_cond (", b, ", ", *o.global_cond_dim(), "), got ", sizes_of(film_cond));
  } else {
    TORCH_CHECK(!film_cond.defined(), name, ": a film_cond was given but the model has no global_cond_dim");
  }
  if (o.local_cond_dim()) {
    TORCH_CHECK(local_cond.defined() && local_cond.dim() == 2 && local_cond.size(0) == b && local_cond.size(1) == *o.local_cond_dim(),
                name, ": expected a local_cond (", b, ", ", *o.local_cond_dim(), "), got ", sizes_of(local_cond));
  } else {
    TORCH_CHECK(!local_cond.defined(), name, ": a local_cond was given but the model has no local_cond_dim");
  }
  const auto steps = diffusion_step_encoder->forward(batch_timesteps(name, timestep, sample));
  const auto cond = film_cond.defined() ? torch::cat({film_cond, steps}, -1) : steps;
  const auto x0 = local_cond.defined() ? torch::cat({sample, local_cond.unsqueeze(-1).expand({-1, -1, sample.size(2)})}, 1) : sample;
  const auto x = unet_levels<ConditionalResidualBlock1DImpl>(*down_modules, *mid_modules, *up_modules, x0, cond, {});
  return final_conv->forward(x);
}

void ConditionalUnet1DImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::ConditionalUnet1D(input_dim=" << options.input_dim();
  if (options.local_cond_dim()) stream << ", local_cond_dim=" << *options.local_cond_dim();
  if (options.global_cond_dim()) stream << ", global_cond_dim=" << *options.global_cond_dim();
  stream << ", step_embed=" << options.diffusion_step_embed_dim() << ", down_dims=[";
  for (size_t i = 0; i < options.down_dims().size(); ++i) stream << (i ? ", " : "") << options.down_dims()[i];
  stream << "], n_groups=" << options.n_groups() << ")";
}

}  // namespace symm::nn

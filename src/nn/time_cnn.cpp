#include "symm/nn/time_cnn.h"

#include <algorithm>

#include "symm/group/group.h"

namespace symm::nn {

namespace {

namespace F = torch::nn::functional;

// Horizon after the blocks: ceil(H/2) per stride-2 convolution, floor(H/2) per max pool.
int64_t horizon_after(const char* name, int64_t horizon, size_t blocks, const std::string& downsample) {
  TORCH_CHECK(downsample == "stride" || downsample == "pooling", name, ": downsample must be 'stride' or 'pooling', got '",
              downsample, "'");
  TORCH_CHECK(horizon > 0, name, ": expected a time horizon > 0, got ", horizon);
  TORCH_CHECK(blocks > 0, name, ": hidden_channels must hold at least one convolution block");
  int64_t h = horizon;
  for (size_t i = 0; i < blocks; ++i) h = downsample == "stride" ? (h + 1) / 2 : h / 2;
  TORCH_CHECK(h > 0, name, ": a horizon of ", horizon, " is too short for ", blocks, " pooling blocks (each halves it)");
  return h;
}

void check_series(const char* name, const torch::Tensor& x, int64_t channels, int64_t horizon) {
  TORCH_CHECK(x.defined() && x.dim() == 3 && x.size(1) == channels && x.size(2) == horizon, name, ": expected an input (N, ",
              channels, ", ", horizon, "), got ", x.defined() ? x.sizes() : torch::IntArrayRef{});
}

}  // namespace

eTimeCNNEncoderImpl::eTimeCNNEncoderImpl(eTimeCNNEncoderOptions options_) : options(std::move(options_)) { reset(); }

void eTimeCNNEncoderImpl::reset() {
  const auto& o = options;
  const auto& g = o.in_rep().group();
  TORCH_CHECK(g && o.out_rep().group(), "eTimeCNNEncoder: in_rep and out_rep must be set");
  horizon_out_ = horizon_after("eTimeCNNEncoder", o.time_horizon(), o.hidden_channels().size(), o.downsample());
  const bool stride = o.downsample() == "stride";
  convs = register_module("convs", torch::nn::ModuleList());
  norms = register_module("norms", torch::nn::ModuleList());
  hidden_rep_ = hidden_regular("eTimeCNNEncoder", g, o.hidden_rep());
  Representation rep = o.in_rep();
  for (int64_t channels : o.hidden_channels()) {
    TORCH_CHECK(channels > 0, "eTimeCNNEncoder: hidden_channels must be positive, got ", channels);
    const auto out = regular_copies(hidden_rep_, channels);
    convs->push_back(eConv1d(eConv1dOptions(rep, out, 3).stride(stride ? 2 : 1).padding(1).bias(o.bias()).init_scheme(o.init_scheme())));
    if (o.batch_norm()) norms->push_back(eRMSNorm(eRMSNormOptions(out).eps(1e-6)));
    rep = out;
  }
  head_in_rep_ = rep.copies(static_cast<int>(horizon_out_));
  if (o.append_last_frame()) head_in_rep_ = direct_sum(head_in_rep_, o.in_rep());
  const auto& irreps = o.out_rep().irreps();
  const bool invariant = std::all_of(irreps.begin(), irreps.end(), [](int k) { return k == 0; });
  if (invariant) {
    invariant_head = register_module("head", iMLP(iMLPOptions(head_in_rep_, o.out_rep().size(), o.mlp_hidden())
                                                      .activation(o.activation()).bias(o.bias()).init_scheme(o.init_scheme())
                                                      .hidden_rep(hidden_rep_)));
    equivariant_head = nullptr;
  } else {
    equivariant_head = register_module("head", eMLP(eMLPOptions(head_in_rep_, o.out_rep(), o.mlp_hidden())
                                                        .activation(o.activation()).bias(o.bias()).init_scheme(o.init_scheme())
                                                        .hidden_rep(hidden_rep_)));
    invariant_head = nullptr;
  }
}

void eTimeCNNEncoderImpl::reset_parameters() {
  for (const auto& m : convs->children()) m->as<eConv1dImpl>()->reset_parameters();
  for (const auto& m : norms->children()) m->as<eRMSNormImpl>()->reset_parameters();
  if (invariant_head) invariant_head->reset_parameters();
  if (equivariant_head) equivariant_head->reset_parameters();
}

torch::Tensor eTimeCNNEncoderImpl::forward(const torch::Tensor& x) {
  check_series("eTimeCNNEncoder", x, options.in_rep().size(), options.time_horizon());
  auto h = x;
  for (size_t i = 0; i < convs->size(); ++i) {
    h = convs[i]->as<eConv1dImpl>()->forward(h);
    if (options.batch_norm()) h = norms[i]->as<eRMSNormImpl>()->forward(h.transpose(1, 2)).transpose(1, 2);
    h = options.activation()(h);
    if (options.downsample() == "pooling") h = F::max_pool1d(h, F::MaxPool1dFuncOptions(2).stride(2));
  }
  auto z = h.transpose(1, 2).reshape({x.size(0), -1});  // time-major: frame after frame
  if (options.append_last_frame()) z = torch::cat({z, x.select(2, x.size(2) - 1)}, 1);
  return invariant_head ? invariant_head->forward(z) : equivariant_head->forward(z);
}

void eTimeCNNEncoderImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eTimeCNNEncoder(in=" << options.in_rep().name() << ", out=" << options.out_rep().name()
         << ", blocks=" << convs->size() << ", downsample=" << options.downsample() << ", horizon=" << options.time_horizon()
         << "->" << horizon_out_ << ", head=" << (invariant_head ? "iMLP" : "eMLP") << ")";
}

MLPImpl::MLPImpl(MLPOptions options_) : options(std::move(options_)) { reset(); }

void MLPImpl::reset() {
  TORCH_CHECK(options.in_dim() > 0 && options.out_dim() > 0, "MLP: expected in_dim and out_dim > 0, got ", options.in_dim(),
              " and ", options.out_dim());
  TORCH_CHECK(!options.hidden_units().empty(), "MLP: hidden_units must hold at least one layer (without, use a Linear)");
  linears = register_module("linears", torch::nn::ModuleList());
  batch_norms = register_module("batch_norms", torch::nn::ModuleList());
  int64_t in = options.in_dim();
  for (int64_t units : options.hidden_units()) {
    TORCH_CHECK(units > 0, "MLP: hidden_units must be positive, got ", units);
    linears->push_back(torch::nn::Linear(torch::nn::LinearOptions(in, units).bias(options.bias())));
    if (options.batch_norm()) batch_norms->push_back(torch::nn::BatchNorm1d(units));
    in = units;
  }
  linears->push_back(torch::nn::Linear(torch::nn::LinearOptions(in, options.out_dim()).bias(options.bias())));
}

void MLPImpl::reset_parameters() {
  for (const auto& m : linears->children()) m->as<torch::nn::LinearImpl>()->reset_parameters();
  for (const auto& m : batch_norms->children()) m->as<torch::nn::BatchNorm1dImpl>()->reset_parameters();
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == options.in_dim(), "MLP: expected an input with last dimension ",
              options.in_dim(), ", got ", x.defined() ? x.sizes() : torch::IntArrayRef{});
  auto h = x;
  const auto hidden = options.hidden_units().size();
  for (size_t i = 0; i < hidden; ++i) {
    h = linears[i]->as<torch::nn::LinearImpl>()->forward(h);
    if (options.batch_norm()) h = batch_norms[i]->as<torch::nn::BatchNorm1dImpl>()->forward(h);
    h = options.activation()(h);
  }
  return linears[hidden]->as<torch::nn::LinearImpl>()->forward(h);
}

void MLPImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::MLP(in=" << options.in_dim() << ", out=" << options.out_dim() << ", hidden=[";
  for (size_t i = 0; i < options.hidden_units().size(); ++i) stream << (i ? ", " : "") << options.hidden_units()[i];
  stream << "], batch_norm=" << (options.batch_norm() ? "true" : "false") << ")";
}

TimeCNNEncoderImpl::TimeCNNEncoderImpl(TimeCNNEncoderOptions options_) : options(std::move(options_)) { reset(); }

void TimeCNNEncoderImpl::reset() {
  const auto& o = options;
  TORCH_CHECK(o.in_dim() > 0 && o.out_dim() > 0, "TimeCNNEncoder: expected in_dim and out_dim > 0, got ", o.in_dim(), " and ",
              o.out_dim());
  horizon_out_ = horizon_after("TimeCNNEncoder", o.horizon(), o.hidden_channels().size(), o.downsample());
  const bool stride = o.downsample() == "stride";
  convs = register_module("convs", torch::nn::ModuleList());
  norm_weights = register_module("norm_weights", torch::nn::ParameterList());
  int64_t in = o.in_dim();
  for (int64_t channels : o.hidden_channels()) {
    TORCH_CHECK(channels > 0, "TimeCNNEncoder: hidden_channels must be positive, got ", channels);
    convs->push_back(torch::nn::Conv1d(torch::nn::Conv1dOptions(in, channels, 3).stride(stride ? 2 : 1).padding(1).bias(o.bias())));
    if (o.normalize()) norm_weights->append(torch::ones({channels}).requires_grad_());  // append keeps requires_grad
    in = channels;
  }
  const int64_t flat = in * horizon_out_ + (o.append_last_frame() ? o.in_dim() : 0);
  head = register_module("head", MLP(MLPOptions(flat, o.out_dim(), o.mlp_hidden()).activation(o.activation()).bias(o.bias())));
  torch::NoGradGuard no_grad;
  torch::nn::init::orthogonal_(head->linears[head->linears->size() - 1]->as<torch::nn::LinearImpl>()->weight);
}

void TimeCNNEncoderImpl::reset_parameters() {
  for (const auto& m : convs->children()) m->as<torch::nn::Conv1dImpl>()->reset_parameters();
  torch::NoGradGuard no_grad;
  for (auto& w : norm_weights->parameters()) w.fill_(1);
  head->reset_parameters();
  torch::nn::init::orthogonal_(head->linears[head->linears->size() - 1]->as<torch::nn::LinearImpl>()->weight);
}

torch::Tensor TimeCNNEncoderImpl::forward(const torch::Tensor& x) {
  check_series("TimeCNNEncoder", x, options.in_dim(), options.horizon());
  auto h = x;
  for (size_t i = 0; i < convs->size(); ++i) {
    h = convs[i]->as<torch::nn::Conv1dImpl>()->forward(h);
    if (options.normalize()) {
      // torch.nn.RMSNorm over the channels, eps 1e-6.
      const auto& w = norm_weights[i];
      h = h * torch::rsqrt(h.square().mean(1, /*keepdim=*/true) + 1e-6) * w.view({1, -1, 1});
    }
    h = options.activation()(h);
    if (options.downsample() == "pooling") h = F::max_pool1d(h, F::MaxPool1dFuncOptions(2).stride(2));
  }
  auto z = h.reshape({x.size(0), -1});  // channel-major, as symm_learning's baseline
  if (options.append_last_frame()) z = torch::cat({z, x.select(2, x.size(2) - 1)}, 1);
  return head(z);
}

void TimeCNNEncoderImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::TimeCNNEncoder(in=" << options.in_dim() << ", out=" << options.out_dim() << ", blocks=" << convs->size()
         << ", downsample=" << options.downsample() << ", horizon=" << options.horizon() << "->" << horizon_out_ << ")";
}

}  // namespace symm::nn

#include "symm/nn/conv.h"

#include <cmath>

namespace symm::nn {

namespace F = torch::nn::functional;

namespace {

// One channel group's representation when `rep` is `groups` copies of it side by side in the channel basis
// (every generator's matrix block diagonal with equal blocks); the representation itself for one group.
Representation channel_group(const Representation& rep, int64_t groups, const char* name, const char* what) {
  if (groups == 1) return rep;
  TORCH_CHECK(rep.size() % groups == 0, name, ": groups=", groups, " must divide the ", what, " channels, got ",
              rep.size(), " (", rep.name(), ")");
  const auto c = rep.size() / groups;
  const auto& g = rep.group();
  if (g->generators().empty()) return Representation::trivial(g, static_cast<int>(c));  // the trivial group
  std::vector<Eigen::MatrixXd> images;
  for (int s : g->generators()) {
    const Eigen::MatrixXd m = rep(s);
    const Eigen::MatrixXd first = m.topLeftCorner(c, c);
    for (int64_t i = 0; i < groups; ++i) {
      for (int64_t j = 0; j < groups; ++j) {
        const Eigen::MatrixXd block = m.block(i * c, j * c, c, c);
        const double err = i == j ? (block - first).cwiseAbs().maxCoeff() : block.cwiseAbs().maxCoeff();
        TORCH_CHECK(err < 1e-9, name, ": groups=", groups, " needs ", what, " ", rep.name(), " to be ", groups,
                    " equal sub-representations of ", c, " channels side by side, but generator ", s, " has block (", i,
                    ", ", j, ") ", i == j ? "unlike block (0, 0)" : "nonzero");
      }
    }
    images.push_back(first);
  }
  return Representation::from_generators(g, images, rep.name() + "/" + std::to_string(groups));
}

torch::Tensor invariant_basis_tensor(const Representation& rep) { return to_tensor(rep.invariant_basis()); }

void check_conv_input(const char* name, const torch::Tensor& x, int64_t channels) {
  TORCH_CHECK(x.defined(), name, ": the input is undefined");
  TORCH_CHECK(x.dim() == 2 || x.dim() == 3, name, ": expected an input (B, ", channels, ", T) or (", channels,
              ", T), got shape ", x.sizes());
  TORCH_CHECK(x.size(-2) == channels, name, ": expected ", channels, " input channels (the representation's size) in dimension ",
              x.dim() - 2, ", got shape ", x.sizes());
  TORCH_CHECK(x.is_floating_point(), name, ": expected a floating-point input, got ", x.scalar_type());
}

void check_weight(const char* name, const torch::Tensor& w, const torch::Tensor& b, int64_t rows, int64_t cols,
                  int64_t k, int64_t out) {
  TORCH_CHECK(w.defined() && w.dim() == 3 && w.size(0) == rows && w.size(1) == cols && w.size(2) == k, name,
              ": expected a weight of shape [", rows, ", ", cols, ", ", k, "], got ",
              w.defined() ? w.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == out), name, ": expected a bias of shape [", out, "], got ",
              b.defined() ? b.sizes() : torch::IntArrayRef{});
}

}  // namespace

namespace functional {

torch::Tensor econv1d(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                      const eConv1dOptions& o) {
  const int64_t c_in = o.in_rep().size(), c_out = o.out_rep().size(), g = o.groups();
  check_conv_input("eConv1d", x, c_in);
  check_weight("eConv1d", weight, bias, c_out, c_in / g, o.kernel_size(), c_out);
  const int64_t t = x.size(-1), span = o.dilation() * (o.kernel_size() - 1) + 1;
  TORCH_CHECK(t + 2 * o.padding() >= span, "eConv1d: the input has ", t, " time steps (", t + 2 * o.padding(),
              " padded) but the dilated kernel spans ", span);
  auto opts = F::Conv1dFuncOptions().bias(bias).stride(o.stride()).dilation(o.dilation()).groups(g);
  if (o.padding_mode() == "zeros" || o.padding() == 0) return F::conv1d(x, weight, opts.padding(o.padding()));
  // The other modes pad each channel alike along time, then convolve without padding.
  TORCH_CHECK(o.padding_mode() != "reflect" || o.padding() < t, "eConv1d: padding_mode reflect needs padding < the ",
              t, " time steps of the input, got padding ", o.padding());
  TORCH_CHECK(o.padding_mode() != "circular" || o.padding() <= t, "eConv1d: padding_mode circular needs padding <= the ",
              t, " time steps of the input, got padding ", o.padding());
  auto pad = F::PadFuncOptions({o.padding(), o.padding()});
  if (o.padding_mode() == "reflect") pad.mode(torch::kReflect);
  else if (o.padding_mode() == "replicate") pad.mode(torch::kReplicate);
  else pad.mode(torch::kCircular);
  const bool batched = x.dim() == 3;
  const auto padded = F::pad(batched ? x : x.unsqueeze(0), pad);
  const auto y = F::conv1d(padded, weight, opts);
  return batched ? y : y.squeeze(0);
}

torch::Tensor econv_transpose1d(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                                const eConvTranspose1dOptions& o) {
  const int64_t c_in = o.in_rep().size(), c_out = o.out_rep().size(), g = o.groups();
  check_conv_input("eConvTranspose1d", x, c_in);
  check_weight("eConvTranspose1d", weight, bias, c_in, c_out / g, o.kernel_size(), c_out);
  const int64_t t = x.size(-1);
  const int64_t t_out = (t - 1) * o.stride() - 2 * o.padding() + o.dilation() * (o.kernel_size() - 1) + o.output_padding() + 1;
  TORCH_CHECK(t >= 1 && t_out >= 1, "eConvTranspose1d: an input of ", t, " time steps gives ", t_out,
              " output steps with these options; expected at least 1");
  return F::conv_transpose1d(x, weight,
                             F::ConvTranspose1dFuncOptions()
                                 .bias(bias)
                                 .stride(o.stride())
                                 .padding(o.padding())
                                 .output_padding(o.output_padding())
                                 .groups(g)
                                 .dilation(o.dilation()));
}

}  // namespace functional

namespace detail {

void eConvBase::build(torch::nn::Module& self, const char* name, bool transposed) {
  const auto& o = options;
  TORCH_CHECK(o.in_rep().group() && o.out_rep().group(), name, ": in_rep and out_rep must be set");
  TORCH_CHECK(o.in_rep().group() == o.out_rep().group(), name, ": in_rep is of group ", o.in_rep().group()->name(),
              " but out_rep of ", o.out_rep().group()->name());
  TORCH_CHECK(o.kernel_size() > 0, name, ": expected kernel_size > 0, got ", o.kernel_size());
  TORCH_CHECK(o.stride() > 0, name, ": expected stride > 0, got ", o.stride());
  TORCH_CHECK(o.dilation() > 0, name, ": expected dilation > 0, got ", o.dilation());
  TORCH_CHECK(o.padding() >= 0, name, ": expected padding >= 0, got ", o.padding());
  TORCH_CHECK(o.groups() > 0, name, ": expected groups > 0, got ", o.groups());
  if (transposed) {
    TORCH_CHECK(o.output_padding() >= 0 && (o.output_padding() < o.stride() || o.output_padding() < o.dilation()), name,
                ": output_padding must be >= 0 and smaller than stride or dilation (", o.stride(), ", ", o.dilation(),
                "), got ", o.output_padding());
    TORCH_CHECK(o.padding_mode() == "zeros", name, ": only padding_mode zeros is supported (as torch's), got '",
                o.padding_mode(), "'");
  } else {
    TORCH_CHECK(o.output_padding() == 0, name, ": output_padding is for the transposed convolution, got ", o.output_padding());
    const auto& m = o.padding_mode();
    TORCH_CHECK(m == "zeros" || m == "reflect" || m == "replicate" || m == "circular", name,
                ": padding_mode must be zeros, reflect, replicate or circular, got '", m, "'");
  }
  symm::linalg::parse_init_scheme(o.init_scheme());  // throws naming a bad scheme
  const auto in = channel_group(o.in_rep(), o.groups(), name, "in_rep");
  const auto out = channel_group(o.out_rep(), o.groups(), name, "out_rep");
  basis_ = std::make_shared<symm::linalg::HomBasis>(in, out);
  TORCH_CHECK(basis_->dim() > 0, name, ": Hom_G(", in.name(), ", ", out.name(),
              ") is zero-dimensional: no irrep of the output occurs in the input");
  // The synthesis is linear in the coefficients: the basis maps, once, as the columns of one matrix.
  std::vector<torch::Tensor> columns;
  for (int i = 0; i < basis_->dim(); ++i)
    columns.push_back(to_tensor(basis_->synthesize(Eigen::VectorXd::Unit(basis_->dim(), i))).reshape({-1}));
  synthesis_ = Constants({torch::stack(columns, 1)});
  fix_ = Constants({invariant_basis_tensor(o.out_rep())});

  weight_dof = self.register_parameter("weight_dof", torch::empty({o.groups() * o.kernel_size(), basis_->dim()}));
  const auto n_fix = o.out_rep().invariant_basis().cols();
  bias_dof = o.bias() && n_fix > 0 ? self.register_parameter("bias_dof", torch::empty({n_fix})) : torch::Tensor();
  kernel_cache_.clear();
  init_parameters();
}

void eConvBase::init_parameters() {
  torch::NoGradGuard no_grad;
  const auto scheme = symm::linalg::parse_init_scheme(options.init_scheme());
  const auto std = to_tensor(basis_->init_std(scheme)).to(weight_dof.options());
  if (scheme == symm::linalg::InitScheme::xavier_uniform || scheme == symm::linalg::InitScheme::kaiming_uniform) {
    weight_dof.uniform_(-1.0, 1.0).mul_(std * std::sqrt(3.0));
  } else {
    weight_dof.normal_().mul_(std);
  }
  if (bias_dof.defined()) {
    // symm_learning's bound: 1/sqrt(fan_in) of the trivial block, fan_in = trivial copies of in_rep.
    const auto m_in = options.in_rep().invariant_basis().cols();
    const double bound = m_in > 0 ? 1.0 / std::sqrt(static_cast<double>(m_in)) : 0.0;
    bias_dof.uniform_(-bound, bound);
  }
}

torch::Tensor eConvBase::taps() const {
  const auto& b = synthesis_.get(weight_dof)[0];
  const auto n_out = basis_->out_rep().size(), n_in = basis_->in_rep().size();
  return torch::matmul(weight_dof, b.t()).view({weight_dof.size(0), n_out, n_in});
}

void eConvBase::set_taps(const torch::Tensor& taps, const torch::Tensor& bias) {
  const int64_t rows = weight_dof.size(0), n_out = basis_->out_rep().size(), n_in = basis_->in_rep().size();
  TORCH_CHECK(taps.dim() == 3 && taps.size(0) == rows && taps.size(1) == n_out && taps.size(2) == n_in,
              "set_taps: expected taps of shape [", rows, ", ", n_out, ", ", n_in, "], got ", taps.sizes());
  torch::NoGradGuard no_grad;
  const auto cpu = taps.detach().to(torch::kCPU, torch::kFloat64);
  for (int64_t r = 0; r < rows; ++r)
    weight_dof[r].copy_(to_tensor(Eigen::VectorXd(basis_->coefficients(to_eigen(cpu[r])))));
  if (bias.defined() && bias_dof.defined()) {
    const auto c_out = options.out_rep().size();
    TORCH_CHECK(bias.dim() == 1 && bias.size(0) == c_out, "set_taps: expected a bias of shape [", c_out, "], got ", bias.sizes());
    bias_dof.copy_(torch::mv(fix_.get(torch::kCPU, torch::kFloat64)[0].t(), bias.detach().to(torch::kCPU, torch::kFloat64)));
  }
}

torch::Tensor eConvBase::kernel(bool training, const std::function<torch::Tensor()>& make) {
  // The cache holds a constant: only when nothing is to flow back to the coefficients.
  if (training || (torch::GradMode::is_enabled() && weight_dof.requires_grad())) return make();
  return kernel_cache_.get({weight_dof}, make);
}

torch::Tensor eConvBase::dense_bias() const {
  if (!bias_dof.defined()) return {};
  return torch::mv(fix_.get(bias_dof)[0], bias_dof);
}

void eConvBase::check_input(const char* name, const torch::Tensor& x) const {
  check_conv_input(name, x, options.in_rep().size());
  check_device_and_dtype(name, x, weight_dof);
}

void eConvBase::print(std::ostream& stream, const char* name) const {
  const auto& o = options;
  stream << "symm::nn::" << name << "(in=" << o.in_rep().name() << ", out=" << o.out_rep().name()
         << ", kernel_size=" << o.kernel_size() << ", stride=" << o.stride() << ", padding=" << o.padding();
  if (o.output_padding() != 0) stream << ", output_padding=" << o.output_padding();
  stream << ", dilation=" << o.dilation() << ", groups=" << o.groups() << ", bias=" << (bias_dof.defined() ? "true" : "false");
  if (o.padding_mode() != "zeros") stream << ", padding_mode=" << o.padding_mode();
  stream << ", dof=" << weight_dof.numel() << ")";
}

}  // namespace detail

eConv1dImpl::eConv1dImpl(eConv1dOptions options_) : eConvBase(std::move(options_)) { reset(); }

void eConv1dImpl::reset() { build(*this, "eConv1d", /*transposed=*/false); }

void eConv1dImpl::reset_parameters() { init_parameters(); }

torch::Tensor eConv1dImpl::weight() {
  return kernel(is_training(), [this] {
    const auto g = options.groups(), k = options.kernel_size();
    const auto t = taps();  // (g·K, n_out, n_in)
    return t.view({g, k, t.size(1), t.size(2)}).permute({0, 2, 3, 1}).reshape({g * t.size(1), t.size(2), k});
  });
}

torch::Tensor eConv1dImpl::forward(const torch::Tensor& x) {
  check_input("eConv1d", x);
  return functional::econv1d(x, weight(), bias(), options);
}

eConvTranspose1dImpl::eConvTranspose1dImpl(eConvTranspose1dOptions options_) : eConvBase(std::move(options_)) { reset(); }

void eConvTranspose1dImpl::reset() { build(*this, "eConvTranspose1d", /*transposed=*/true); }

void eConvTranspose1dImpl::reset_parameters() { init_parameters(); }

torch::Tensor eConvTranspose1dImpl::weight() {
  return kernel(is_training(), [this] {
    const auto g = options.groups(), k = options.kernel_size();
    const auto t = taps();  // (g·K, n_out, n_in); torch's transposed weight is (C_in, C_out/g, K)
    return t.view({g, k, t.size(1), t.size(2)}).permute({0, 3, 2, 1}).reshape({g * t.size(2), t.size(1), k});
  });
}

torch::Tensor eConvTranspose1dImpl::forward(const torch::Tensor& x) {
  check_input("eConvTranspose1d", x);
  return functional::econv_transpose1d(x, weight(), bias(), options);
}

}  // namespace symm::nn

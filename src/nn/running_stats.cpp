#include "symm/nn/running_stats.h"

#include "symm/stats/stats.h"

namespace symm::nn {

namespace {

void check_momentum(const char* module, double momentum) {
  TORCH_CHECK(momentum > 0.0 && momentum <= 1.0, module, ": momentum must be in (0, 1], got ", momentum);
}

void check_inputs(const std::string& module, const torch::Tensor& x, const torch::Tensor& y, int64_t dx, int64_t dy,
                  const torch::Tensor& like) {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == dx, module, ": expected x of shape (N, ", dx, "), got ", x.sizes());
  TORCH_CHECK(y.dim() == 2 && y.size(1) == dy, module, ": expected y of shape (N, ", dy, "), got ", y.sizes());
  TORCH_CHECK(x.size(0) == y.size(0), module, ": x and y need the same number of samples, got ", x.size(0), " and ",
              y.size(0));
  check_device_and_dtype(module, x, like, "x");
  check_device_and_dtype(module, y, like, "y");
}

// S_t = (1 − α)·detach(S_{t−1}) + α·S_batch (S_batch itself on the first batch), written into the buffer so
// that it carries the current batch's gradient and none of the previous ones'.
void update(torch::Tensor& buffer, const torch::Tensor& batch, double alpha, bool first) {
  const auto next = first ? batch : buffer.detach() * (1.0 - alpha) + batch * alpha;
  buffer.detach_();
  buffer.copy_(next);
}

// The centres of a batch's covariances: the running means once a batch is tracked (when asked), else its own.
std::pair<torch::Tensor, torch::Tensor> centres(bool running, const torch::Tensor& tracked, const torch::Tensor& mx,
                                                const torch::Tensor& my, const torch::Tensor& rx, const torch::Tensor& ry) {
  if (running && tracked.item<int64_t>() > 0) return {rx.detach(), ry.detach()};
  return {mx, my};
}

}  // namespace

// ------------------------------------------------------------------------------------------------ EMAStats

EMAStatsImpl::EMAStatsImpl(EMAStatsOptions options_) : options(std::move(options_)) { reset(); }

void EMAStatsImpl::reset() {
  check_momentum("EMAStats", options.momentum());
  const int64_t dx = options.dim_x(), dy = options.dim_y().value_or(dx);
  TORCH_CHECK(dx > 0 && dy > 0, "EMAStats: dim_x and dim_y must be positive, got ", dx, " and ", dy);
  num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kInt64));
  running_mean_x = register_buffer("running_mean_x", torch::zeros({dx}));
  running_mean_y = register_buffer("running_mean_y", torch::zeros({dy}));
  running_cov_xx = register_buffer("running_cov_xx", torch::eye(dx));
  running_cov_yy = register_buffer("running_cov_yy", torch::eye(dy));
  running_cov_xy = register_buffer("running_cov_xy", torch::zeros({dx, dy}));
}

void EMAStatsImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  for (auto* t : {&num_batches_tracked, &running_mean_x, &running_mean_y, &running_cov_xy}) t->detach_().zero_();
  running_cov_xx.detach_().copy_(torch::eye(running_cov_xx.size(0)));
  running_cov_yy.detach_().copy_(torch::eye(running_cov_yy.size(0)));
}

std::tuple<torch::Tensor, torch::Tensor> EMAStatsImpl::forward(const torch::Tensor& x, const torch::Tensor& y) {
  check_inputs("EMAStats", x, y, running_mean_x.size(0), running_mean_y.size(0), running_mean_x);
  if (!is_training()) return {x, y};
  const auto n = x.size(0);
  TORCH_CHECK(n >= 2, "EMAStats: training needs at least 2 samples per batch (covariances divide by N - 1), got ", n);
  const auto mx = x.mean(0), my = y.mean(0);
  const auto [cx, cy] = centres(options.center_with_running_mean(), num_batches_tracked, mx, my, running_mean_x, running_mean_y);
  const auto xc = x - cx, yc = y - cy;
  const double a = options.momentum();
  const bool first = num_batches_tracked.item<int64_t>() == 0;
  update(running_mean_x, mx, a, first);
  update(running_mean_y, my, a, first);
  update(running_cov_xx, torch::matmul(xc.t(), xc) / double(n - 1), a, first);
  update(running_cov_yy, torch::matmul(yc.t(), yc) / double(n - 1), a, first);
  update(running_cov_xy, torch::matmul(xc.t(), yc) / double(n - 1), a, first);
  num_batches_tracked.add_(1);
  return {x, y};
}

void EMAStatsImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::EMAStats(dim_x=" << running_mean_x.size(0) << ", dim_y=" << running_mean_y.size(0)
         << ", momentum=" << options.momentum() << ", eps=" << options.eps()
         << ", center_with_running_mean=" << (options.center_with_running_mean() ? "true" : "false") << ")";
}

// ----------------------------------------------------------------------------------------------- eEMAStats

eEMAStatsImpl::eEMAStatsImpl(eEMAStatsOptions options_) : options(std::move(options_)) { reset(); }

void eEMAStatsImpl::reset() {
  check_momentum("eEMAStats", options.momentum());
  const auto& rx = options.x_rep();
  y_rep_ = options.y_rep().value_or(rx);
  TORCH_CHECK(rx.group() == y_rep_.group(), "eEMAStats: x_rep and y_rep must be of the same group, got ", rx.group()->name(),
              " and ", y_rep_.group()->name());
  xx_ = std::make_shared<symm::stats::HomProjector>(rx, rx);
  yy_ = std::make_shared<symm::stats::HomProjector>(y_rep_, y_rep_);
  xy_ = std::make_shared<symm::stats::HomProjector>(y_rep_, rx);  // C_xy maps y's coordinates to x's
  num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kInt64));
  running_mean_x = register_buffer("running_mean_x", torch::zeros({rx.size()}));
  running_mean_y = register_buffer("running_mean_y", torch::zeros({y_rep_.size()}));
  running_cov_xx_dof = register_buffer("running_cov_xx_dof", torch::empty({xx_->dim()}));
  running_cov_yy_dof = register_buffer("running_cov_yy_dof", torch::empty({yy_->dim()}));
  running_cov_xy_dof = register_buffer("running_cov_xy_dof", torch::zeros({xy_->dim()}));
  reset_parameters();
}

void eEMAStatsImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  for (auto* t : {&num_batches_tracked, &running_mean_x, &running_mean_y, &running_cov_xy_dof}) t->detach_().zero_();
  const auto like = running_mean_x;
  running_cov_xx_dof.detach_().copy_(xx_->coefficients(torch::eye(options.x_rep().size(), like.options())));
  running_cov_yy_dof.detach_().copy_(yy_->coefficients(torch::eye(y_rep_.size(), like.options())));
}

std::tuple<torch::Tensor, torch::Tensor> eEMAStatsImpl::forward(const torch::Tensor& x, const torch::Tensor& y) {
  check_inputs("eEMAStats", x, y, options.x_rep().size(), y_rep_.size(), running_mean_x);
  if (!is_training()) return {x, y};
  const auto mx = symm::stats::mean(x, options.x_rep()), my = symm::stats::mean(y, y_rep_);
  const auto [cx, cy] = centres(options.center_with_running_mean(), num_batches_tracked, mx, my, running_mean_x, running_mean_y);
  const auto xc = x - cx, yc = y - cy;
  const double n = double(x.size(0)), a = options.momentum();
  const bool first = num_batches_tracked.item<int64_t>() == 0;
  update(running_mean_x, mx, a, first);
  update(running_mean_y, my, a, first);
  update(running_cov_xx_dof, xx_->coefficients(torch::matmul(xc.t(), xc) / n), a, first);
  update(running_cov_yy_dof, yy_->coefficients(torch::matmul(yc.t(), yc) / n), a, first);
  update(running_cov_xy_dof, xy_->coefficients(torch::matmul(xc.t(), yc) / n), a, first);
  num_batches_tracked.add_(1);
  return {x, y};
}

torch::Tensor eEMAStatsImpl::dense(const symm::stats::HomProjector& basis, const torch::Tensor& dof, EvalCache& cache) {
  if (is_training()) return basis.synthesize(dof);
  return cache.get({dof}, [&] { return basis.synthesize(dof); });
}

torch::Tensor eEMAStatsImpl::cov_xx() { return dense(*xx_, running_cov_xx_dof, cache_xx_); }
torch::Tensor eEMAStatsImpl::cov_yy() { return dense(*yy_, running_cov_yy_dof, cache_yy_); }
torch::Tensor eEMAStatsImpl::cov_xy() { return dense(*xy_, running_cov_xy_dof, cache_xy_); }

void eEMAStatsImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eEMAStats(x=" << options.x_rep().name() << ", y=" << y_rep_.name()
         << ", momentum=" << options.momentum() << ", eps=" << options.eps()
         << ", center_with_running_mean=" << (options.center_with_running_mean() ? "true" : "false") << ")";
}

}  // namespace symm::nn

#include "symm/nn/pooling.h"

namespace symm::nn {

namespace {

std::vector<int64_t> column_copies(const Representation& rep) {
  std::vector<int64_t> out;
  for (size_t k = 0; k < rep.irreps().size(); ++k) out.insert(out.end(), rep.group()->irrep(rep.irreps()[k]).dim, int64_t(k));
  return out;
}

torch::Tensor radii(const torch::Tensor& x, const torch::Tensor& q, const torch::Tensor& copy_of, int64_t copies) {
  const auto sq = torch::matmul(x, q).square();
  auto shape = x.sizes().vec();
  shape.back() = copies;
  // The square root's gradient at 0 is infinite; a vanishing copy gets the subgradient 0 instead.
  const auto s = torch::zeros(shape, x.options()).index_add_(-1, copy_of, sq);
  return torch::where(s > 0, torch::sqrt(torch::where(s > 0, s, torch::ones_like(s))), torch::zeros_like(s));
}

}  // namespace

IrrepSubspaceNormPoolingImpl::IrrepSubspaceNormPoolingImpl(IrrepSubspaceNormPoolingOptions options_)
    : options(std::move(options_)) {
  reset();
}

void IrrepSubspaceNormPoolingImpl::reset() {
  const auto& rep = options.in_rep();
  TORCH_CHECK(rep.group(), "IrrepSubspaceNormPooling: in_rep must be set");
  const auto copies = static_cast<int>(rep.irreps().size());
  out_rep_ = Representation::trivial(rep.group(), copies);
  constants_ = Constants({to_tensor(rep.change_of_basis())});
  copy_of_ = torch::tensor(column_copies(rep), torch::kInt64);
}

torch::Tensor IrrepSubspaceNormPoolingImpl::forward(const torch::Tensor& x) {
  check_features("IrrepSubspaceNormPooling", x, options.in_rep().size());
  if (copy_of_.device() != x.device()) copy_of_ = copy_of_.to(x.device());
  return radii(x, constants_.get(x)[0], copy_of_, out_rep_.size());
}

void IrrepSubspaceNormPoolingImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::IrrepSubspaceNormPooling(in=" << options.in_rep().name() << ", out=" << out_rep_.size()
         << " invariant features)";
}

namespace functional {
torch::Tensor irrep_radii(const torch::Tensor& x, const Representation& rep) {
  check_features("irrep_radii", x, rep.size());
  const auto q = to_tensor(rep.change_of_basis()).to(x.device(), x.scalar_type());
  return radii(x, q, torch::tensor(column_copies(rep), torch::kInt64).to(x.device()), int64_t(rep.irreps().size()));
}
}  // namespace functional

}  // namespace symm::nn

#include "symm/stats/linalg.h"

#include "symm/linalg/isotypic_signal.h"
#include "symm/linalg/projection.h"

namespace symm::stats {

namespace {

std::vector<int64_t> leading(const torch::Tensor& t, int64_t trailing) {
  const auto s = t.sizes();
  return std::vector<int64_t>(s.begin(), s.end() - trailing);
}

std::vector<int64_t> with(std::vector<int64_t> v, std::initializer_list<int64_t> tail) {
  v.insert(v.end(), tail);
  return v;
}

torch::Tensor to_double_cpu(const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat64).contiguous(); }

}  // namespace

HomProjector::HomProjector(const Representation& rep_x, const Representation& rep_y) : basis_(rep_x, rep_y) {
  std::vector<torch::Tensor> masters;
  for (const auto& b : basis_.blocks()) {
    const auto& psi = rep_x.group()->irrep(b.irrep).endomorphisms;
    std::vector<torch::Tensor> p;
    for (int s = 0; s < b.endo; ++s) p.push_back(symm::nn::to_tensor(psi[s]));
    masters.push_back(symm::nn::to_tensor(b.q_out));
    masters.push_back(symm::nn::to_tensor(b.q_in));
    masters.push_back(torch::stack(p));
  }
  constants_ = symm::nn::Constants(std::move(masters));
}

torch::Tensor HomProjector::coefficients(const torch::Tensor& w) const {
  const auto dy = basis_.out_rep().size(), dx = basis_.in_rep().size();
  TORCH_CHECK(w.dim() >= 2 && w.size(-2) == dy && w.size(-1) == dx, "symm::stats: expected maps of shape (..., ", dy,
              ", ", dx, ") for Hom_G(", basis_.in_rep().name(), ", ", basis_.out_rep().name(), "), got ", w.sizes());
  const auto lead = leading(w, 2);
  if (basis_.blocks().empty()) return torch::zeros(with(lead, {0}), w.options());
  const auto& c = constants_.get(w);
  std::vector<torch::Tensor> parts;
  for (size_t i = 0; i < basis_.blocks().size(); ++i) {
    const auto& b = basis_.blocks()[i];
    const auto block = torch::matmul(torch::matmul(c[3 * i].t(), w), c[3 * i + 1]);  // (..., m_out·d, m_in·d)
    const auto grid = block.reshape(with(lead, {b.m_out, b.dim, b.m_in, b.dim}));
    // θ_{s,i,j} = ⟨block_ij, Ψ_s⟩_F (Ψ orthonormal), flattened s-major as HomBasis orders them.
    parts.push_back(torch::einsum("...irjc,src->...sij", {grid, c[3 * i + 2]}).reshape(with(lead, {b.size()})));
  }
  return torch::cat(parts, -1);
}

torch::Tensor HomProjector::synthesize(const torch::Tensor& theta) const {
  const auto dy = basis_.out_rep().size(), dx = basis_.in_rep().size();
  TORCH_CHECK(theta.dim() >= 1 && theta.size(-1) == basis_.dim(), "symm::stats: expected coefficients of shape (..., ",
              basis_.dim(), ") for Hom_G(", basis_.in_rep().name(), ", ", basis_.out_rep().name(), "), got ",
              theta.sizes());
  const auto lead = leading(theta, 1);
  auto w = torch::zeros(with(lead, {dy, dx}), theta.options());
  const auto& c = constants_.get(theta);
  for (size_t i = 0; i < basis_.blocks().size(); ++i) {
    const auto& b = basis_.blocks()[i];
    const auto t = theta.narrow(-1, b.offset, b.size()).reshape(with(lead, {b.endo, b.m_out, b.m_in}));
    const auto block = torch::einsum("...sij,src->...irjc", {t, c[3 * i + 2]}).reshape(with(lead, {b.m_out * b.dim, b.m_in * b.dim}));
    w = w + torch::matmul(torch::matmul(c[3 * i], block), c[3 * i + 1].t());
  }
  return w;
}

torch::Tensor equiv_orthogonal_projection(const torch::Tensor& w, const Representation& rep_x, const Representation& rep_y) {
  return HomProjector(rep_x, rep_y).project(w);
}

torch::Tensor equiv_orthogonal_projection_coefficients(const torch::Tensor& w, const Representation& rep_x,
                                                       const Representation& rep_y) {
  return HomProjector(rep_x, rep_y).coefficients(w);
}

torch::Tensor equiv_linear_map(const torch::Tensor& theta, const Representation& rep_x, const Representation& rep_y) {
  return HomProjector(rep_x, rep_y).synthesize(theta);
}

torch::Tensor lstsq(const torch::Tensor& x, const torch::Tensor& y, const Representation& rep_x, const Representation& rep_y) {
  TORCH_CHECK(x.dim() == 2 && y.dim() == 2 && x.size(1) == rep_x.size() && y.size(1) == rep_y.size() &&
                  x.size(0) == y.size(0),
              "symm::stats::lstsq: expected x (N, ", rep_x.size(), ") and y (N, ", rep_y.size(),
              ") with the same N, got x ", x.sizes(), " and y ", y.sizes());
  const auto a = symm::linalg::lstsq(symm::nn::to_eigen(to_double_cpu(x)), symm::nn::to_eigen(to_double_cpu(y)), rep_x, rep_y);
  return symm::nn::to_tensor(a).to(x.options());
}

torch::Tensor irrep_radii(const torch::Tensor& x, const Representation& rep) {
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == rep.size(), "symm::stats::irrep_radii: expected x of shape (..., ",
              rep.size(), ") for ", rep.name(), ", got ", x.sizes());
  const auto spectral = torch::matmul(x, symm::nn::to_tensor(rep.change_of_basis()).to(x.options()));
  std::vector<int64_t> dims;
  for (int k : rep.irreps()) dims.push_back(rep.group()->irrep(k).dim);
  std::vector<torch::Tensor> radii;
  // linalg_vector_norm: a subgradient of 0 at the origin, where sqrt(Σ x²) has none.
  for (const auto& block : spectral.split_with_sizes(dims, -1)) radii.push_back(torch::linalg_vector_norm(block, 2, {-1}, false, c10::nullopt));
  return torch::stack(radii, -1);
}

torch::Tensor isotypic_signal2irreducible_subspaces(const torch::Tensor& x, const Representation& rep) {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == rep.size(), "symm::stats::isotypic_signal2irreducible_subspaces: expected x (N, ",
              rep.size(), ") for ", rep.name(), ", got ", x.sizes());
  // The type check and the copies' columns of Q come from the Eigen form, applied to the identity.
  const auto& g = *rep.group();
  const int irrep = rep.irreps().empty() ? 0 : rep.irreps().front();
  symm::linalg::isotypic_signal2irreducible_subspaces(Eigen::MatrixXd::Zero(0, rep.size()), rep);
  const int64_t d = g.irrep(irrep).dim, m = rep.size() / d;
  const auto spectral = torch::matmul(x, symm::nn::to_tensor(rep.change_of_basis()).to(x.options()));  // (N, m·d)
  return spectral.view({x.size(0), m, d}).permute({0, 2, 1}).reshape({x.size(0) * d, m});
}

}  // namespace symm::stats

#include "train_data.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "symm/group/named.h"
#include "symm/nn/equivariance.h"

namespace symm::app {

torch::Tensor ring_vector_field(const RingSystem& s, const torch::Tensor& x) {
  const int64_t n = s.nodes;
  const auto q = x.narrow(-1, 0, n);
  const auto v = x.narrow(-1, n, n);
  const auto laplacian = torch::roll(q, 1, -1) + torch::roll(q, -1, -1) - 2 * q;
  const auto a = s.coupling * laplacian - s.onsite * q - s.quartic * q * q * q;
  return torch::cat({v, a}, -1);
}

torch::Tensor simulate(const RingSystem& s, int64_t count, int64_t seq_len, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto x = s.amplitude * torch::randn({count, 2 * static_cast<int64_t>(s.nodes)}, gen, torch::kFloat64);
  std::vector<torch::Tensor> tokens{x};
  const double h = s.dt / s.substeps;
  for (int64_t t = 1; t < seq_len; ++t) {
    for (int i = 0; i < s.substeps; ++i) {
      const auto k1 = ring_vector_field(s, x);
      const auto k2 = ring_vector_field(s, x + 0.5 * h * k1);
      const auto k3 = ring_vector_field(s, x + 0.5 * h * k2);
      const auto k4 = ring_vector_field(s, x + h * k3);
      x = x + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4);
    }
    tokens.push_back(x);
  }
  return torch::stack(tokens, 1).to(torch::kFloat32);
}

symm::group::GroupPtr ring_group(const std::string& spec, int nodes) {
  const std::string n = std::to_string(nodes);
  if (spec != "D" + n && spec != "C" + n)
    throw std::invalid_argument("--group " + spec + ": the ring of " + n + " oscillators has the symmetries D" + n +
                                " (rotations and reflections) or C" + n + " (rotations); use one of them or change --nodes");
  return symm::group::make_group(spec);
}

symm::group::Representation ring_representation(const symm::group::GroupPtr& g, const RingSystem& s) {
  const int n = s.nodes;
  // Generators of C<n> and D<n>, in order: the rotation by 2π/n (node k → k+1) and, for D<n>, the
  // reflection diag(1, −1), which sends the angle 2πk/n to −2πk/n (node k → −k mod n).
  auto permutation = [n](auto node_image) {
    Eigen::MatrixXd p = Eigen::MatrixXd::Zero(2 * n, 2 * n);
    for (int k = 0; k < n; ++k) {
      const int to = ((node_image(k) % n) + n) % n;
      p(to, k) = 1;          // displacements
      p(n + to, n + k) = 1;  // velocities
    }
    return p;
  };
  std::vector<Eigen::MatrixXd> images{permutation([](int k) { return k + 1; })};
  if (g->generators().size() == 2) images.push_back(permutation([](int k) { return -k; }));
  if (images.size() != g->generators().size())
    throw std::logic_error("ring_representation: unexpected generators of " + g->name());
  auto rep = symm::group::Representation::from_generators(g, images, "ring" + std::to_string(n) + " (q, v)");

  // The vector field must commute with every element: f(ρ(g)x) = ρ(g)f(x).
  auto x = torch::randn({8, 2 * n}, at::detail::createCPUGenerator(12345), torch::kFloat64);
  const auto fx = ring_vector_field(s, x);
  for (int e = 0; e < g->order(); ++e) {
    const double err = (ring_vector_field(s, symm::nn::act(rep, e, x)) - symm::nn::act(rep, e, fx)).abs().max().item<double>();
    if (err > 1e-9) {
      std::ostringstream msg;
      msg << "ring_representation: the ring dynamics do not commute with element " << e << " of " << g->name()
          << " (error " << err << ")";
      throw std::logic_error(msg.str());
    }
  }
  return rep;
}

Dataset make_dataset(const RingSystem& s, int64_t train_count, int64_t val_count, int64_t test_count, int64_t seq_len,
                     uint64_t seed) {
  Dataset d;
  // Three independent streams, so the validation and test sets do not depend on the size of the pool.
  d.train = simulate(s, train_count, seq_len, seed * 3 + 1);
  d.val = simulate(s, val_count, seq_len, seed * 3 + 2);
  d.test = simulate(s, test_count, seq_len, seed * 3 + 3);
  const int64_t n = s.nodes;
  auto block_scale = [n](const torch::Tensor& t) {
    const auto q = t.narrow(-1, 0, n).pow(2).mean().sqrt().clamp_min(1e-12);
    const auto v = t.narrow(-1, n, n).pow(2).mean().sqrt().clamp_min(1e-12);
    return torch::cat({q.expand({n}), v.expand({n})});
  };
  d.input_scale = block_scale(d.val);
  d.target_scale = block_scale(d.val.narrow(1, 1, seq_len - 1) - d.val.narrow(1, 0, seq_len - 1));
  return d;
}

std::pair<torch::Tensor, torch::Tensor> inputs_and_targets(const Dataset& d, const torch::Tensor& sequences) {
  const int64_t t = sequences.size(1);
  const auto now = sequences.narrow(1, 0, t - 1);
  const auto next = sequences.narrow(1, 1, t - 1);
  return {now / d.input_scale, (next - now) / d.target_scale};
}

}  // namespace symm::app

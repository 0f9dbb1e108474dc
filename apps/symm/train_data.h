#pragma once
// The data of `symm train`: a ring of n coupled nonlinear oscillators.
//
// Node k (k = 0..n-1) sits at angle 2πk/n on a circle and carries a displacement q_k and a velocity v_k.
// Neighbours are joined by linear springs, and every node feels an anharmonic on-site force
// (a discrete nonlinear Klein-Gordon / φ⁴ lattice):
//
//     dq_k/dt = v_k
//     dv_k/dt = κ (q_{k+1} − 2 q_k + q_{k−1}) − ω² q_k − β q_k³          (indices mod n)
//
// i.e. the flow of H = Σ_k v_k²/2 + κ/2 (q_{k+1} − q_k)² + ω²/2 q_k² + β/4 q_k⁴. Relabelling the nodes by
// a rotation of the ring (k → k+1) or a reflection (k → −k) maps solutions to solutions, so the flow
// commutes exactly with the dihedral group D<n> acting on the node index, and with its subgroup C<n>.
// Trajectories are integrated with classical RK4 in float64 from seeded random initial states.
//
// A sample is a sequence of tokens, one per time step; a token is the state
// [q_0 .. q_{n-1}, v_0 .. v_{n-1}] (2n features): two copies of the permutation representation of the
// group on the nodes.
#include <cstdint>
#include <string>

#include <torch/torch.h>

#include "symm/group/representation.h"

namespace symm::app {

struct RingSystem {
  int nodes = 5;
  double coupling = 1.0;   // κ, springs between neighbouring nodes
  double onsite = 1.0;     // ω², harmonic on-site term
  double quartic = 1.0;    // β, quartic on-site term
  double dt = 0.1;         // time between two tokens
  int substeps = 4;        // RK4 steps per token
  double amplitude = 1.0;  // standard deviation of initial displacements and velocities
};

/// The vector field: x (..., 2n) in the layout [q, v] ↦ [dq/dt, dv/dt].
torch::Tensor ring_vector_field(const RingSystem& s, const torch::Tensor& x);

/// `count` trajectories of `seq_len` tokens each, (count, seq_len, 2n) float32, from initial states drawn
/// with a generator seeded by `seed` (integrated in float64).
torch::Tensor simulate(const RingSystem& s, int64_t count, int64_t seq_len, uint64_t seed);

/// The groups the ring has: "D<n>" (rotations and reflections of the nodes) or "C<n>" (rotations). Throws
/// std::invalid_argument for any other spec.
symm::group::GroupPtr ring_group(const std::string& spec, int nodes);

/// The representation of the group on a token: the permutation of the nodes, once on the displacements
/// and once on the velocities. Built with Representation::from_generators, which verifies it is an
/// orthogonal homomorphism; also verifies that the vector field commutes with it on every element.
symm::group::Representation ring_representation(const symm::group::GroupPtr& g, const RingSystem& s);

/// Train pool, validation and test sequences, and the scales that make inputs and targets O(1).
struct Dataset {
  torch::Tensor train, val, test;  // (N, T, 2n) raw states
  /// Per feature, constant on the displacement block and on the velocity block (so they commute with
  /// the group): inputs are x / input_scale, targets (x_{t+1} − x_t) / target_scale. Measured on the
  /// validation set, which every run shares.
  torch::Tensor input_scale, target_scale;
};

Dataset make_dataset(const RingSystem& s, int64_t train_count, int64_t val_count, int64_t test_count, int64_t seq_len,
                     uint64_t seed);

/// Model inputs (N, T−1, 2n) and targets (N, T−1, 2n): every token predicts the scaled increment to the next.
std::pair<torch::Tensor, torch::Tensor> inputs_and_targets(const Dataset& d, const torch::Tensor& sequences);

}  // namespace symm::app

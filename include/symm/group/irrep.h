#pragma once
// A real irreducible representation of a finite group, with its type (the real dimension of its
// endomorphism algebra: R = 1, C = 2, H = 4) and an orthonormal basis of that algebra.
#include <string>
#include <vector>

#include <Eigen/Dense>

namespace symm::group {

enum class IrrepType { R = 1, C = 2, H = 4 };

const char* to_string(IrrepType t);

/// Images of the generators of a group under one irrep (closed forms).
using IrrepImages = std::vector<Eigen::MatrixXd>;

struct Irrep {
  std::string id;
  int dim = 0;
  IrrepType type = IrrepType::R;
  std::vector<Eigen::MatrixXd> matrices;      // one orthogonal matrix per group element
  Eigen::VectorXd character;                  // trace per element
  std::vector<Eigen::MatrixXd> endomorphisms; // Frobenius-orthonormal basis of End_G, [0] ∝ identity

  int endo_dim() const { return static_cast<int>(type); }
  bool is_trivial() const { return dim == 1 && (character.array() > 0.5).all(); }
};

}  // namespace symm::group

// The smallest use of symm: an equivariant linear map for the dihedral group D4, checked on every element.
#include <iostream>

#include <symm/symm.h>
#include <symm/nn/equivariance.h>

int main() {
  using symm::group::Representation;
  const auto g = symm::group::make_group("D4");
  const auto rep = Representation::regular(g).copies(2);
  symm::nn::eLinear layer(rep, rep);
  const auto x = torch::randn({3, rep.size()});
  const auto err = symm::nn::equivariance_error([&](const torch::Tensor& t) { return layer->forward(t); }, rep, rep, x,
                                                symm::nn::elements_to_check(*g));
  std::cout << layer << "\nmax relative equivariance error over " << g->order() << " elements: " << err.max_relative << "\n";
  return err.max_relative < 1e-5 ? 0 : 1;
}

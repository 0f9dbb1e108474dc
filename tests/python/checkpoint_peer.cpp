// The C++ side of the checkpoint exchange tests: builds a model natively in C++, then either saves it
// (`save`) or loads a checkpoint into it (`load`), and writes its eval output on a given input.
//   symm_checkpoint_peer save|load MODEL INPUT OUTPUT GROUP COPIES HEADS LAYERS DIM_FEEDFORWARD
//                        [encoder|additive_pos|additive_rel|emlp]
// encoder (the default): an eTransformerEncoder of LAYERS layers; additive_pos, additive_rel: the same with
// eAdditivePosMultiheadAttention (max_len 16) or eAdditiveRelMultiheadAttention (max_distance 3), their tables
// drawn (non-zero) before a save; emlp: an eMLP from and to COPIES regular copies with LAYERS hidden layers of
// DIM_FEEDFORWARD units (HEADS unused). INPUT holds (2, 5, D) float32 values, raw
// little-endian; OUTPUT gets the (2, 5, D) output the same way.
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>

#include "symm/group/named.h"
#include "symm/nn/additive_attention.h"
#include "symm/nn/checkpoint.h"
#include "symm/nn/encoder.h"
#include "symm/nn/mlp.h"

using namespace symm::nn;

int main(int argc, char** argv) {
  if (argc != 10 && argc != 11) {
    std::cerr << "usage: symm_checkpoint_peer save|load MODEL INPUT OUTPUT GROUP COPIES HEADS LAYERS DIM_FEEDFORWARD "
                 "[encoder|additive_pos|additive_rel|emlp]\n";
    return 2;
  }
  try {
    const std::string mode = argv[1], model = argv[2], input = argv[3], output = argv[4];
    const std::string kind = argc == 11 ? argv[10] : "encoder";
    torch::manual_seed(7);
    at::set_num_threads(1);
    const auto rep = symm::group::Representation::regular(symm::group::make_group(argv[5])).copies(std::stoi(argv[6]));
    const int layers = std::stoi(argv[8]), ff = std::stoi(argv[9]);
    std::shared_ptr<torch::nn::Module> module;
    std::function<torch::Tensor(const torch::Tensor&)> forward;
    const int heads = std::stoi(argv[7]);
    std::shared_ptr<AttentionBackend> attention;
    if (kind == "encoder") {
      attention = eMultiheadAttention(rep, heads).ptr();
    } else if (kind == "additive_pos") {
      auto a = std::make_shared<eAdditivePosMultiheadAttentionImpl>(rep, heads, 16);
      a->reset_parameters();
      attention = a;
    } else if (kind == "additive_rel") {
      auto a = std::make_shared<eAdditiveRelMultiheadAttentionImpl>(rep, heads, 3);
      a->reset_parameters();
      attention = a;
    }
    if (attention) {
      eTransformerEncoderLayer layer(eTransformerEncoderLayerOptions(rep, attention).dim_feedforward(ff));
      eTransformerEncoder encoder(layer, layers);
      module = encoder.ptr();
      forward = [encoder](const torch::Tensor& x) mutable { return encoder->forward(x); };
    } else if (kind == "emlp") {
      eMLP mlp(rep, rep, std::vector<int64_t>(layers, ff));
      module = mlp.ptr();
      forward = [mlp](const torch::Tensor& x) mutable { return mlp->forward(x); };
    } else {
      throw std::invalid_argument("kind must be encoder, additive_pos, additive_rel or emlp, got " + kind);
    }
    if (mode == "save") symm::save(module, model);
    else if (mode == "load") symm::load(module, model);
    else throw std::invalid_argument("mode must be save or load, got " + mode);
    module->eval();

    std::ifstream in(input, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const int64_t n = 2 * 5 * rep.size();
    if (static_cast<int64_t>(bytes.size()) != n * 4) throw std::invalid_argument("input: expected " + std::to_string(n * 4) + " bytes");
    const auto x = torch::from_blob(bytes.data(), {2, 5, rep.size()}, torch::kFloat32).clone();
    torch::NoGradGuard no_grad;
    const auto y = forward(x).contiguous();
    std::ofstream out(output, std::ios::binary);
    out.write(static_cast<const char*>(y.data_ptr()), y.numel() * 4);
    return out ? 0 : 1;
  } catch (const c10::Error& e) {
    std::cerr << e.what_without_backtrace() << "\n";
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
  }
  return 1;
}

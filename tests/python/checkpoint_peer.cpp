// The C++ side of the checkpoint exchange tests: builds an encoder natively in C++, then either saves it
// (`save`) or loads a checkpoint into it (`load`), and writes its eval output on a given input.
//   symm_checkpoint_peer save|load MODEL INPUT OUTPUT GROUP COPIES HEADS LAYERS DIM_FEEDFORWARD
// INPUT holds (2, 5, D) float32 values, raw little-endian; OUTPUT gets the (2, 5, D) output the same way.
#include <fstream>
#include <iostream>
#include <iterator>

#include "symm/group/named.h"
#include "symm/nn/checkpoint.h"
#include "symm/nn/encoder.h"

using namespace symm::nn;

int main(int argc, char** argv) {
  if (argc != 10) {
    std::cerr << "usage: symm_checkpoint_peer save|load MODEL INPUT OUTPUT GROUP COPIES HEADS LAYERS DIM_FEEDFORWARD\n";
    return 2;
  }
  try {
    const std::string mode = argv[1], model = argv[2], input = argv[3], output = argv[4];
    torch::manual_seed(7);
    at::set_num_threads(1);
    const auto rep = symm::group::Representation::regular(symm::group::make_group(argv[5])).copies(std::stoi(argv[6]));
    eTransformerEncoderLayer layer(eTransformerEncoderLayerOptions(rep, eMultiheadAttention(rep, std::stoi(argv[7])).ptr())
                                       .dim_feedforward(std::stoi(argv[9])));
    eTransformerEncoder encoder(layer, std::stoi(argv[8]));
    if (mode == "save") symm::save(encoder, model);
    else if (mode == "load") symm::load(encoder, model);
    else throw std::invalid_argument("mode must be save or load, got " + mode);
    encoder->eval();

    std::ifstream in(input, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const int64_t n = 2 * 5 * rep.size();
    if (static_cast<int64_t>(bytes.size()) != n * 4) throw std::invalid_argument("input: expected " + std::to_string(n * 4) + " bytes");
    const auto x = torch::from_blob(bytes.data(), {2, 5, rep.size()}, torch::kFloat32).clone();
    torch::NoGradGuard no_grad;
    const auto y = encoder->forward(x).contiguous();
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

// The C++ side of the checkpoint exchange tests: builds a model natively in C++, then either saves it
// (`save`) or loads a checkpoint into it (`load`), and writes its eval output on a given input.
//   symm_checkpoint_peer save|load MODEL INPUT OUTPUT GROUP COPIES HEADS LAYERS DIM_FEEDFORWARD
//                        [encoder|additive_pos|additive_rel|emlp|time_cnn [REPS]]
// GROUP is a spec or a JSON file of generators (the group of a model converted from symm_learning).
// encoder (the default): an eTransformerEncoder of LAYERS layers; additive_pos, additive_rel: the same with
// eAdditivePosMultiheadAttention (max_len 16) or eAdditiveRelMultiheadAttention (max_distance 3), their tables
// drawn (non-zero) before a save; emlp: an eMLP from and to COPIES regular copies with LAYERS hidden layers of
// DIM_FEEDFORWARD units (HEADS unused); time_cnn: an eTimeCNNEncoder of LAYERS blocks of DIM_FEEDFORWARD
// channels on series of 5 frames, batch_norm, an eMLP head of one DIM_FEEDFORWARD layer (HEADS unused).
// REPS (emlp, time_cnn), a text file of lines "ROLE K ID_1 .. ID_K N Q_11 Q_12 .. Q_NN" (Q row-major), replaces
// the representation of ROLE: in, out (both COPIES regular copies otherwise) or hidden (the hidden_rep; ours
// otherwise). INPUT holds (2, 5, D) float32 values (D = in's size; time_cnn reads them as 2 series of 5
// frames), raw little-endian; OUTPUT gets the output the same way ((2, 5, D), or (2, out's size) for time_cnn).
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>

#include "symm/group/named.h"
#include "symm/nn/additive_attention.h"
#include "symm/nn/checkpoint.h"
#include "symm/nn/encoder.h"
#include "symm/nn/mlp.h"
#include "symm/nn/time_cnn.h"

using namespace symm::nn;

namespace {

// The representations a REPS file gives, by role.
std::map<std::string, Representation> read_reps(const std::string& path, const symm::group::GroupPtr& g) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("cannot read " + path);
  std::map<std::string, Representation> reps;
  std::string role;
  while (in >> role) {
    int k = 0, n = 0;
    in >> k;
    std::vector<int> irreps(k);
    for (auto& id : irreps) in >> id;
    in >> n;
    Eigen::MatrixXd q(n, n);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) in >> q(i, j);
    if (!in) throw std::invalid_argument(path + ": expected ROLE K IDS N Q for " + role);
    reps.insert_or_assign(role, Representation(g, irreps, q, role));
  }
  return reps;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 10 || argc > 12) {
    std::cerr << "usage: symm_checkpoint_peer save|load MODEL INPUT OUTPUT GROUP COPIES HEADS LAYERS DIM_FEEDFORWARD "
                 "[encoder|additive_pos|additive_rel|emlp|time_cnn [REPS]]\n";
    return 2;
  }
  try {
    const std::string mode = argv[1], model = argv[2], input = argv[3], output = argv[4];
    const std::string kind = argc >= 11 ? argv[10] : "encoder";
    torch::manual_seed(7);
    at::set_num_threads(1);
    const auto g = symm::group::make_group(argv[5]);
    const auto rep = symm::group::Representation::regular(g).copies(std::stoi(argv[6]));
    const auto reps = argc == 12 ? read_reps(argv[11], g) : std::map<std::string, Representation>{};
    const auto role = [&](const std::string& r) { return reps.count(r) ? reps.at(r) : rep; };
    std::optional<Representation> hidden;
    if (reps.count("hidden")) hidden = reps.at("hidden");
    const Representation in_rep = role("in"), out_rep = role("out");
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
      eMLP mlp(eMLPOptions(in_rep, out_rep, std::vector<int64_t>(layers, ff)).hidden_rep(hidden));
      module = mlp.ptr();
      forward = [mlp](const torch::Tensor& x) mutable { return mlp->forward(x); };
    } else if (kind == "time_cnn") {
      eTimeCNNEncoder cnn(eTimeCNNEncoderOptions(in_rep, out_rep, std::vector<int64_t>(layers, ff), 5)
                              .batch_norm(true).mlp_hidden({ff}).hidden_rep(hidden));
      module = cnn.ptr();
      forward = [cnn](const torch::Tensor& x) mutable { return cnn->forward(x.transpose(1, 2)); };
    } else {
      throw std::invalid_argument("kind must be encoder, additive_pos, additive_rel, emlp or time_cnn, got " + kind);
    }
    if (mode == "save") symm::save(module, model);
    else if (mode == "load") symm::load(module, model);
    else throw std::invalid_argument("mode must be save or load, got " + mode);
    module->eval();

    std::ifstream in(input, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const int64_t n = 2 * 5 * in_rep.size();
    if (static_cast<int64_t>(bytes.size()) != n * 4) throw std::invalid_argument("input: expected " + std::to_string(n * 4) + " bytes");
    const auto x = torch::from_blob(bytes.data(), {2, 5, in_rep.size()}, torch::kFloat32).clone();
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

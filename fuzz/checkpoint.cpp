// symm::load on arbitrary bytes, into an encoder layer built from a fixed configuration. The first byte
// picks the framing: odd, the rest is wrapped in a valid header (length and hash), so the fuzzer reaches the
// LibTorch archive and the staging of its entries; even, the rest is the whole file. A load succeeds or
// throws c10::Error, and a refused load leaves every parameter as it was.
//
// SYMM_FUZZ_WRITE_SEED=<dir> writes the seed inputs (a checkpoint of this layer in both framings) and exits.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "symm/group/named.h"
#include "symm/nn/attention.h"
#include "symm/nn/checkpoint.h"
#include "symm/nn/encoder_layer.h"

namespace {

using namespace symm::nn;

eTransformerEncoderLayer& layer() {
  static eTransformerEncoderLayer l = [] {
    torch::manual_seed(0);
    const auto rep = symm::group::Representation::regular(symm::group::make_group("C2")).copies(2);
    return eTransformerEncoderLayer(
        eTransformerEncoderLayerOptions(rep, eMultiheadAttention(rep, 1).ptr()).dim_feedforward(4).dropout(0.0));
  }();
  return l;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) { h ^= c; h *= 1099511628211ULL; }
  return h;
}

std::string framed(const std::string& payload) {
  std::string out = "symm-checkpoint\n";
  for (uint64_t v : {static_cast<uint64_t>(payload.size()), fnv1a(payload)})
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  return out + payload;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  if (const char* dir = std::getenv("SYMM_FUZZ_WRITE_SEED")) {
    const std::string path = std::string(dir) + "/layer.symm";
    symm::save(layer(), path);
    std::ifstream in(path, std::ios::binary);
    const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(std::string(dir) + "/whole", std::ios::binary) << '\0' << file;
    std::ofstream(std::string(dir) + "/payload", std::ios::binary) << '\1' << file.substr(32);
    std::remove(path.c_str());
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const std::vector<torch::Tensor> original = [] {
    std::vector<torch::Tensor> v;
    for (const auto& p : layer()->parameters()) v.push_back(p.detach().clone());
    return v;
  }();
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::istringstream in(data[0] % 2 ? framed(rest) : rest);
  const auto params = layer()->parameters();
  try {
    symm::load(layer(), in);
  } catch (const c10::Error&) {
    for (size_t i = 0; i < params.size(); ++i)
      if (!torch::equal(params[i], original[i])) __builtin_trap();  // a refused load changed the module
    return 0;
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(original[i]);
  return 0;
}

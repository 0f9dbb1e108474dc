// symm check: builds an encoder stack on m regular copies of a group and measures its equivariance error
// over the group's elements, block by block.
#include <iomanip>
#include <iostream>

#include "commands.h"
#include "symm/group/named.h"
#include "symm/nn/encoder.h"
#include "symm/nn/equivariance.h"
#include "symm/nn/mixed_precision.h"
#include "symm/nn/positional.h"

namespace symm::app {

namespace {

struct CheckOptions {
  std::string spec;
  int copies = 4, heads = 2, layers = 2, ff = 0, batch = 2, seq = 6;
  std::string norm = "rmsnorm", attention = "mha", dtype = "float32", device = "cpu";
  bool post_norm = false;
  uint64_t seed = 0;
};

std::shared_ptr<symm::nn::AttentionBackend> make_attention(const CheckOptions& o, const symm::group::Representation& rep) {
  if (o.attention == "mha") return symm::nn::eMultiheadAttention(symm::nn::eMultiheadAttentionOptions(rep, o.heads)).ptr();
  if (o.attention == "rotary") return symm::nn::RotaryAttention(symm::nn::RotaryAttentionOptions(rep, o.heads)).ptr();
  if (o.attention == "alibi") return symm::nn::ALiBiAttention(symm::nn::ALiBiAttentionOptions(rep, o.heads)).ptr();
  throw std::invalid_argument("--attention must be mha, rotary or alibi, got '" + o.attention + "'");
}

// Relative error allowed per dtype: a few hundred roundings of its unit roundoff (2^-53, 2^-24, 2^-8).
double equivariance_threshold(torch::Dtype dtype) {
  if (dtype == torch::kFloat64) return 1e-10;
  if (dtype == torch::kBFloat16) return 5e-2;
  return 1e-5;
}

int run_check(const CheckOptions& o) {
  for (const auto& [name, value] : {std::pair{"--copies", o.copies}, {"--heads", o.heads}, {"--layers", o.layers},
                                    {"--batch", o.batch}, {"--seq", o.seq}})
    if (value < 1) throw std::invalid_argument(std::string(name) + " must be at least 1, got " + std::to_string(value));
  if (o.copies % o.heads != 0) {
    throw std::invalid_argument("--heads " + std::to_string(o.heads) + " does not divide --copies " + std::to_string(o.copies));
  }
  const auto dtype = symm::nn::parse_dtype("--dtype", o.dtype);
  if (o.device == "cuda" && !torch::cuda::is_available()) throw std::invalid_argument("--device cuda: no CUDA device is available");
  const torch::Device device(o.device == "cuda" ? torch::kCUDA : torch::kCPU);
  const auto g = symm::group::make_group(o.spec);
  torch::manual_seed(o.seed);
  const auto rep = symm::group::Representation::regular(g).copies(o.copies);
  const int64_t ff = o.ff > 0 ? o.ff : 2 * rep.size();
  symm::nn::eTransformerEncoderLayer layer(symm::nn::eTransformerEncoderLayerOptions(rep, make_attention(o, rep))
                                               .dim_feedforward(ff)
                                               .norm_module(o.norm)
                                               .norm_first(!o.post_norm)
                                               .device(device)
                                               .dtype(dtype));
  symm::nn::eTransformerEncoder encoder(layer, o.layers);
  encoder->to(device, dtype);
  encoder->eval();
  const auto elements = symm::nn::elements_to_check(*g, 64, o.seed);
  const auto x = torch::randn({o.batch, o.seq, rep.size()}, torch::dtype(dtype).device(device));
  std::cout << "group " << g->name() << " (order " << g->order() << "), " << o.copies << " regular copies (D=" << rep.size()
            << "), " << o.layers << " layers, " << o.heads << " heads, " << o.attention << ", " << o.norm
            << (o.post_norm ? ", post-norm" : ", pre-norm") << ", " << o.dtype << " on " << o.device << ", "
            << elements.size() << " group elements\n";
  double worst = 0;
  auto report = [&](const std::string& block, const std::function<torch::Tensor(const torch::Tensor&)>& f, const torch::Tensor& input) {
    const auto err = symm::nn::equivariance_error(f, rep, rep, input, elements);
    worst = std::max(worst, err.max_relative);
    std::cout << std::left << std::setw(26) << block << " relative_error=" << std::scientific << std::setprecision(3)
              << err.max_relative << " (worst element " << err.worst_element << ")\n";
  };
  auto h = x;
  for (int i = 0; i < o.layers; ++i) {
    auto l = encoder->layers[i]->as<symm::nn::eTransformerEncoderLayerImpl>();
    const std::string name = "layer " + std::to_string(i);
    report(name + " attention", [&](const torch::Tensor& t) { return l->attention_block(t, {}, {}, false, {}, {}); }, h);
    report(name + " feed-forward", [&](const torch::Tensor& t) { return l->feedforward_block(t); }, h);
    report(name, [&](const torch::Tensor& t) { return l->forward(t); }, h);
    torch::NoGradGuard no_grad;
    h = l->forward(h);
  }
  report("encoder (causal)", [&](const torch::Tensor& t) { return encoder->forward(t, {}, {}, true); }, x);
  report("encoder", [&](const torch::Tensor& t) { return encoder->forward(t); }, x);
  const double threshold = equivariance_threshold(dtype);
  std::cout << "max_relative_equivariance_error=" << std::scientific << std::setprecision(3) << worst << "\n";
  return worst < threshold ? 0 : 1;
}

}  // namespace

void add_check_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<CheckOptions>();
  auto* cmd = app.add_subcommand("check", "measure the equivariance error of an encoder stack over the group's elements");
  cmd->add_option("SPEC", o->spec, "group spec (as for symm info), including a JSON generator file")->required();
  cmd->add_option("--copies", o->copies, "regular copies m (features D = m|G|)")->capture_default_str();
  cmd->add_option("--heads", o->heads, "attention heads (must divide --copies)")->capture_default_str();
  cmd->add_option("--layers", o->layers, "encoder layers")->capture_default_str();
  cmd->add_option("--ff", o->ff, "dim_feedforward (default 2D; rounded up to regular copies)");
  cmd->add_option("--norm", o->norm, "rmsnorm or layernorm")->check(CLI::IsMember({"rmsnorm", "layernorm"}))->capture_default_str();
  cmd->add_option("--attention", o->attention, "mha, rotary or alibi")->check(CLI::IsMember({"mha", "rotary", "alibi"}))->capture_default_str();
  auto* pre = cmd->add_flag("--pre-norm", [o](std::int64_t) { o->post_norm = false; }, "normalise before each block (default)");
  cmd->add_flag("--post-norm", o->post_norm, "normalise after each residual sum")->excludes(pre);
  cmd->add_option("--dtype", o->dtype, "float32, float64 or bfloat16 (threshold 1e-5, 1e-10, 5e-2)")
      ->check(CLI::IsMember({"float32", "float64", "bfloat16"}))
      ->capture_default_str();
  cmd->add_option("--device", o->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  cmd->add_option("--batch", o->batch, "batch size")->capture_default_str();
  cmd->add_option("--seq", o->seq, "sequence length")->capture_default_str();
  cmd->add_option("--seed", o->seed, "random seed")->capture_default_str();
  cmd->callback([o, &exit_code] { exit_code = run_check(*o); });
}

}  // namespace symm::app

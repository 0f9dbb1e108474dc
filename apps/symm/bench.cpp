// symm bench: our eTransformerEncoderLayer against torch::nn::TransformerEncoderLayer of the same width,
// timed in one process, interleaved repetition by repetition so that machine noise hits both alike.
#include "commands.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "symm/group/named.h"
#include "symm/nn/encoder_layer.h"

namespace symm::app {

namespace {

struct BenchConfig {
  std::string group;
  int copies, heads, dim_feedforward, batch, seq;
};

struct BenchOptions {
  std::string device = "cpu";
  bool quick = false;
  bool breakdown = false;
  int threads = 0;  // 0: the machine's cores
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int64_t count_parameters(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

/// Times `a` and `b` alternately (a, b, b, a, a, b, ...: neither always goes first) after warm-up and
/// returns their median times in milliseconds. Stops after `min_reps` once both have run `budget_s`
/// seconds, or at `max_reps`.
std::pair<double, double> time_pair(const std::function<void()>& a, const std::function<void()>& b, bool cuda,
                                    int warmup, int min_reps, int max_reps, double budget_s) {
  auto timed = [cuda](const std::function<void()>& f) {
    if (cuda) torch::cuda::synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    f();
    if (cuda) torch::cuda::synchronize();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  for (int i = 0; i < warmup; ++i) {
    timed(a);
    timed(b);
  }
  std::vector<double> ta, tb;
  double total = 0;
  for (int r = 0; r < max_reps && (r < min_reps || total < 2e3 * budget_s); ++r) {
    if (r % 2 == 0) {
      ta.push_back(timed(a));
      tb.push_back(timed(b));
    } else {
      tb.push_back(timed(b));
      ta.push_back(timed(a));
    }
    total += ta.back() + tb.back();
  }
  return {median(ta), median(tb)};
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

struct BenchResult {
  double ratio_eval, ratio_train;
};

/// Median milliseconds of f over `reps` runs after two warm-up runs.
double time_ms(const std::function<void()>& f, bool cuda, int reps) {
  std::vector<double> t;
  for (int r = 0; r < reps + 2; ++r) {
    if (cuda) torch::cuda::synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    f();
    if (cuda) torch::cuda::synchronize();
    if (r >= 2) t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(t);
}

/// Where the time goes, block by block, as comment lines: eval forward of each sub-block of both layers,
/// and, in training, the synthesis of each dense weight of ours.
void print_breakdown(symm::nn::eTransformerEncoderLayer& ours, torch::nn::TransformerEncoderLayer& theirs,
                     const torch::Tensor& x_ours, const torch::Tensor& x_theirs, bool cuda, int reps) {
  namespace snn = symm::nn;
  auto line = [](const std::string& what, double ms) { std::cout << "#   " << what << " " << fixed(ms, 3) << " ms" << std::endl; };
  ours->eval();
  theirs->eval();
  {
    torch::NoGradGuard no_grad;
    const auto xn = ours->norm1.forward(x_ours);
    snn::AttentionCall call;
    call.query = call.key = call.value = xn;
    line("eval ours norm1", time_ms([&] { ours->norm1.forward(x_ours); }, cuda, reps));
    line("eval ours self_attn", time_ms([&] { ours->self_attn->attend(call); }, cuda, reps));
    line("eval ours feedforward", time_ms([&] { ours->feedforward->forward(xn); }, cuda, reps));
    line("eval torch norm1", time_ms([&] { theirs->norm1(x_theirs); }, cuda, reps));
    line("eval torch self_attn", time_ms([&] { theirs->self_attn(x_theirs, x_theirs, x_theirs); }, cuda, reps));
    line("eval torch feedforward",
         time_ms([&] { theirs->linear2(torch::gelu(theirs->linear1(x_theirs))); }, cuda, reps));
  }
  ours->train();
  for (const auto& item : ours->named_modules()) {
    if (auto* lin = dynamic_cast<snn::eLinearImpl*>(item.value().get())) {
      line("train ours weight synthesis " + item.key(), time_ms([&] { lin->weight(); }, cuda, reps));
      line("train ours weight synthesis+backward " + item.key(),
           time_ms([&] { lin->zero_grad(); lin->weight().square().sum().backward(); }, cuda, reps));
    }
  }
}

BenchResult run_config(const BenchConfig& c, const torch::Device& device, bool quick, bool breakdown) {
  namespace snn = symm::nn;
  const auto g = symm::group::make_group(c.group);
  const auto rep = symm::group::Representation::regular(g).copies(c.copies);
  const int64_t d_model = rep.size();

  torch::manual_seed(0);
  auto attn = std::make_shared<snn::eMultiheadAttentionImpl>(snn::eMultiheadAttentionOptions(rep, c.heads).dropout(0.0));
  snn::eTransformerEncoderLayer ours(snn::eTransformerEncoderLayerOptions(rep, attn)
                                         .dim_feedforward(c.dim_feedforward)
                                         .dropout(0.0)
                                         .activation(snn::Activation::gelu()));
  const int64_t ff = ours->feedforward->hidden_size();
  torch::nn::TransformerEncoderLayer theirs(
      torch::nn::TransformerEncoderLayerOptions(d_model, c.heads).dim_feedforward(ff).dropout(0.0).activation(torch::kGELU));
  ours->to(device);
  theirs->to(device);

  const auto opts = torch::TensorOptions().device(device).dtype(torch::kFloat32);
  const auto x_ours = torch::randn({c.batch, c.seq, d_model}, opts);   // batch-first
  const auto x_theirs = torch::randn({c.seq, c.batch, d_model}, opts);  // sequence-first, as torch's C++ layer

  const bool cuda = device.is_cuda();
  const int warmup = quick ? 2 : 5;
  const int min_reps = quick ? 5 : 30;
  const int max_reps = quick ? 5 : 400;
  const double budget_s = quick ? 0.0 : 1.5;

  ours->eval();
  theirs->eval();
  double eval_ours, eval_theirs;
  {
    torch::NoGradGuard no_grad;
    std::tie(eval_ours, eval_theirs) = time_pair([&] { ours->forward(x_ours); }, [&] { theirs->forward(x_theirs); }, cuda,
                                                 warmup, min_reps, max_reps, budget_s);
  }
  ours->train();
  theirs->train();
  auto step = [](torch::nn::Module& m, const std::function<torch::Tensor()>& forward) {
    m.zero_grad();
    forward().square().mean().backward();
  };
  const auto [train_ours, train_theirs] = time_pair([&] { step(*ours, [&] { return ours->forward(x_ours); }); },
                                                    [&] { step(*theirs, [&] { return theirs->forward(x_theirs); }); }, cuda,
                                                    warmup, min_reps, max_reps, budget_s);

  if (breakdown) print_breakdown(ours, theirs, x_ours, x_theirs, cuda, quick ? 5 : 50);
  const BenchResult r{eval_ours / eval_theirs, train_ours / train_theirs};
  std::cout << c.group << " m=" << c.copies << " d_model=" << d_model << " heads=" << c.heads << " ff=" << ff
            << " B=" << c.batch << " T=" << c.seq << " params_ours=" << count_parameters(*ours)
            << " params_torch=" << count_parameters(*theirs) << " eval_ours_ms=" << fixed(eval_ours, 3)
            << " eval_torch_ms=" << fixed(eval_theirs, 3) << " train_ours_ms=" << fixed(train_ours, 3)
            << " train_torch_ms=" << fixed(train_theirs, 3) << " ratio_eval=" << fixed(r.ratio_eval, 3)
            << " ratio_train=" << fixed(r.ratio_train, 3) << std::endl;
  return r;
}

int run_bench(const BenchOptions& o) {
  if (o.device == "cuda" && !torch::cuda::is_available()) {
    throw std::invalid_argument("bench: --device cuda requested, but CUDA is not available in this build or machine");
  }
  if (o.threads < 0) throw std::invalid_argument("bench: --threads must be >= 0, got " + std::to_string(o.threads));
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  const torch::Device device(o.device == "cuda" ? torch::kCUDA : torch::kCPU);

  std::vector<BenchConfig> configs = {
      {"C2", 32, 4, 256, 32, 32},
      {"C8", 16, 4, 512, 32, 32},
      {"D8", 8, 4, 512, 32, 32},
  };
  if (device.is_cuda()) {
    configs.push_back({"C2", 128, 8, 1024, 64, 128});
    configs.push_back({"C8", 32, 8, 1024, 64, 128});
    configs.push_back({"D8", 32, 8, 2048, 64, 128});
  }
  std::cout << "# symm bench: eTransformerEncoderLayer (eMultiheadAttention, GELU, dropout 0, default norm) vs "
               "torch::nn::TransformerEncoderLayer; device="
            << o.device << " threads=" << threads << " libtorch=" << TORCH_VERSION << (o.quick ? " quick" : "")
            << "; times are medians in ms, ratio = ours/torch" << std::endl;
  double worst_eval = 0, worst_train = 0;
  for (const auto& c : configs) {
    const auto r = run_config(c, device, o.quick, o.breakdown);
    worst_eval = std::max(worst_eval, r.ratio_eval);
    worst_train = std::max(worst_train, r.ratio_train);
  }
  std::cout << "worst_ratio_eval=" << fixed(worst_eval, 3) << " worst_ratio_train=" << fixed(worst_train, 3) << std::endl;
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("bench", "time eTransformerEncoderLayer against torch::nn::TransformerEncoderLayer");
  auto o = std::make_shared<BenchOptions>();
  cmd->add_option("--device", o->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_flag("--quick", o->quick, "few repetitions: checks that it runs, not how fast");
  cmd->add_flag("--breakdown", o->breakdown, "also print per-block times (comment lines starting with #)");
  cmd->add_option("--threads", o->threads, "torch intra-op threads (default: the machine's cores)");
  cmd->callback([o, &exit_code] { exit_code = run_bench(*o); });
}

}  // namespace symm::app

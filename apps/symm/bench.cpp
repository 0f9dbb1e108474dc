// symm bench: our eTransformerEncoderLayer against torch::nn::TransformerEncoderLayer of the same width and
// against a plain dense layer of the fastest LibTorch ops, timed in one process under one allocator setting,
// interleaved repetition by repetition so that machine noise hits all alike; and a 4-layer stack of each.
#include "commands.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "symm/allocator.h"
#include "symm/group/named.h"
#include "symm/nn/encoder.h"
#include "symm/nn/functional.h"
#include "symm/nn/mixed_precision.h"
#include "symm/nn/normalization.h"
#include "symm/nn/policy.h"
#include "symm/threads.h"

namespace symm::app {

namespace {

struct BenchConfig {
  std::string group;
  int copies, heads, batch, seq;  // dim_feedforward is 4·D
  torch::Dtype dtype = torch::kFloat32;  // bfloat16: both layers under autocast, float32 parameters
};

struct BenchOptions {
  std::string device = "cpu";
  bool quick = false;
  bool breakdown = false;
  std::string configs = "all";  // small, large, all (and the GPU configs on CUDA) or batch1
  std::string dtype;            // float32, bfloat16 or both; default float32 on the CPU, both on CUDA
  std::string execution = "automatic";
  int threads = 0;  // 0: the machine's cores
  bool policy = false;
};

/// The machine's load average (1, 5, 15 minutes) as /proc/loadavg gives it, or "unknown".
std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  return f >> a >> b >> c ? a + " " + b + " " + c : "unknown";
}

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

/// Times the functions in turn, the order rotating every repetition so that none always goes first, after
/// warm-up; returns their median times in milliseconds. Stops after `min_reps` once all have run `budget_s`
/// seconds, or at `max_reps`.
std::vector<double> time_interleaved(const std::vector<std::function<void()>>& fs, bool cuda, int warmup, int min_reps,
                                     int max_reps, double budget_s) {
  auto timed = [cuda](const std::function<void()>& f) {
    if (cuda) torch::cuda::synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    f();
    if (cuda) torch::cuda::synchronize();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  const size_t n = fs.size();
  for (int i = 0; i < warmup; ++i)
    for (const auto& f : fs) timed(f);
  std::vector<std::vector<double>> t(n);
  double total = 0;
  for (int r = 0; r < max_reps && (r < min_reps || total < 1e3 * n * budget_s); ++r) {
    for (size_t i = 0; i < n; ++i) {
      const size_t k = (r % 2 ? n - 1 - i : i + size_t(r / 2)) % n;
      t[k].push_back(timed(fs[k]));
      total += t[k].back();
    }
  }
  std::vector<double> medians;
  for (auto& v : t) medians.push_back(median(v));
  return medians;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

struct BenchResult {
  double ratio_eval, ratio_train;
};

/// A pre-norm Transformer encoder layer of plain dense LibTorch ops, the fastest each version has: the fused
/// layer_norm, one (3D, D) in-projection, at::scaled_dot_product_attention from LibTorch 2 (else matmul,
/// softmax, matmul), batch-first like ours. The baseline that a weak reference layer cannot flatter.
struct DenseLayerImpl : torch::nn::Module {
  DenseLayerImpl(int64_t d, int64_t heads, int64_t ff) : heads(heads) {
    norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    in_proj = register_module("in_proj", torch::nn::Linear(d, 3 * d));
    out_proj = register_module("out_proj", torch::nn::Linear(d, d));
    linear1 = register_module("linear1", torch::nn::Linear(d, ff));
    linear2 = register_module("linear2", torch::nn::Linear(ff, d));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t b = x.size(0), t = x.size(1), d = x.size(2), hd = d / heads;
    const auto qkv = in_proj(norm1(x)).view({b, t, 3, heads, hd}).permute({2, 0, 3, 1, 4});  // (3, B, H, T, hd)
    const auto q = qkv[0], k = qkv[1], v = qkv[2];
#if TORCH_VERSION_MAJOR >= 2
    const auto a = at::scaled_dot_product_attention(q, k, v);
#else
    const auto a = torch::matmul(torch::softmax(torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(hd)), -1), v);
#endif
    const auto h = x + out_proj(a.transpose(1, 2).reshape({b, t, d}));
    return h + linear2(torch::gelu(linear1(norm2(h))));
  }
  int64_t heads;
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Linear in_proj{nullptr}, out_proj{nullptr}, linear1{nullptr}, linear2{nullptr};
};
TORCH_MODULE(DenseLayer);

int64_t dense_multiply_adds(int64_t d, int64_t ff, int64_t seq) { return 4 * d * d + 2 * d * ff + 2 * seq * d; }

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
    if (ours->uses_isotypic()) {
      // The layer's own path: the changes of basis around forward_isotypic, and its stages inside (the norms
      // and the feed-forward in isotypic rows; attention and the residuals are the rest).
      // The layout's basis and chunks as the functional core gives them (its class is the library's own).
      const auto& layout = ours->isotypic_layout();
      torch::Tensor basis;
      int64_t chunks = 0;
      for (const auto& [name, t] : snn::functional::linear_constants(ours->options.in_rep(), ours->options.in_rep())) {
        if (name == "isotypic_in.basis") basis = t.to(x_ours.options());
        if (name == "isotypic_in.chunks") chunks = t.item<int64_t>();
      }
      const auto z = snn::functional::to_isotypic(x_ours, basis, chunks);
      auto iso_norm = [&](torch::nn::AnyModule& norm) -> std::function<void()> {
        if (auto* rms = dynamic_cast<snn::eRMSNormImpl*>(norm.ptr().get())) return [&, rms] { rms->forward_isotypic(z, layout); };
        if (auto* ln = dynamic_cast<snn::eLayerNormImpl*>(norm.ptr().get())) return [&, ln] { ln->forward_isotypic(z, layout); };
        return {};
      };
      const double layer = time_ms([&] { ours->forward(x_ours); }, cuda, reps);
      const double to_iso = time_ms([&] { snn::functional::to_isotypic(x_ours, basis, chunks); }, cuda, reps);
      const double from_iso = time_ms([&] { snn::functional::from_isotypic(z, basis, chunks); }, cuda, reps);
      const double inner = time_ms([&] { ours->forward_isotypic(z, x_ours.size(0)); }, cuda, reps);
      const double ff = time_ms([&] { ours->feedforward->forward_isotypic(z); }, cuda, reps);
      double norms = 0;
      for (auto* norm : {&ours->norm1, &ours->norm2})
        if (const auto f = iso_norm(*norm)) norms += time_ms(f, cuda, reps);
      line("eval ours isotypic layer", layer);
      line("eval ours isotypic to_isotypic", to_iso);
      line("eval ours isotypic from_isotypic", from_iso);
      line("eval ours isotypic forward_isotypic", inner);
      line("eval ours isotypic norm1+norm2", norms);
      line("eval ours isotypic feedforward", ff);
      line("eval ours isotypic attention and residuals (forward_isotypic - norms - feedforward)", inner - norms - ff);
    }
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

struct Repetitions {
  int warmup, min_reps, max_reps;
  double budget_s;
};

symm::nn::eTransformerEncoderLayer make_layer(const symm::group::Representation& rep, int heads, int64_t ff,
                                              symm::nn::Execution execution) {
  namespace snn = symm::nn;
  auto attn = std::make_shared<snn::eMultiheadAttentionImpl>(snn::eMultiheadAttentionOptions(rep, heads).dropout(0.0));
  return snn::eTransformerEncoderLayer(snn::eTransformerEncoderLayerOptions(rep, attn)
                                          .dim_feedforward(ff)
                                          .dropout(0.0)
                                          .activation(snn::Activation::gelu())
                                          .execution(execution));
}

void train_step(torch::nn::Module& m, const std::function<torch::Tensor()>& forward) {
  m.zero_grad();
  forward().square().mean().backward();
}

BenchResult run_config(const BenchConfig& c, const torch::Device& device, const Repetitions& reps, bool breakdown,
                       symm::nn::Execution execution) {
  std::optional<symm::nn::AutocastGuard> autocast;
  if (c.dtype != torch::kFloat32) autocast.emplace(device.type(), c.dtype);
  const auto g = symm::group::make_group(c.group);
  const auto rep = symm::group::Representation::regular(g).copies(c.copies);
  const int64_t d_model = rep.size();

  torch::manual_seed(0);
  auto ours = make_layer(rep, c.heads, 4 * d_model, execution);
  const int64_t ff = ours->feedforward->hidden_size();
  torch::nn::TransformerEncoderLayer theirs(
      torch::nn::TransformerEncoderLayerOptions(d_model, c.heads).dim_feedforward(ff).dropout(0.0).activation(torch::kGELU));
  DenseLayer best(d_model, c.heads, ff);
  ours->to(device);
  theirs->to(device);
  best->to(device);

  const auto opts = torch::TensorOptions().device(device).dtype(torch::kFloat32);
  const auto x_ours = torch::randn({c.batch, c.seq, d_model}, opts);   // batch-first
  const auto x_theirs = torch::randn({c.seq, c.batch, d_model}, opts);  // sequence-first, as torch's C++ layer

  const bool cuda = device.is_cuda();
  ours->eval();
  theirs->eval();
  best->eval();
  const bool isotypic_eval = ours->uses_isotypic();
  std::vector<double> eval;
  {
    torch::NoGradGuard no_grad;
    eval = time_interleaved({[&] { ours->forward(x_ours); }, [&] { theirs->forward(x_theirs); }, [&] { best->forward(x_ours); }},
                            cuda, reps.warmup, reps.min_reps, reps.max_reps, reps.budget_s);
  }
  ours->train();
  theirs->train();
  const auto train = time_interleaved({[&] { train_step(*ours, [&] { return ours->forward(x_ours); }); },
                                       [&] { train_step(*theirs, [&] { return theirs->forward(x_theirs); }); }},
                                      cuda, reps.warmup, reps.min_reps, reps.max_reps, reps.budget_s);

  if (breakdown) print_breakdown(ours, theirs, x_ours, x_theirs, cuda, reps.min_reps);
  const BenchResult r{eval[0] / eval[1], train[0] / train[1]};
  auto path = [](bool isotypic) { return isotypic ? "isotypic" : "dense"; };
  const double flops_ratio = double(ours->multiply_adds(c.seq)) / double(dense_multiply_adds(d_model, ff, c.seq));
  std::cout << c.group << " m=" << c.copies << " d_model=" << d_model << " heads=" << c.heads << " ff=" << ff
            << " dtype=" << c.dtype << " B=" << c.batch << " T=" << c.seq << " path_eval=" << path(isotypic_eval)
            << " path_train=" << path(ours->uses_isotypic()) << " params_ours=" << count_parameters(*ours)
            << " params_torch=" << count_parameters(*theirs) << " flops_ratio=" << fixed(flops_ratio, 3)
            << " eval_ours_ms=" << fixed(eval[0], 3) << " eval_torch_ms=" << fixed(eval[1], 3)
            << " eval_best_ms=" << fixed(eval[2], 3) << " train_ours_ms=" << fixed(train[0], 3)
            << " train_torch_ms=" << fixed(train[1], 3) << " ratio_eval=" << fixed(r.ratio_eval, 3)
            << " ratio_train=" << fixed(r.ratio_train, 3) << " ratio_eval_best=" << fixed(eval[0] / eval[2], 3) << std::endl;
  return r;
}

/// A 4-layer eTransformerEncoder against torch::nn::TransformerEncoder of 4 layers of the same width.
void run_stack(const BenchConfig& c, const torch::Device& device, const Repetitions& reps, symm::nn::Execution execution) {
  const auto rep = symm::group::Representation::regular(symm::group::make_group(c.group)).copies(c.copies);
  const int64_t d_model = rep.size(), layers = 4;
  torch::manual_seed(0);
  symm::nn::eTransformerEncoder ours(make_layer(rep, c.heads, 4 * d_model, execution), layers);
  const int64_t ff = ours->options.encoder_layer()->feedforward->hidden_size();
  torch::nn::TransformerEncoder theirs(torch::nn::TransformerEncoderOptions(
      torch::nn::TransformerEncoderLayerOptions(d_model, c.heads).dim_feedforward(ff).dropout(0.0).activation(torch::kGELU),
      layers));
  ours->to(device);
  theirs->to(device);
  const auto opts = torch::TensorOptions().device(device).dtype(torch::kFloat32);
  const auto x_ours = torch::randn({c.batch, c.seq, d_model}, opts);
  const auto x_theirs = torch::randn({c.seq, c.batch, d_model}, opts);
  const bool cuda = device.is_cuda();
  ours->eval();
  theirs->eval();
  std::vector<double> eval;
  {
    torch::NoGradGuard no_grad;
    eval = time_interleaved({[&] { ours->forward(x_ours); }, [&] { theirs->forward(x_theirs); }}, cuda, reps.warmup,
                            reps.min_reps, reps.max_reps, reps.budget_s);
  }
  ours->train();
  theirs->train();
  const auto train = time_interleaved({[&] { train_step(*ours, [&] { return ours->forward(x_ours); }); },
                                       [&] { train_step(*theirs, [&] { return theirs->forward(x_theirs); }); }},
                                      cuda, reps.warmup, reps.min_reps, reps.max_reps, reps.budget_s);
  std::cout << c.group << " m=" << c.copies << " layers=" << layers << " d_model=" << d_model << " B=" << c.batch
            << " T=" << c.seq << " stack_eval_ours_ms=" << fixed(eval[0], 3) << " stack_eval_torch_ms=" << fixed(eval[1], 3)
            << " stack_train_ours_ms=" << fixed(train[0], 3) << " stack_train_torch_ms=" << fixed(train[1], 3)
            << " stack_ratio_eval=" << fixed(eval[0] / eval[1], 3) << " stack_ratio_train=" << fixed(train[0] / train[1], 3)
            << std::endl;
}

/// symm bench --policy: one control step (encode the observations, 10 Euler steps of the flow) of FlowPolicy
/// compiled from the D4 regressor of `symm policy` (width 64, 2 decoder layers, 2 heads, horizon 8, 2
/// observations) and from the plain regressor of the same width, and one forward of the D4 regressor's own
/// module; float32, one thread, at batch 1 and 64.
int run_policy_bench(bool quick) {
  symm::set_num_threads(1);
  const auto g = symm::group::make_group("D4");
  symm::group::Representation plane;
  for (int k = 0; k < static_cast<int>(g->irreps().size()); ++k)
    if (g->irrep(k).dim == 2) plane = symm::group::Representation::irrep(g, k);
  const auto cond = symm::group::direct_sum(plane, plane);
  constexpr int64_t kHorizon = 8, kObs = 2, kWidth = 64;
  torch::manual_seed(0);
  symm::nn::eCondTransformerRegressor ours(
      symm::nn::eCondTransformerRegressorOptions(plane, cond, plane, kHorizon, kObs, 2, 2, kWidth).p_drop_emb(0).p_drop_attn(0));
  symm::nn::CondTransformerRegressor plain(
      symm::nn::CondTransformerRegressorOptions(2, 4, 2, kHorizon, kObs, 2, 2, kWidth).p_drop_emb(0).p_drop_attn(0));
  ours->eval(), plain->eval();
  symm::nn::FlowPolicy our_policy(*ours), plain_policy(*plain);
  std::cout << "# symm bench --policy: FlowPolicy control step (encode + 10 flow steps) of the D4 eCondTransformerRegressor "
               "(width 64, 2 layers, 2 heads, horizon 8, 2 observations) vs the plain CondTransformerRegressor of the same width "
               "compiled alike; forward = one forward of the D4 regressor's module; float32, threads=\""
            << symm::thread_setting() << "\" load=\"" << load_average() << "\" libtorch=" << TORCH_VERSION << (quick ? " quick" : "")
            << "; medians in ms" << std::endl;
  const Repetitions reps = quick ? Repetitions{1, 3, 3, 0.0} : Repetitions{10, 50, 2000, 0.5};
  for (const int64_t batch : {1, 64}) {
    const auto obs = torch::randn({batch, kObs, 4}), noise = torch::randn({batch, kHorizon, 2});
    auto out = torch::empty({batch, kHorizon, 2}), out_plain = torch::empty({batch, kHorizon, 2});
    torch::NoGradGuard no_grad;
    const auto t = time_interleaved({[&] { our_policy.act_into(obs, noise, out); }, [&] { plain_policy.act_into(obs, noise, out_plain); },
                                     [&] { ours->forward(noise, 50.0, obs); }},
                                    false, reps.warmup, reps.min_reps, reps.max_reps, reps.budget_s);
    std::cout << "policy batch=" << batch << " control_step_ms=" << fixed(t[0], 4) << " forward_ms=" << fixed(t[2], 4)
              << " plain_control_step_ms=" << fixed(t[1], 4) << " ratio=" << fixed(t[0] / t[1], 3) << std::endl;
  }
  return 0;
}

int run_bench(const BenchOptions& o) {
  if (o.policy) {
    if (o.device != "cpu") throw std::invalid_argument("bench: --policy runs on the CPU only, got --device " + o.device);
    return run_policy_bench(o.quick);
  }
  if (o.device == "cuda" && !torch::cuda::is_available()) {
    throw std::invalid_argument("bench: --device cuda requested, but CUDA is not available in this build or machine");
  }
  if (o.threads < 0) throw std::invalid_argument("bench: --threads must be >= 0, got " + std::to_string(o.threads));
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  symm::set_num_threads(threads);
  const torch::Device device(o.device == "cuda" ? torch::kCUDA : torch::kCPU);

  const auto execution = symm::nn::parse_execution(o.execution);
  const std::vector<BenchConfig> small = {{"C2", 32, 4, 32, 32}, {"C8", 16, 4, 32, 32}, {"D8", 8, 4, 32, 32}};
  const std::vector<BenchConfig> large = {{"D8", 32, 4, 16, 32}, {"O", 16, 4, 16, 32}, {"I", 8, 4, 16, 32}};
  // A control loop's shapes: one sequence, where per-operator overhead rather than arithmetic sets the time.
  const std::vector<BenchConfig> batch1 = {{"D4", 8, 4, 1, 16}, {"D4", 8, 4, 1, 64}, {"D4", 16, 4, 1, 16}, {"D4", 16, 4, 1, 64}};
  // Training-sized shapes for a GPU: 8 heads, B=64, T=128.
  const std::vector<BenchConfig> gpu = {{"C2", 128, 8, 64, 128}, {"C8", 32, 8, 64, 128}, {"D8", 32, 8, 64, 128}};
  std::vector<BenchConfig> shapes;
  if (o.configs == "batch1") shapes = batch1;
  else if (o.configs != "large") shapes.insert(shapes.end(), small.begin(), small.end());
  if (o.configs != "small" && o.configs != "batch1") shapes.insert(shapes.end(), large.begin(), large.end());
  if (device.is_cuda() && o.configs == "all") shapes.insert(shapes.end(), gpu.begin(), gpu.end());
  const std::string dtypes = o.dtype.empty() ? (device.is_cuda() ? "both" : "float32") : o.dtype;
  std::vector<BenchConfig> configs;
  for (const auto* dtype : {"float32", "bfloat16"}) {
    if (dtypes != "both" && dtypes != dtype) continue;
    for (auto c : shapes) {
      c.dtype = symm::nn::parse_dtype("--dtype", dtype);
      configs.push_back(c);
    }
  }
  const Repetitions reps = o.quick ? Repetitions{1, 3, 3, 0.0} : Repetitions{3, 15, 200, 0.6};
  std::cout << "# symm bench: eTransformerEncoderLayer (eMultiheadAttention, GELU, dropout 0, default norm, execution="
            << o.execution << ") vs torch::nn::TransformerEncoderLayer and a dense layer of the fastest ops; device="
            << o.device << " threads=\"" << symm::thread_setting() << "\" load=\"" << load_average() << "\" allocator=\"" << symm::allocator_setting()
            << "\" libtorch=" << TORCH_VERSION << (o.quick ? " quick" : "")
            << "; times are medians in ms, ratio = ours/torch, flops_ratio = our multiply-adds per token (on the training path) / dense" << std::endl;
  double worst_eval = 0, worst_train = 0;
  for (const auto& c : configs) {
    const auto r = run_config(c, device, reps, o.breakdown, execution);
    worst_eval = std::max(worst_eval, r.ratio_eval);
    worst_train = std::max(worst_train, r.ratio_train);
  }
  if (o.configs != "batch1") run_stack(configs.front().group == "C2" ? small[2] : configs.front(), device, reps, execution);
  std::cout << "worst_ratio_eval=" << fixed(worst_eval, 3) << " worst_ratio_train=" << fixed(worst_train, 3) << std::endl;
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("bench", "time eTransformerEncoderLayer against torch::nn::TransformerEncoderLayer");
  auto o = std::make_shared<BenchOptions>();
  cmd->add_option("--device", o->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_flag("--quick", o->quick, "few repetitions: checks that it runs, not how fast");
  cmd->add_flag("--policy", o->policy, "time a control step of the flow-matching policy (FlowPolicy) instead, one thread");
  cmd->add_flag("--breakdown", o->breakdown, "also print per-block times (comment lines starting with #)");
  cmd->add_option("--threads", o->threads, "intra-op threads of torch and of OpenBLAS (default: the machine's cores)");
  cmd->add_option("--configs", o->configs, "small (D <= 128, B=32), large (D 384-512, B=16), all, or batch1 (D4, D 64-128, B=1)")
      ->check(CLI::IsMember({"small", "large", "all", "batch1"}));
  cmd->add_option("--dtype", o->dtype, "float32, bfloat16 (autocast, float32 parameters) or both (default: float32 on cpu, both on cuda)")
      ->check(CLI::IsMember({"float32", "bfloat16", "both"}));
  cmd->add_option("--execution", o->execution, "execution path of our linear maps: automatic, dense or isotypic")
      ->check(CLI::IsMember({"automatic", "dense", "isotypic"}));
  cmd->callback([o, &exit_code] { exit_code = run_bench(*o); });
}

}  // namespace symm::app

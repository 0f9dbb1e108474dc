// symm train: learns the dynamics of a ring of coupled nonlinear oscillators (see train_data.h) with an
// equivariant Transformer and with a plain LibTorch Transformer of the same width, over a sweep of
// training-set sizes, and reports both models' test error and the equivariant model's equivariance error.
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <limits>
#include <memory>
#include <numeric>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/version.h>

#include "commands.h"
#include "distributed.h"
#include "job_checkpoint.h"
#include "job_options.h"
#include "schedule.h"
#include "seeds.h"
#include "symm/nn/checkpoint.h"
#include "symm/nn/encoder.h"
#include "symm/nn/equivariance.h"
#include "symm/nn/mixed_precision.h"
#include "train_data.h"
#include "train_report.h"

namespace symm::app {

namespace {

namespace fs = std::filesystem;
using symm::group::Representation;

constexpr int64_t kValSequences = 64;
constexpr int64_t kTestSequences = 256;
constexpr int64_t kEvalEvery = 25;        // steps between validation passes
constexpr int64_t kPatience = 8;          // validation passes without improvement before stopping early
constexpr int64_t kCheckpointEvery = 100; // steps between checkpoints inside a run
constexpr double kClipNorm = 1.0;
constexpr const char* kCheckpointFormat = "symm-train-checkpoint-1";

struct TrainOptions {
  std::string group;  // empty: D<nodes>
  int nodes = 5;
  std::string train_sizes = "8,32,128";
  int layers = 2;
  int width = 0;  // 0: 8 regular copies of the group
  int heads = 2;
  int steps = 800;
  std::string device = "cpu";
  std::string amp = "off";  // bf16: training steps under autocast, float32 coefficients
  uint64_t seed = 0;
  std::string out = "out/train";
  std::string resume;
  int seq_len = 16;
  int batch_size = 16;
  double lr = 1e-2;
  bool post_norm = false;  // equivariant layers post-norm with eLayerNorm, as torch's layer
  int64_t halt_after = 0;  // stop after this many steps of this invocation, with a checkpoint
  int nproc = 0;           // local processes of a data-parallel job (0: one, or as torchrun says)
  double timeout = 60;     // seconds a rank waits for the others before giving up
};

/// Options after validation, with everything derived from them.
struct Job {
  TrainOptions opt;
  RingSystem system;
  symm::group::GroupPtr group;
  Representation data_rep;
  std::vector<int64_t> sizes;  // ascending
  int64_t width = 0, copies = 0, dim_feedforward = 0;
  torch::Device device{torch::kCPU};
  bool amp = false;  // autocast to bfloat16 in training steps
  nlohmann::json config;  // what a checkpoint must match
};

// --- models -------------------------------------------------------------------------------------------

/// (B, T, 2n) scaled states → (B, T, 2n) scaled increments; token t sees tokens 0..t.
class SequenceModel : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
};

class EquivariantModel : public SequenceModel {
 public:
  explicit EquivariantModel(const Job& job) {
    using namespace symm::nn;
    const auto hidden = Representation::regular(job.group).copies(static_cast<int>(job.copies));
    embed = register_module("embed", eLinear(job.data_rep, hidden));
    auto attention = std::make_shared<eMultiheadAttentionImpl>(hidden, job.opt.heads);
    // The layer's defaults (pre-norm, eRMSNorm), or with --post-norm the mirror of
    // torch::nn::TransformerEncoderLayer, which the baseline uses: post-norm with eLayerNorm.
    eTransformerEncoderLayer layer(eTransformerEncoderLayerOptions(hidden, attention)
                                       .dim_feedforward(job.dim_feedforward)
                                       .dropout(0.0)
                                       .norm_first(!job.opt.post_norm)
                                       .norm_module(job.opt.post_norm ? "layernorm" : "rmsnorm"));
    encoder = register_module("encoder", eTransformerEncoder(layer, job.opt.layers));
    head = register_module("head", eLinear(hidden, job.data_rep));
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    return head->forward(encoder->forward(embed->forward(x), {}, {}, /*is_causal=*/true));
  }

  symm::nn::eLinear embed{nullptr}, head{nullptr};
  symm::nn::eTransformerEncoder encoder{nullptr};
};

class BaselineModel : public SequenceModel {
 public:
  explicit BaselineModel(const Job& job) {
    const int64_t features = job.data_rep.size();
    embed = register_module("embed", torch::nn::Linear(features, job.width));
    encoder = register_module(
        "encoder", torch::nn::TransformerEncoder(torch::nn::TransformerEncoderOptions(
                       torch::nn::TransformerEncoderLayerOptions(job.width, job.opt.heads)
                           .dim_feedforward(job.dim_feedforward)
                           .dropout(0.0)
                           .activation(torch::kGELU),
                       job.opt.layers)));
    head = register_module("head", torch::nn::Linear(job.width, features));
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    // torch's TransformerEncoder is sequence-first and takes the causal mask as a float (T, T) tensor.
    const int64_t t = x.size(1);
    const auto mask = torch::full({t, t}, -std::numeric_limits<float>::infinity(), x.options()).triu(1);
    const auto h = encoder->forward(embed->forward(x).transpose(0, 1), mask);
    return head->forward(h.transpose(0, 1));
  }

  torch::nn::Linear embed{nullptr}, head{nullptr};
  torch::nn::TransformerEncoder encoder{nullptr};
};

const char* model_name(int64_t run) { return run % 2 == 0 ? "equivariant" : "baseline"; }
int64_t run_size(const Job& job, int64_t run) { return job.sizes[static_cast<size_t>(run / 2)]; }

std::shared_ptr<SequenceModel> make_model(const Job& job, int64_t run) {
  std::shared_ptr<SequenceModel> m;
  if (run % 2 == 0) m = std::make_shared<EquivariantModel>(job);
  else m = std::make_shared<BaselineModel>(job);
  m->to(job.device);
  return m;
}

// Seeds of run r: one for the parameter initialisation, one (+1) for the batch sampler.
uint64_t run_seed(const Job& job, int64_t run) { return mix_seed(job.opt.seed, static_cast<uint64_t>(run)); }

// --- options ----------------------------------------------------------------------------------------------

Job make_job(const TrainOptions& opt) {
  Job job;
  job.opt = opt;
  auto positive = [](const char* name, int64_t v) {
    if (v < 1) throw std::invalid_argument(std::string(name) + " must be positive, got " + std::to_string(v));
  };
  if (opt.nodes < 3 || opt.nodes > 64)
    throw std::invalid_argument("--nodes must be between 3 and 64, got " + std::to_string(opt.nodes));
  positive("--layers", opt.layers);
  positive("--heads", opt.heads);
  positive("--steps", opt.steps);
  positive("--batch-size", opt.batch_size);
  if (opt.seq_len < 2) throw std::invalid_argument("--seq-len must be at least 2, got " + std::to_string(opt.seq_len));
  if (!(opt.lr > 0) || !std::isfinite(opt.lr)) throw std::invalid_argument("--lr must be positive");
  if (opt.halt_after < 0) throw std::invalid_argument("--halt-after must be >= 0");
  if (opt.nproc < 0) throw std::invalid_argument("--nproc must be positive");
  if (opt.nproc > opt.batch_size)
    throw std::invalid_argument("--nproc " + std::to_string(opt.nproc) + " is more than --batch-size " +
                                std::to_string(opt.batch_size) + ": every process needs at least one sequence of each batch");
  if (!(opt.timeout >= 1) || !std::isfinite(opt.timeout)) throw std::invalid_argument("--timeout must be at least 1 second");
  job.sizes = parse_count_list("--train-size", opt.train_sizes, 100000, "sequences");
  job.system.nodes = opt.nodes;
  job.group = ring_group(opt.group.empty() ? "D" + std::to_string(opt.nodes) : opt.group, opt.nodes);
  job.data_rep = ring_representation(job.group, job.system);
  const int64_t order = job.group->order();
  job.width = opt.width == 0 ? 8 * order : opt.width;
  if (job.width < 1 || job.width % order != 0)
    throw std::invalid_argument("--width " + std::to_string(job.width) + ": must be a positive multiple of |" +
                                job.group->name() + "| = " + std::to_string(order) + " (whole regular copies of the group)");
  job.copies = job.width / order;
  if (job.copies % opt.heads != 0)
    throw std::invalid_argument("--width " + std::to_string(job.width) + " gives " + std::to_string(job.copies) +
                                " regular copies of " + job.group->name() + ", which --heads " + std::to_string(opt.heads) +
                                " does not divide: each head must own whole copies");
  job.dim_feedforward = 2 * job.width;
  job.device = parse_device(opt.device);
  if (opt.amp != "off" && symm::nn::parse_dtype("--amp", opt.amp) != torch::kBFloat16)
    throw std::invalid_argument("--amp " + opt.amp + ": expected bf16 or off (float16 would need loss scaling)");
  job.amp = opt.amp != "off";
#if TORCH_VERSION_MAJOR < 2
  // LibTorch 1.13's CPU autocast breaks torch::nn::MultiheadAttention (the baseline's) on mixed dtypes.
  if (job.amp && !job.device.is_cuda())
    throw std::invalid_argument("--amp bf16 on the CPU needs LibTorch 2.x (this is " TORCH_VERSION ")");
#endif
  const auto& s = job.system;
  job.config = {{"group", job.group->name()},   {"nodes", opt.nodes},
                {"train_sizes", job.sizes},     {"layers", opt.layers},
                {"width", job.width},           {"heads", opt.heads},
                {"dim_feedforward", job.dim_feedforward},
                {"steps", opt.steps},           {"seed", opt.seed},
                {"seq_len", opt.seq_len},       {"batch_size", opt.batch_size},
                {"lr", opt.lr},                 {"post_norm", opt.post_norm},
                {"amp", opt.amp},
                {"val_sequences", kValSequences},
                {"test_sequences", kTestSequences},
                {"eval_every", kEvalEvery},     {"patience", kPatience},
                {"system", {{"coupling", s.coupling}, {"onsite", s.onsite}, {"quartic", s.quartic}, {"dt", s.dt},
                            {"substeps", s.substeps}, {"amplitude", s.amplitude}}}};
  return job;
}

// --- job state and checkpoints -------------------------------------------------------------------------

/// Everything needed to continue a job bit for bit: finished runs, the CSV so far, and the run in progress.
/// The run in progress is 2 per size: equivariant, then baseline; mid-run the archive also holds its best
/// parameters.
struct JobState : SweepPosition {
  JobState() { csv = "model,train_size,step,train_loss,val_loss,lr\n"; }
  std::vector<RunResult> results;
  double best_val = INFINITY;
  int64_t best_step = 0, bad_evals = 0;
};

nlohmann::json to_json(const RunResult& r) {
  nlohmann::json j = {{"model", r.model},         {"train_size", r.train_size}, {"test_mse", r.test_mse},
                      {"best_val_mse", r.best_val_mse}, {"steps", r.steps}, {"best_step", r.best_step},
                      {"parameters", r.parameters}, {"seconds", r.seconds},
                      {"comm_bytes_per_step", r.comm_bytes_per_step}};
  if (r.dense_comm_bytes_per_step != r.comm_bytes_per_step) j["dense_comm_bytes_per_step"] = r.dense_comm_bytes_per_step;
  if (r.equivariance_error >= 0) j["equivariance_error"] = r.equivariance_error;
  return j;
}

RunResult result_from_json(const nlohmann::json& j) {
  RunResult r;
  r.model = j.at("model");
  r.train_size = j.at("train_size");
  r.test_mse = j.at("test_mse");
  r.best_val_mse = j.at("best_val_mse");
  r.steps = j.at("steps");
  r.best_step = j.at("best_step");
  r.parameters = j.at("parameters");
  r.seconds = j.at("seconds");
  r.equivariance_error = j.value("equivariance_error", -1.0);
  r.comm_bytes_per_step = j.value("comm_bytes_per_step", int64_t{0});
  r.dense_comm_bytes_per_step = j.value("dense_comm_bytes_per_step", r.comm_bytes_per_step);
  return r;
}

struct Training {  // the run in progress
  std::shared_ptr<SequenceModel> model;
  std::unique_ptr<torch::optim::Adam> optimizer;
  at::Generator sampler;
  std::vector<torch::Tensor> best;  // parameters at the best validation loss
};

void save_checkpoint(const std::string& path, const Job& job, const JobState& st, const Training* tr) {
  torch::serialize::OutputArchive root;
  write_checkpoint_header(root, kCheckpointFormat, job.config);
  nlohmann::json results = nlohmann::json::array();
  for (const auto& r : st.results) results.push_back(to_json(r));
  write_sweep_position(root, st, results);
  root.write("best_val", c10::IValue(st.best_val));
  root.write("best_step", c10::IValue(st.best_step));
  root.write("bad_evals", c10::IValue(st.bad_evals));
  if (tr && st.step > 0) {
    write_run_state(root, *tr->model, *tr->optimizer, tr->sampler);
    torch::serialize::OutputArchive best;
    for (size_t i = 0; i < tr->best.size(); ++i) best.write("p" + std::to_string(i), tr->best[i]);
    root.write("best", best);
    root.write("best_count", c10::IValue(static_cast<int64_t>(tr->best.size())));
  }
  save_checkpoint_file(root, path);
}

/// Reads and checks a checkpoint against the job; throws std::invalid_argument with one clear line.
JobState load_checkpoint(const std::string& path, const Job& job) {
  const auto root = open_checkpoint(path, kCheckpointFormat, "symm train", job.config);
  JobState st;
  for (const auto& r : read_sweep_position(root, path, 2 * static_cast<int64_t>(job.sizes.size()), job.opt.steps, st))
    st.results.push_back(result_from_json(r));
  c10::IValue v;
  root->read("best_val", v), st.best_val = v.toDouble();
  root->read("best_step", v), st.best_step = v.toInt();
  root->read("bad_evals", v), st.bad_evals = v.toInt();
  return st;
}

/// The run's model, optimizer and sampler, and its best parameters so far.
void restore_training(const JobState& st, Training& tr) {
  auto& root = *st.archive;
  read_run_state(root, *tr.model, *tr.optimizer, tr.sampler);
  c10::IValue v;
  torch::serialize::InputArchive best;
  root.read("best_count", v);
  root.read("best", best);
  tr.best.clear();
  for (int64_t i = 0; i < v.toInt(); ++i) {
    torch::Tensor t;
    best.read("p" + std::to_string(i), t);
    tr.best.push_back(t);
  }
}

// --- training ----------------------------------------------------------------------------------------

struct Data {
  torch::Tensor train_x, train_y, val_x, val_y, test_x, test_y;  // on the device
};

/// Mean squared error over all rows of x, each rank evaluating its shard.
double mse(DataParallel& dp, SequenceModel& model, const torch::Tensor& x, const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  const auto [begin, end] = dp.shard(x.size(0));
  auto sum = torch::zeros({1}, torch::TensorOptions(torch::kDouble).device(x.device()));
  if (end > begin) {
    model.eval();
    sum += (model.forward(x.narrow(0, begin, end - begin)) - y.narrow(0, begin, end - begin)).pow(2).sum().to(torch::kDouble);
    model.train();
  }
  dp.all_reduce_sum(sum);
  return sum.item<double>() / static_cast<double>(y.numel());
}

void write_outputs(const Job& job, const JobState& st) {
  write_file_atomically((fs::path(job.opt.out) / "metrics.csv").string(), st.csv);
}

/// Trains run st.run from st.step; returns false when halted by --halt-after. Every rank runs it in step;
/// rank 0 alone writes.
bool train_run(const Job& job, const Data& data, DataParallel& dp, JobState& st, int64_t& halt_budget) {
  const int64_t run = st.run, size = run_size(job, run);
  const std::string model = model_name(run);
  const auto seed = run_seed(job, run);
  torch::manual_seed(seed);
  Training tr;
  tr.model = make_model(job, run);
  tr.optimizer = std::make_unique<torch::optim::Adam>(tr.model->parameters(), torch::optim::AdamOptions(job.opt.lr));
  tr.sampler = at::detail::createCPUGenerator(seed + 1);
  if (st.step > 0) restore_training(st, tr);
  st.archive.reset();
  const auto params = tr.model->parameters();
  int64_t n_params = 0;
  for (const auto& p : params) n_params += p.numel();
  dp.broadcast(params);  // the replicas start equal whatever each rank's initialisation did
  GradientAllReduce gradients(dp, params);
  const auto [coefficient_bytes, dense_bytes] = parameter_bytes(*tr.model);
  const int64_t comm_bytes = gradients.bytes_per_step();
  const int64_t dense_comm_bytes = comm_bytes > 0 ? comm_bytes - coefficient_bytes + dense_bytes : 0;

  const auto train_x = data.train_x.narrow(0, 0, size), train_y = data.train_y.narrow(0, 0, size);
  const int64_t tokens_per_step = job.opt.batch_size * train_x.size(1);
  std::ostringstream label;
  label << model << " n=" << size;
  Progress progress(label.str(), job.opt.steps, 100);
  const auto checkpoint = (fs::path(job.opt.out) / "checkpoint.pt").string();
  const auto start = std::chrono::steady_clock::now();
  const double seconds_before = st.seconds;
  auto elapsed = [&] { return seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };

  bool stopped = false;
  while (st.step < job.opt.steps && !stopped) {
    const double lr = warmup_cosine_lr(job.opt.lr, st.step, job.opt.steps);
    for (auto& group : tr.optimizer->param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
    // Every rank draws the same global batch and takes its shard; its loss is its share of the global mean,
    // so the gradients summed over the ranks are those of the whole batch.
    const auto idx = torch::randint(size, {job.opt.batch_size}, tr.sampler, torch::kLong);
    const auto [begin, end] = dp.shard(job.opt.batch_size);
    const auto mine = idx.narrow(0, begin, end - begin).to(job.device);
    const auto target = train_y.index_select(0, mine);
    torch::Tensor prediction;
    {
      std::optional<symm::nn::AutocastGuard> autocast;
      if (job.amp) autocast.emplace(job.device.type(), torch::kBFloat16);
      prediction = tr.model->forward(train_x.index_select(0, mine));
    }
    const auto loss = (prediction.to(target.scalar_type()) - target).pow(2).sum() /
                      static_cast<double>(job.opt.batch_size * target.size(1) * target.size(2));
    tr.optimizer->zero_grad();
    gradients.begin(loss);
    loss.backward();
    const double train_loss = dp.world_size() > 1 ? gradients.finish() : loss.item<double>();
    torch::nn::utils::clip_grad_norm_(params, kClipNorm);
    tr.optimizer->step();
    ++st.step;
    double val = -1;
    if (st.step % kEvalEvery == 0 || st.step == job.opt.steps) {
      val = mse(dp, *tr.model, data.val_x, data.val_y);
      if (val < st.best_val) {
        st.best_val = val, st.best_step = st.step, st.bad_evals = 0;
        tr.best.clear();
        for (const auto& p : params) tr.best.push_back(p.detach().clone());
      } else if (++st.bad_evals >= kPatience) {
        stopped = true;
      }
    }
    st.csv += model + "," + std::to_string(size) + "," + std::to_string(st.step) + "," + format_number(train_loss) + "," +
              (val >= 0 ? format_number(val) : "") + "," + format_number(lr) + "\n";
    progress.update(st.step, train_loss, val, lr, tokens_per_step);
    const bool halt = --halt_budget == 0;
    if ((st.step % kCheckpointEvery == 0 || halt) && st.step < job.opt.steps && !stopped && dp.is_root()) {
      st.seconds = elapsed();
      save_checkpoint(checkpoint, job, st, &tr);
      write_outputs(job, st);
    }
    if (halt && st.step < job.opt.steps && !stopped) {
      progress.finish("halted at step " + std::to_string(st.step) + " (--halt-after); continue with --resume " + checkpoint);
      return false;
    }
  }

  // The run is over: best parameters back, test error, equivariance error.
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size() && i < tr.best.size(); ++i) params[i].copy_(tr.best[i]);
  }
  RunResult r;
  r.model = model;
  r.train_size = size;
  r.test_mse = mse(dp, *tr.model, data.test_x, data.test_y);
  r.best_val_mse = st.best_val;
  r.steps = st.step;
  r.best_step = st.best_step;
  r.parameters = n_params;
  r.seconds = elapsed();
  r.comm_bytes_per_step = comm_bytes;
  r.dense_comm_bytes_per_step = dense_comm_bytes;
  if (run % 2 == 0 && dp.is_root()) {
    tr.model->eval();
    std::vector<int> all(static_cast<size_t>(job.group->order()));
    std::iota(all.begin(), all.end(), 0);
    const auto x = data.test_x.narrow(0, 0, std::min<int64_t>(32, data.test_x.size(0)));
    r.equivariance_error = symm::nn::equivariance_error([&](const torch::Tensor& t) { return tr.model->forward(t); },
                                                        job.data_rep, job.data_rep, x, all)
                               .max_relative;
    try {
      symm::save(tr.model, (fs::path(job.opt.out) / ("equivariant_n" + std::to_string(size) + ".pt")).string());
    } catch (const std::exception& e) {
      std::cerr << "symm train: warning: could not save the equivariant model: " << e.what() << "\n";
    }
  }
  std::ostringstream msg;
  msg << "test MSE " << format_number(r.test_mse) << " (best val " << format_number(r.best_val_mse) << " at step "
      << r.best_step << (st.step < job.opt.steps ? ", stopped early" : "") << "), " << n_params << " parameters, "
      << std::fixed << std::setprecision(1) << r.seconds << " s";
  if (comm_bytes > 0) msg << ", " << comm_bytes << " B all-reduced per step (dense " << dense_comm_bytes << ")";
  if (r.equivariance_error >= 0) msg << std::scientific << std::setprecision(2) << ", equivariance error " << r.equivariance_error;
  progress.finish(msg.str());
  st.results.push_back(r);
  ++st.run;
  st.step = 0, st.best_val = INFINITY, st.best_step = 0, st.bad_evals = 0, st.seconds = 0;
  if (dp.is_root()) {
    save_checkpoint(checkpoint, job, st, nullptr);
    write_outputs(job, st);
  }
  return true;
}

int train_job(const Job& job, DataParallel& dp, JobState& st, std::chrono::steady_clock::time_point t0) {
  const TrainOptions& opt = job.opt;

  std::cout << "symm train: ring of " << opt.nodes << " nonlinear oscillators, group " << job.group->name() << " (order "
            << job.group->order() << "), tokens of " << job.data_rep.size() << " features\n"
            << "  models: width " << job.width << " (" << job.copies << " regular copies), " << opt.layers << " layers, "
            << opt.heads << " heads, feed-forward " << job.dim_feedforward << " (equivariant "
            << (opt.post_norm ? "post-norm eLayerNorm" : "pre-norm eRMSNorm") << ", baseline torch post-norm LayerNorm)\n  "
            << opt.steps
            << " steps max, training sizes";
  for (auto n : job.sizes) std::cout << " " << n;
  std::cout << " sequences of " << opt.seq_len << " tokens\n";
  if (dp.world_size() > 1)
    std::cout << "  data-parallel over " << dp.world_size() << " processes (" << (job.device.is_cuda() ? "NCCL" : "Gloo")
              << "), each on " << opt.batch_size / dp.world_size() << "-" << (opt.batch_size + dp.world_size() - 1) / dp.world_size()
              << " of the " << opt.batch_size << " sequences of a batch\n";
  if (!opt.resume.empty())
    std::cout << "  resuming " << opt.resume << " at run " << st.run << ", step " << st.step << "\n";
  std::cout << std::flush;

  const auto dataset = make_dataset(job.system, job.sizes.back(), kValSequences, kTestSequences, opt.seq_len, opt.seed);
  Data data;
  std::tie(data.train_x, data.train_y) = inputs_and_targets(dataset, dataset.train);
  std::tie(data.val_x, data.val_y) = inputs_and_targets(dataset, dataset.val);
  std::tie(data.test_x, data.test_y) = inputs_and_targets(dataset, dataset.test);
  for (auto* t : {&data.train_x, &data.train_y, &data.val_x, &data.val_y, &data.test_x, &data.test_y}) *t = t->to(job.device);

  int64_t halt_budget = opt.halt_after > 0 ? opt.halt_after : -1;
  const int64_t runs = 2 * static_cast<int64_t>(job.sizes.size());
  while (st.run < runs) {
    if (!train_run(job, data, dp, st, halt_budget)) return 0;
    if (halt_budget == 0 && st.run < runs) {
      std::cout << "  halted after run " << st.run << " (--halt-after); continue with --resume " << opt.out << "/checkpoint.pt\n";
      return 0;
    }
  }

  if (!dp.is_root()) return 0;
  // Summary: table, JSON, plot, and the last lines.
  const RunResult *eq = nullptr, *base = nullptr;
  std::cout << "\n  test MSE of the scaled increments (1 = as large as the increments themselves)\n"
            << "  train_size   equivariant      baseline   baseline/equivariant\n";
  nlohmann::json runs_json = nlohmann::json::array();
  for (size_t i = 0; i + 1 < st.results.size(); i += 2) {
    const auto &e = st.results[i], &b = st.results[i + 1];
    char line[128];
    std::snprintf(line, sizeof line, "  %10lld  %12.4g  %12.4g  %12.2f\n", static_cast<long long>(e.train_size), e.test_mse,
                  b.test_mse, b.test_mse / e.test_mse);
    std::cout << line;
    eq = &e, base = &b;
  }
  for (const auto& r : st.results) runs_json.push_back(to_json(r));
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json summary = {
      {"config", job.config},
      {"device", opt.device},
      {"representation", job.data_rep.name()},
      {"runs", runs_json},
      {"largest_train_size", eq->train_size},
      {"equivariant_test_mse", eq->test_mse},
      {"baseline_test_mse", base->test_mse},
      {"equivariance_error", eq->equivariance_error},
      {"world_size", dp.world_size()},
      {"comm_bytes_per_step", eq->comm_bytes_per_step},
      {"dense_comm_bytes_per_step", eq->dense_comm_bytes_per_step},
      {"baseline_comm_bytes_per_step", base->comm_bytes_per_step},
      {"seconds_this_invocation", total}};
  write_file_atomically((fs::path(opt.out) / "summary.json").string(), summary.dump(2) + "\n");
  write_file_atomically((fs::path(opt.out) / "test_mse.svg").string(),
                        loss_curve_svg(st.results, "Ring of " + std::to_string(opt.nodes) + " oscillators, " +
                                                       job.group->name() + ": test MSE vs training set"));
  std::cout << "  wrote " << opt.out << "/{metrics.csv, summary.json, test_mse.svg, checkpoint.pt} in " << std::fixed
            << std::setprecision(1) << total << " s\n";
  std::cout << "comm_bytes_per_step=" << eq->comm_bytes_per_step << " dense_comm_bytes_per_step=" << eq->dense_comm_bytes_per_step
            << " baseline_comm_bytes_per_step=" << base->comm_bytes_per_step << "\n";
  std::cout << "equivariant_test_mse=" << format_number(eq->test_mse) << " baseline_test_mse=" << format_number(base->test_mse)
            << " equivariance_error=" << format_number(eq->equivariance_error) << " world_size=" << dp.world_size() << std::endl;
  return 0;
}

int run_train(const TrainOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  Job job = make_job(opt);
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(opt.timeout * 1000));
  const auto world = world_from_environment(opt.nproc);
  if (!world && opt.nproc > 1) {
    // Reject what can be rejected before any rank starts; the ranks check again.
    if (!opt.resume.empty()) load_checkpoint(opt.resume, job);
    ensure_writable_directory(opt.out, "--out");
    return launch_local_workers(opt.nproc, timeout);
  }
  if (world && world->world_size > opt.batch_size)
    throw std::invalid_argument("WORLD_SIZE=" + std::to_string(world->world_size) + " is more than --batch-size " +
                                std::to_string(opt.batch_size) + ": every rank needs at least one sequence of each batch");
  if (world && job.device.is_cuda()) job.device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(world->local_rank));
  JobState st;
  if (!opt.resume.empty()) st = load_checkpoint(opt.resume, job);
  if (!world || world->rank == 0) ensure_writable_directory(opt.out, "--out");
  auto dp = world ? std::make_unique<DataParallel>(*world, job.device, timeout) : std::make_unique<DataParallel>();
  dp->check_same("options", job.config.dump());
  if (!dp->is_root()) std::cout.rdbuf(nullptr);  // rank 0 speaks for the job
  try {
    return train_job(job, *dp, st, t0);
  } catch (const WorkerFailure&) {
    throw;
  } catch (const c10::Error& e) {
    // In a job of several processes a failure while training is this rank's (exit 1), not bad input.
    dp->report_failure(e.what_without_backtrace());
    if (dp->world_size() > 1) throw std::runtime_error(e.what_without_backtrace());
    throw;
  } catch (const std::exception& e) {
    dp->report_failure(e.what());
    if (dp->world_size() > 1 && dynamic_cast<const std::invalid_argument*>(&e) != nullptr) throw std::runtime_error(e.what());
    throw;
  }
}

}  // namespace

void add_train_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "train", "learn the dynamics of a ring of nonlinear oscillators with an equivariant and a plain Transformer");
  auto opt = std::make_shared<TrainOptions>();
  cmd->add_option("--group", opt->group, "symmetry group: D<nodes> (default) or C<nodes>");
  cmd->add_option("--nodes", opt->nodes, "oscillators on the ring (3..64)")->capture_default_str();
  cmd->add_option("--train-size", opt->train_sizes, "training sequences: an int, or a comma list for a sweep")
      ->capture_default_str();
  cmd->add_option("--layers", opt->layers, "encoder layers")->capture_default_str();
  cmd->add_option("--width", opt->width, "model width, a multiple of |G| (default: 8 regular copies)");
  cmd->add_option("--heads", opt->heads, "attention heads; must divide width/|G|")->capture_default_str();
  cmd->add_option("--steps", opt->steps, "optimisation steps per run (fewer when validation stops it early)")
      ->capture_default_str();
  cmd->add_option("--device", opt->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--amp", opt->amp, "bf16: mixed precision (autocast) in training steps, float32 coefficients; off")
      ->check(CLI::IsMember({"off", "bf16", "bfloat16"}))
      ->capture_default_str();
  cmd->add_option("--seed", opt->seed, "seed of the data and of the models")->capture_default_str();
  cmd->add_option("--out", opt->out, "output directory")->capture_default_str();
  cmd->add_option("--resume", opt->resume, "continue from a checkpoint.pt of the same configuration");
  cmd->add_option("--seq-len", opt->seq_len, "tokens (time steps) per sequence")->capture_default_str();
  cmd->add_option("--batch-size", opt->batch_size, "sequences per optimisation step")->capture_default_str();
  cmd->add_option("--lr", opt->lr, "peak learning rate of Adam")->capture_default_str();
  cmd->add_flag("--post-norm", opt->post_norm,
                "equivariant layers post-norm with eLayerNorm, like torch's (default: pre-norm eRMSNorm)");
  cmd->add_option("--halt-after", opt->halt_after, "stop after this many steps, leaving a checkpoint (for resume)");
  cmd->add_option("--nproc", opt->nproc,
                  "data-parallel processes on this machine (under torchrun: RANK, WORLD_SIZE, ... instead)");
  cmd->add_option("--timeout", opt->timeout, "seconds a process waits for the others before it gives up")
      ->capture_default_str();
  cmd->callback([opt, &exit_code] { exit_code = run_train(*opt); });
}

int run_default_job() { return run_train(TrainOptions{}); }

}  // namespace symm::app

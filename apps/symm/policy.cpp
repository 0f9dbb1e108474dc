// symm policy: imitation of an obstacle-avoiding expert by a flow-matching policy (see policy_task.h), with
// an equivariant conditional Transformer (eCondTransformerRegressor) and its plain twin of the same width,
// over a sweep of demonstration counts. Reports closed-loop success on held-out draws and the equivariance
// of the whole sampled policy.
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "job_checkpoint.h"
#include "job_options.h"
#include "policy_report.h"
#include "policy_task.h"
#include "schedule.h"
#include "seeds.h"
#include "symm/nn/cond_regressor.h"
#include "symm/threads.h"
#include "train_report.h"

namespace symm::app {

namespace {

namespace fs = std::filesystem;
using symm::group::Representation;

constexpr int64_t kCheckpointEvery = 250;  // steps between checkpoints inside a run
constexpr double kClipNorm = 1.0;
constexpr double kStepScale = 100.0;       // flow time t ∈ [0, 1] enters the step embedding as k = 100·t
constexpr int64_t kPlotted = 6;            // evaluation rollouts kept for the arena plot
constexpr int64_t kEquivarianceDraws = 8;  // draws whose rollouts are compared with their transforms
constexpr const char* kCheckpointFormat = "symm-policy-checkpoint-2";

struct PolicyOptions {
  std::string demos = "4,16";
  int layers = 2;
  int width = 64;
  int heads = 2;
  int steps = 1500;
  int seeds = 3;          // independent repetitions of the sweep (draws, demonstrations, models, noise)
  double ema = 0.995;     // decay of the weights' exponential moving average the evaluation uses; 0: none
  int batch_size = 64;
  double lr = 1e-3;
  int horizon = 4;     // actions predicted per plan
  int execute = 2;     // actions executed before planning again
  int obs = 2;         // observations in the condition
  int flow_steps = 10; // Euler steps of the sampler
  bool position_obs = false;  // each observation also holds the absolute position
  bool obstacle_obs = true;  // each observation also holds the offset from the nearest obstacle's surface
  int near_obstacles = 1;    // with obstacle_obs: offsets from the surfaces of this many nearest obstacles, nearest first
  double obstacle_clip = 0.3;  // with obstacle_obs: offsets longer than this are scaled to this length; 0: none
  double obstacle_scale = 16;  // with obstacle_obs: the (clipped) offsets are multiplied by this
  double goal_clip = 0;      // an offset to the goal longer than this is scaled to this length; 0: none
  double lr_final = 0.05;    // the cosine schedule ends at this fraction of the peak learning rate
  std::string predict = "action";  // what the regressor outputs: "action" (the clean chunk) or "velocity" (a − ε)
  int time_obs = 0;  // invariant features of the flow time appended to every observation token (diagnostic)
  std::string models = "both";  // or "equivariant" / "baseline": train and evaluate only that model (experiments)
  bool trim = true;          // demonstrations end where the expert reaches the goal (the rollout stops there)
  int64_t trim_pad = 0;      // with trim: samples kept from the first state inside the goal's radius on
  int eval = 64;       // held-out draws
  std::string device = "cpu";
  int threads = 0;  // intra-op threads of torch and OpenBLAS; 0: their defaults (the machine's cores)
  uint64_t seed = 0;
  std::string out = "out/policy";
  std::string resume;
  int64_t halt_after = 0;
};

struct Job {
  PolicyOptions opt;
  int64_t token_dim = 4;  // features per observation token: vectors of the plane (and --time-obs invariants)
  PolicyTask task;
  Representation plane, cond_rep;
  std::vector<int64_t> demos;  // ascending
  torch::Device device{torch::kCPU};
  nlohmann::json config;
};

// --- models -------------------------------------------------------------------------------------------

/// Velocity field of the flow: noisy action sequence x (B, H, 2), step k (B), observations z (B, To, token_dim).
class FlowModel : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& k, const torch::Tensor& z) = 0;
};

class EquivariantFlow : public FlowModel {
 public:
  explicit EquivariantFlow(const Job& job) {
    const auto& o = job.opt;
    net = register_module("net", symm::nn::eCondTransformerRegressor(
                                     symm::nn::eCondTransformerRegressorOptions(job.plane, job.cond_rep, job.plane, o.horizon, o.obs,
                                                                                o.layers, o.heads, o.width)
                                         .p_drop_emb(0.0)
                                         .p_drop_attn(0.0)));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& k, const torch::Tensor& z) override { return net->forward(x, k, z); }
  symm::nn::eCondTransformerRegressor net{nullptr};
};

class BaselineFlow : public FlowModel {
 public:
  explicit BaselineFlow(const Job& job) {
    const auto& o = job.opt;
    net = register_module("net", symm::nn::CondTransformerRegressor(
                                     symm::nn::CondTransformerRegressorOptions(2, job.token_dim, 2, o.horizon, o.obs, o.layers, o.heads, o.width)
                                         .p_drop_emb(0.0)
                                         .p_drop_attn(0.0)));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& k, const torch::Tensor& z) override { return net->forward(x, k, z); }
  symm::nn::CondTransformerRegressor net{nullptr};
};

const char* model_name(int64_t run) { return run % 2 == 0 ? "equivariant" : "baseline"; }

/// Runs go seed after seed; within a seed, demonstration count after count, the equivariant model first.
struct RunIndex {
  int64_t seed_index, demos_index, in_seed;
};
RunIndex run_index(const Job& job, int64_t run) {
  const int64_t per_seed = 2 * static_cast<int64_t>(job.demos.size());
  return {run / per_seed, (run % per_seed) / 2, run % per_seed};
}
uint64_t seed_of(const Job& job, int64_t seed_index) { return job.opt.seed + static_cast<uint64_t>(seed_index); }

// --- options ----------------------------------------------------------------------------------------------

Job make_job(const PolicyOptions& opt) {
  Job job;
  job.opt = opt;
  auto in_range = [](const char* name, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
      throw std::invalid_argument(std::string(name) + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                                  ", got " + std::to_string(v));
  };
  in_range("--layers", opt.layers, 1, 16);
  in_range("--heads", opt.heads, 1, 64);
  in_range("--steps", opt.steps, 1, 1000000);
  in_range("--batch-size", opt.batch_size, 1, 65536);
  in_range("--horizon", opt.horizon, 1, 64);
  in_range("--execute", opt.execute, 1, opt.horizon);
  in_range("--obs", opt.obs, 1, 16);
  in_range("--flow-steps", opt.flow_steps, 1, 1000);
  in_range("--eval", opt.eval, 1, 100000);
  in_range("--threads", opt.threads, 0, 1024);
  in_range("--seeds", opt.seeds, 1, 100);
  in_range("--trim-pad", opt.trim_pad, 0, 1000);
  in_range("--near-obstacles", opt.near_obstacles, 1, static_cast<int64_t>(PolicyTask{}.obstacles.size()));
  if (!(opt.obstacle_clip >= 0) || !std::isfinite(opt.obstacle_clip))
    throw std::invalid_argument("--obstacle-clip must be >= 0 (0: no clipping)");
  if (!(opt.obstacle_scale > 0) || !std::isfinite(opt.obstacle_scale)) throw std::invalid_argument("--obstacle-scale must be positive");
  if (!(opt.goal_clip >= 0) || !std::isfinite(opt.goal_clip)) throw std::invalid_argument("--goal-clip must be >= 0 (0: no clipping)");
  if (!(opt.lr_final >= 0 && opt.lr_final <= 1)) throw std::invalid_argument("--lr-final must be in [0, 1]");
  if (!(opt.ema >= 0 && opt.ema < 1)) throw std::invalid_argument("--ema must be in [0, 1), got " + std::to_string(opt.ema));
  if (!(opt.lr > 0) || !std::isfinite(opt.lr)) throw std::invalid_argument("--lr must be positive");
  if (opt.halt_after < 0) throw std::invalid_argument("--halt-after must be >= 0");
  job.demos = parse_count_list("--demos", opt.demos, 10000, "demonstrations");
  if (opt.width < 8 || opt.width % 8 != 0)
    throw std::invalid_argument("--width " + std::to_string(opt.width) + ": must be a positive multiple of |D4| = 8 (whole regular copies)");
  if ((opt.width / 8) % opt.heads != 0)
    throw std::invalid_argument("--width " + std::to_string(opt.width) + " gives " + std::to_string(opt.width / 8) +
                                " regular copies of D4, which --heads " + std::to_string(opt.heads) + " does not divide");
  job.device = parse_device(opt.device);
  job.plane = d4_plane(job.task);
  // (position, goal − position[, offset from the nearest obstacle's surface]) per observation
  job.cond_rep = job.plane;  // goal − position
  if (opt.position_obs) job.cond_rep = symm::group::direct_sum(job.cond_rep, job.plane);
  if (opt.obstacle_obs)
    for (int i = 0; i < opt.near_obstacles; ++i) job.cond_rep = symm::group::direct_sum(job.cond_rep, job.plane);
  if (opt.time_obs > 0)
    job.cond_rep = symm::group::direct_sum(job.cond_rep, Representation::trivial(job.plane.group(), opt.time_obs));
  job.token_dim = job.cond_rep.size();
  const auto& t = job.task;
  job.config = {{"demos", job.demos},          {"layers", opt.layers},        {"width", opt.width},
                {"heads", opt.heads},          {"steps", opt.steps},          {"batch_size", opt.batch_size},
                {"lr", opt.lr},                {"horizon", opt.horizon},      {"execute", opt.execute},
                {"obs", opt.obs},              {"flow_steps", opt.flow_steps}, {"eval", opt.eval},
                {"seed", opt.seed},            {"seeds", opt.seeds},          {"ema", opt.ema},
                {"position_obs", opt.position_obs}, {"obstacle_obs", opt.obstacle_obs}, {"trim", opt.trim}, {"trim_pad", opt.trim_pad},
                {"near_obstacles", opt.near_obstacles}, {"obstacle_clip", opt.obstacle_clip}, {"goal_clip", opt.goal_clip}, {"obstacle_scale", opt.obstacle_scale}, {"lr_final", opt.lr_final}, {"time_obs", opt.time_obs}, {"predict", opt.predict},
                {"task", {{"dt", t.dt}, {"max_speed", t.max_speed}, {"goal_radius", t.goal_radius}, {"max_steps", t.max_steps},
                          {"obstacles", t.obstacles.size()}}}};
  return job;
}

/// The learning rate at step `step`: schedule.h's warm-up and cosine decay, ending at lr_final·peak (the shared
/// schedule itself for its 5%).
double policy_lr(const PolicyOptions& o, int64_t step) {
  if (o.lr_final == 0.05) return warmup_cosine_lr(o.lr, step, o.steps);
  const int64_t warmup = std::max<int64_t>(1, o.steps / 20);
  if (step < warmup) return warmup_cosine_lr(o.lr, step, o.steps);
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, o.steps - warmup));
  return o.lr * (o.lr_final + (1 - o.lr_final) * 0.5 * (1 + std::cos(M_PI * progress)));
}

// --- data ----------------------------------------------------------------------------------------------

/// Observation tokens (To, token_dim) at step t of a state history: (position, goal − position) for steps
/// t−To+1..t (clamped at 0), and with --obstacle-obs the offset p − q from the nearest point q of the nearest
/// obstacle's surface (its direction is the outward normal, its length the clearance). The expert's command
/// depends on the offset to the goal and on the position among the fixed obstacles; handing the models the
/// offsets spares them learning a subtraction and the obstacles' geometry from positions. All parts are vectors
/// of the plane and the nearest obstacle of g·p is g applied to that of p (the layout is D4-invariant), so D4
/// acts on the token as on (position, goal). --near-obstacles N appends the offsets of the N nearest obstacles,
/// nearest first. An obstacle offset longer than --obstacle-clip (default 0.3, past the expert's 0.25 zone of
/// influence) is scaled to that length, and the offsets are then multiplied by --obstacle-scale (default 16):
/// far obstacles all look alike, and the avoidance zone spans a range of inputs like the goal offset's, not a
/// twentieth of it. Both are scalings by a function of the norm, which D4 preserves.
void observation(const Job& job, const std::vector<Vec2>& states, int64_t t, const Vec2& goal, float* out) {
  const int64_t obs = job.opt.obs, d = job.token_dim;
  for (int64_t j = 0; j < obs; ++j) {
    const auto& p = states[static_cast<size_t>(std::max<int64_t>(0, t - obs + 1 + j))];
    float* o = out + d * j;
    {
      // The expert's command depends on the goal's direction and, inside slow_radius, its distance: a clip
      // (by the norm, D4-invariant) keeps both and drops the far distance.
      const double gx = goal[0] - p[0], gy = goal[1] - p[1], gn = std::hypot(gx, gy), clip = job.opt.goal_clip;
      const double s = clip > 0 && gn > clip ? clip / gn : 1.0;
      *o++ = static_cast<float>(gx * s), *o++ = static_cast<float>(gy * s);
    }
    if (job.opt.position_obs) *o++ = static_cast<float>(p[0]), *o++ = static_cast<float>(p[1]);
    if (job.opt.obstacle_obs) {
      // The obstacles by their gap (ties by index: the only place where the order of g·p's obstacles can
      // differ from g's image of p's, on a set of measure zero).
      const auto& obstacles = job.task.obstacles;
      std::array<std::pair<double, size_t>, 8> by_gap;
      const size_t n_ob = std::min(obstacles.size(), by_gap.size());
      for (size_t i = 0; i < n_ob; ++i)
        by_gap[i] = {std::hypot(p[0] - obstacles[i].centre[0], p[1] - obstacles[i].centre[1]) - obstacles[i].radius, i};
      const size_t k = static_cast<size_t>(job.opt.near_obstacles);
      std::partial_sort(by_gap.begin(), by_gap.begin() + k, by_gap.begin() + n_ob);
      for (size_t i = 0; i < k; ++i) {
        const auto [gap, index] = by_gap[i];
        const auto& ob = obstacles[index];
        const double rx = p[0] - ob.centre[0], ry = p[1] - ob.centre[1], rn = std::hypot(rx, ry);
        double s = rn > 0 ? gap / rn : 0.0;  // offset p − q, length |gap|
        const double clip = job.opt.obstacle_clip;
        if (clip > 0 && std::abs(gap) > clip) s *= clip / std::abs(gap);
        if (job.opt.obstacle_scale != 1) s *= job.opt.obstacle_scale;
        *o++ = static_cast<float>(rx * s), *o++ = static_cast<float>(ry * s);
      }
    }
  }
}

/// Writes the flow-time features cos(jπt), j = 0..n−1 (j = 0: t itself) into the last n features of every token.
void set_time_features(const Job& job, torch::Tensor& cond, const torch::Tensor& t) {
  const int64_t n = job.opt.time_obs;
  if (n == 0) return;
  const auto tt = t.reshape({-1, 1, 1});
  std::vector<torch::Tensor> f{tt};
  for (int64_t j = 1; j < n; ++j) f.push_back(torch::cos(tt * (M_PI * static_cast<double>(j))));
  cond.narrow(2, job.token_dim - n, n).copy_(torch::cat(f, 2).expand({cond.size(0), cond.size(1), n}));
}

struct Demonstrations {
  torch::Tensor cond, actions;  // (N, To, token_dim), (N, H, 2) actions / max_speed, episode after episode
  std::vector<int64_t> ends;    // samples of the first n episodes: ends[n − 1]
  int64_t expert_successes = 0;
};

/// Expert episodes from the training draws, cut into (observations, next H commands) samples at every step;
/// with --trim only the steps before the expert reaches the goal (a rollout ends there, so the states inside
/// the goal's radius are never seen; untrimmed, they are more than half the samples).
Demonstrations make_demonstrations(const Job& job, const std::vector<Draw>& draws) {
  const auto& o = job.opt;
  PolicyTask longer = job.task;
  longer.max_steps += o.horizon;  // commands beyond the episode's end complete the last samples' horizons
  Demonstrations d;
  const int64_t per_episode = job.task.max_steps;
  const int64_t n = static_cast<int64_t>(draws.size()) * per_episode;
  d.cond = torch::empty({n, o.obs, job.token_dim});
  d.actions = torch::empty({n, o.horizon, 2});
  auto* c = d.cond.data_ptr<float>();
  auto* a = d.actions.data_ptr<float>();
  int64_t row = 0;
  for (const auto& draw : draws) {
    const auto ep = expert_episode(longer, draw);
    d.expert_successes += expert_episode(job.task, draw).success;
    int64_t inside = 0;
    for (int64_t t = 0; t < per_episode; ++t, ++row) {
      if (o.trim && std::hypot(ep.states[t][0] - draw.goal[0], ep.states[t][1] - draw.goal[1]) < job.task.goal_radius &&
          inside++ >= o.trim_pad)
        break;
      observation(job, ep.states, t, draw.goal, c + row * o.obs * job.token_dim);
      for (int64_t h = 0; h < o.horizon; ++h)
        for (int i = 0; i < 2; ++i) a[(row * o.horizon + h) * 2 + i] = static_cast<float>(ep.actions[t + h][i] / job.task.max_speed);
    }
    d.ends.push_back(row);
  }
  d.cond = d.cond.narrow(0, 0, row).clone();
  d.actions = d.actions.narrow(0, 0, row).clone();
  return d;
}

// --- closed-loop rollouts ----------------------------------------------------------------------------

struct Rollouts {
  std::vector<std::vector<Vec2>> paths;
  std::vector<bool> success;
  std::vector<double> final_distance;
};

/// Runs the policy from every (draw, element) pair: the draw transformed by D4 element `elements[i]`, and the
/// sampler's noise of base draw `base[i]` transformed by the same element. Noise per plan comes from a
/// generator seeded by `seed`, so the rollout of draw b under element e is the transform of the rollout of
/// b exactly when the policy is equivariant.
Rollouts rollout(const Job& job, FlowModel& model, const std::vector<Draw>& draws, const std::vector<int64_t>& base,
                 const std::vector<int>& elements, uint64_t seed) {
  const auto& o = job.opt;
  const auto& task = job.task;
  const int64_t b = static_cast<int64_t>(base.size()), n_base = static_cast<int64_t>(draws.size());
  Rollouts r;
  std::vector<Draw> local(static_cast<size_t>(b));
  std::vector<torch::Tensor> mats;
  for (int64_t i = 0; i < b; ++i) {
    const auto& d = draws[static_cast<size_t>(base[i])];
    const int e = elements[static_cast<size_t>(i)];
    local[i] = {act_d4(job.plane, e, d.start), act_d4(job.plane, e, d.goal)};
    mats.push_back(symm::nn::to_tensor(Eigen::MatrixXd(job.plane(e).array().round())).to(torch::kFloat32));
  }
  const auto rho = torch::stack(mats);  // (b, 2, 2)
  const auto index = torch::tensor(base, torch::kLong);
  r.paths.assign(static_cast<size_t>(b), {});
  for (int64_t i = 0; i < b; ++i) r.paths[i].push_back(local[i].start);
  std::vector<bool> done(static_cast<size_t>(b), false), crashed(static_cast<size_t>(b), false);
  r.success.assign(static_cast<size_t>(b), false);
  auto gen = at::detail::createCPUGenerator(seed);
  torch::NoGradGuard no_grad;
  model.eval();
  auto cond = torch::empty({b, o.obs, job.token_dim});
  for (int64_t t = 0; t < task.max_steps;) {
    const auto noise = torch::randn({n_base, o.horizon, 2}, gen);
    // x_i = ρ(e_i) ε_{base_i}, row by row: (b, H, 2) · ρᵀ.
    auto x = torch::matmul(noise.index_select(0, index), rho.transpose(1, 2)).to(job.device);
    for (int64_t i = 0; i < b; ++i) observation(job, r.paths[i], static_cast<int64_t>(r.paths[i].size()) - 1, local[i].goal, cond[i].data_ptr<float>());
    auto z = cond.to(job.device).clone();
    for (int k = 0; k < o.flow_steps; ++k) {
      set_time_features(job, z, torch::full({b}, static_cast<double>(k) / o.flow_steps, z.options()));
      const auto time = torch::full({b}, kStepScale * k / o.flow_steps, x.options());
      const auto out = model.forward(x, time, z);
      // velocity: x += v dt; action: the velocity of the straight line from x to the predicted chunk â,
      // (â − x) / (1 − t), so the last step lands on â.
      x = o.predict == "velocity" ? x + out / static_cast<double>(o.flow_steps) : x + (out - x) / static_cast<double>(o.flow_steps - k);
    }
    const auto actions = x.to(torch::kCPU, torch::kFloat64).contiguous();
    const auto* a = actions.data_ptr<double>();
    for (int64_t h = 0; h < o.execute && t < task.max_steps; ++h, ++t) {
      for (int64_t i = 0; i < b; ++i) {
        auto& path = r.paths[i];
        if (done[i]) {
          path.push_back(path.back());
          continue;
        }
        const double* u = a + (i * o.horizon + h) * 2;
        path.push_back(task.step(path.back(), {u[0] * task.max_speed, u[1] * task.max_speed}));
        if (task.clearance(path.back()) < 0) crashed[i] = done[i] = true;
        else if (std::hypot(path.back()[0] - local[i].goal[0], path.back()[1] - local[i].goal[1]) < task.goal_radius) r.success[i] = done[i] = true;
      }
    }
  }
  for (int64_t i = 0; i < b; ++i)
    r.final_distance.push_back(std::hypot(r.paths[i].back()[0] - local[i].goal[0], r.paths[i].back()[1] - local[i].goal[1]));
  model.train();
  return r;
}

/// Largest distance between the rollout of draw b under element e and the transform by e of its rollout.
double policy_equivariance(const Job& job, FlowModel& model, const std::vector<Draw>& draws, uint64_t seed) {
  const int order = job.plane.group()->order();
  std::vector<int64_t> base;
  std::vector<int> elements;
  for (int e = 0; e < order; ++e)
    for (int64_t i = 0; i < static_cast<int64_t>(draws.size()); ++i) base.push_back(i), elements.push_back(e);
  const auto r = rollout(job, model, draws, base, elements, seed);
  double worst = 0;
  const size_t n = draws.size();
  for (size_t k = 0; k < base.size(); ++k) {
    const auto& mine = r.paths[k];
    const auto& reference = r.paths[k % n];  // element 0 (the identity) comes first
    for (size_t t = 0; t < mine.size(); ++t) {
      const Vec2 expected = act_d4(job.plane, elements[k], reference[t]);
      worst = std::max({worst, std::abs(mine[t][0] - expected[0]), std::abs(mine[t][1] - expected[1])});
    }
  }
  return worst;
}

// --- job state and checkpoints -------------------------------------------------------------------------

struct JobState : SweepPosition {
  JobState() { csv = "model,demos,step,loss,lr\n"; }
  std::vector<PolicyResult> results;
  double loss_average = 0;  // running mean of the training loss (last ~100 steps)
};

nlohmann::json to_json(const PolicyResult& r) {
  nlohmann::json rollouts = nlohmann::json::array();
  for (const auto& path : r.rollouts) {
    nlohmann::json p = nlohmann::json::array();
    for (const auto& v : path) p.push_back({v[0], v[1]});
    rollouts.push_back(p);
  }
  nlohmann::json j = {{"model", r.model}, {"seed", r.seed}, {"demos", r.demos}, {"success", r.success}, {"final_distance", r.final_distance},
                      {"train_loss", r.train_loss}, {"policy_equivariance_error", r.policy_equivariance}, {"steps", r.steps},
                      {"parameters", r.parameters}, {"seconds", r.seconds}, {"rollouts", rollouts},
                      {"rollout_success", r.rollout_success}};
  if (r.model_equivariance >= 0) j["model_equivariance_error"] = r.model_equivariance;
  return j;
}

PolicyResult result_from_json(const nlohmann::json& j) {
  PolicyResult r;
  r.model = j.at("model");
  r.seed = j.at("seed");
  r.demos = j.at("demos");
  r.success = j.at("success");
  r.final_distance = j.at("final_distance");
  r.train_loss = j.at("train_loss");
  r.policy_equivariance = j.at("policy_equivariance_error");
  r.model_equivariance = j.value("model_equivariance_error", -1.0);
  r.steps = j.at("steps");
  r.parameters = j.at("parameters");
  r.seconds = j.at("seconds");
  for (const auto& p : j.at("rollouts")) {
    r.rollouts.emplace_back();
    for (const auto& v : p) r.rollouts.back().push_back({v[0].get<double>(), v[1].get<double>()});
  }
  for (const auto& b : j.at("rollout_success")) r.rollout_success.push_back(b.get<bool>());
  return r;
}

struct Training {
  std::shared_ptr<FlowModel> model;
  std::unique_ptr<torch::optim::Adam> optimizer;
  at::Generator sampler;
  std::vector<torch::Tensor> ema;  // moving average of the parameters, in their order
};

/// The EMA after step `step` (1-based) with its usual warm-up: decay min(ema, (1 + step) / (10 + step)), so the
/// average forgets the random initialisation within the first few dozen steps.
void update_ema(Training& tr, double decay, int64_t step) {
  torch::NoGradGuard no_grad;
  const double d = std::min(decay, (1.0 + static_cast<double>(step)) / (10.0 + static_cast<double>(step)));
  const auto params = tr.model->parameters();
  for (size_t i = 0; i < params.size(); ++i) tr.ema[i].mul_(d).add_(params[i].detach(), 1 - d);
}

void save_checkpoint(const std::string& path, const Job& job, const JobState& st, const Training* tr) {
  torch::serialize::OutputArchive root;
  write_checkpoint_header(root, kCheckpointFormat, job.config);
  nlohmann::json results = nlohmann::json::array();
  for (const auto& r : st.results) results.push_back(to_json(r));
  write_sweep_position(root, st, results);
  root.write("loss_average", c10::IValue(st.loss_average));
  if (tr && st.step > 0) {
    write_run_state(root, *tr->model, *tr->optimizer, tr->sampler);
    for (size_t i = 0; i < tr->ema.size(); ++i) root.write("ema_" + std::to_string(i), tr->ema[i]);
  }
  save_checkpoint_file(root, path);
}

JobState load_checkpoint(const std::string& path, const Job& job) {
  const auto root = open_checkpoint(path, kCheckpointFormat, "symm policy", job.config);
  JobState st;
  for (const auto& r : read_sweep_position(root, path, 2 * static_cast<int64_t>(job.demos.size()) * job.opt.seeds, job.opt.steps, st))
    st.results.push_back(result_from_json(r));
  c10::IValue v;
  root->read("loss_average", v), st.loss_average = v.toDouble();
  return st;
}

// --- training and evaluation --------------------------------------------------------------------------

struct Data {
  Demonstrations demos;
  torch::Tensor cond, actions;  // on the device
  std::vector<Draw> eval;
};

/// Trains run st.run from st.step, then evaluates it; returns false when halted by --halt-after.
bool train_run(const Job& job, const Data& data, JobState& st, int64_t& halt_budget) {
  const auto& o = job.opt;
  const int64_t run = st.run;
  const auto index = run_index(job, run);
  const int64_t demos = job.demos[static_cast<size_t>(index.demos_index)];
  const std::string name = model_name(run);
  const uint64_t job_seed = seed_of(job, index.seed_index);
  const auto seed = mix_seed(job_seed, static_cast<uint64_t>(index.in_seed));
  torch::manual_seed(seed);
  Training tr;
  if (run % 2 == 0) tr.model = std::make_shared<EquivariantFlow>(job);
  else tr.model = std::make_shared<BaselineFlow>(job);
  tr.model->to(job.device);
  tr.optimizer = std::make_unique<torch::optim::Adam>(tr.model->parameters(), torch::optim::AdamOptions(o.lr));
  tr.sampler = at::detail::createCPUGenerator(seed + 1);
  const auto params = tr.model->parameters();
  for (const auto& p : params) tr.ema.push_back(p.detach().clone());
  if (st.step > 0) {
    read_run_state(*st.archive, *tr.model, *tr.optimizer, tr.sampler);
    for (size_t i = 0; i < tr.ema.size(); ++i) st.archive->read("ema_" + std::to_string(i), tr.ema[i]);
  }
  st.archive.reset();
  int64_t n_params = 0;
  for (const auto& p : params) n_params += p.numel();

  const int64_t samples = data.demos.ends[static_cast<size_t>(demos - 1)];
  const auto cond = data.cond.narrow(0, 0, samples), actions = data.actions.narrow(0, 0, samples);
  Progress progress(name + " seed=" + std::to_string(job_seed) + " demos=" + std::to_string(demos), o.steps, 250);
  const auto checkpoint = (fs::path(o.out) / "checkpoint.pt").string();
  const auto start = std::chrono::steady_clock::now();
  const double seconds_before = st.seconds;
  auto elapsed = [&] { return seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };

  while (st.step < o.steps) {
    const double lr = policy_lr(o, st.step);
    for (auto& group : tr.optimizer->param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
    // Rectified flow: x_t = (1 − t) ε + t a on the straight line from noise to the expert's commands; the
    // model regresses its velocity a − ε.
    const auto idx = torch::randint(samples, {o.batch_size}, tr.sampler, torch::kLong);
    const auto eps = torch::randn({o.batch_size, o.horizon, 2}, tr.sampler);
    const auto t = torch::rand({o.batch_size, 1, 1}, tr.sampler);
    const auto dev_idx = idx.to(job.device);
    const auto a = actions.index_select(0, dev_idx), e = eps.to(job.device), tt = t.to(job.device);
    const auto xt = (1 - tt) * e + tt * a;
    auto c = cond.index_select(0, dev_idx);
    set_time_features(job, c, tt);
    const auto out = tr.model->forward(xt, tt.reshape({-1}) * kStepScale, c);
    const auto loss = torch::mse_loss(out, o.predict == "velocity" ? a - e : a);
    tr.optimizer->zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(params, kClipNorm);
    tr.optimizer->step();
    ++st.step;
    if (o.ema > 0) update_ema(tr, o.ema, st.step);
    const double l = loss.item<double>();
    st.loss_average = st.step == 1 ? l : 0.99 * st.loss_average + 0.01 * l;
    st.csv += name + "," + std::to_string(demos) + "," + std::to_string(st.step) + "," + format_number(l) + "," + format_number(lr) + "\n";
    progress.update(st.step, l, -1, lr, o.batch_size * o.horizon);
    const bool halt = --halt_budget == 0;
    if ((st.step % kCheckpointEvery == 0 || halt) && st.step < o.steps) {
      st.seconds = elapsed();
      save_checkpoint(checkpoint, job, st, &tr);
      write_file_atomically((fs::path(o.out) / "metrics.csv").string(), st.csv);
    }
    if (halt && st.step < o.steps) {
      progress.finish("halted at step " + std::to_string(st.step) + " (--halt-after); continue with --resume " + checkpoint);
      return false;
    }
  }

  // Closed-loop evaluation (with the averaged weights) on the held-out draws, and equivariance of the model and
  // of the whole policy.
  if (o.ema > 0) {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(tr.ema[i]);
  }
  PolicyResult r;
  r.model = name;
  r.seed = job_seed;
  r.demos = demos;
  std::vector<int64_t> base(data.eval.size());
  std::iota(base.begin(), base.end(), 0);
  const auto eval = rollout(job, *tr.model, data.eval, base, std::vector<int>(base.size(), 0), mix_seed(job_seed, 1000));
  for (size_t i = 0; i < base.size(); ++i) r.success += eval.success[i], r.final_distance += eval.final_distance[i];
  r.success /= static_cast<double>(base.size());
  r.final_distance /= static_cast<double>(base.size());
  for (size_t i = 0; i < base.size() && static_cast<int64_t>(i) < kPlotted; ++i)
    r.rollouts.push_back(eval.paths[i]), r.rollout_success.push_back(eval.success[i]);
  const std::vector<Draw> few(data.eval.begin(), data.eval.begin() + std::min<int64_t>(kEquivarianceDraws, data.eval.size()));
  r.policy_equivariance = policy_equivariance(job, *tr.model, few, mix_seed(job_seed, 2000));
  if (auto* eq = dynamic_cast<EquivariantFlow*>(tr.model.get())) r.model_equivariance = eq->net->check_equivariance(8, 0, 0, 64, 1.0, 1.0).max_relative;
  r.train_loss = st.loss_average;
  r.steps = st.step;
  r.parameters = n_params;
  r.seconds = elapsed();
  std::ostringstream msg;
  msg << "success " << std::fixed << std::setprecision(3) << r.success << ", final distance " << r.final_distance << ", loss "
      << std::setprecision(4) << r.train_loss << ", " << n_params << " parameters, " << std::setprecision(1) << r.seconds << " s"
      << std::scientific << std::setprecision(2) << ", rollout equivariance " << r.policy_equivariance;
  if (r.model_equivariance >= 0) msg << ", forward equivariance " << r.model_equivariance;
  progress.finish(msg.str());
  st.results.push_back(r);
  ++st.run;
  st.step = 0, st.loss_average = 0, st.seconds = 0;
  save_checkpoint(checkpoint, job, st, nullptr);
  write_file_atomically((fs::path(o.out) / "metrics.csv").string(), st.csv);
  return true;
}

/// The draws and demonstrations of one seed: its training draws (the largest count; smaller counts take a
/// prefix) and its held-out draws.
Data make_data(const Job& job, uint64_t seed) {
  Data data;
  const auto train_draws = draw_tasks(job.task, job.demos.back(), mix_seed(seed, 1));
  data.eval = draw_tasks(job.task, job.opt.eval, mix_seed(seed, 2));
  data.demos = make_demonstrations(job, train_draws);
  data.cond = data.demos.cond.to(job.device);
  data.actions = data.demos.actions.to(job.device);
  return data;
}

/// Mean and sample standard deviation of the success over the seeds, per model and demonstration count.
struct Spread {
  double mean = 0, std = 0, lo = 1, hi = 0, distance = 0;
};
Spread spread(const std::vector<PolicyResult>& results, const std::string& model, int64_t demos) {
  Spread s;
  std::vector<double> v;
  for (const auto& r : results)
    if (r.model == model && r.demos == demos) v.push_back(r.success), s.distance += r.final_distance;
  if (v.empty()) return s;
  for (double x : v) s.mean += x, s.lo = std::min(s.lo, x), s.hi = std::max(s.hi, x);
  s.mean /= static_cast<double>(v.size()), s.distance /= static_cast<double>(v.size());
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = v.size() > 1 ? std::sqrt(s.std / static_cast<double>(v.size() - 1)) : 0.0;
  return s;
}

int run_policy(const PolicyOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  const Job job = make_job(opt);
  JobState st;
  if (!opt.resume.empty()) st = load_checkpoint(opt.resume, job);
  ensure_writable_directory(opt.out, "--out");
  if (opt.threads > 0) symm::set_num_threads(opt.threads);

  const Data first = make_data(job, seed_of(job, 0));
  std::cout << "symm policy: point robot in [-1, 1]² around " << job.task.obstacles.size() << " obstacles, group D4 on the plane\n"
            << "  flow-matching policy: " << opt.obs << " observations -> " << opt.horizon << " velocity commands (" << opt.execute
            << " executed per plan), " << opt.flow_steps << " Euler steps\n"
            << "  models: width " << opt.width << " (" << opt.width / 8 << " regular copies), " << opt.layers << " decoder layers, "
            << opt.heads << " heads; eCondTransformerRegressor vs CondTransformerRegressor\n"
            << "  expert: " << first.demos.expert_successes << "/" << job.demos.back() << " demonstrations reach the goal; "
            << opt.steps << " steps per run (weights' EMA " << opt.ema << "), demonstrations";
  for (auto n : job.demos) std::cout << " " << n;
  std::cout << "; " << opt.eval << " held-out draws; seeds " << opt.seed << ".." << seed_of(job, opt.seeds - 1) << "\n";
  if (!opt.resume.empty()) std::cout << "  resuming " << opt.resume << " at run " << st.run << ", step " << st.step << "\n";
  std::cout << std::flush;

  int64_t halt_budget = opt.halt_after > 0 ? opt.halt_after : -1;
  const int64_t runs = 2 * static_cast<int64_t>(job.demos.size()) * opt.seeds;
  std::optional<Data> data;
  int64_t data_seed = -1;
  while (st.run < runs) {
    if (opt.models != "both" && opt.models != model_name(st.run)) {  // an experiment on one model: skip the other's runs
      ++st.run;
      continue;
    }
    const int64_t seed_index = run_index(job, st.run).seed_index;
    if (seed_index != data_seed) data.emplace(seed_index == 0 ? first : make_data(job, seed_of(job, seed_index))), data_seed = seed_index;
    if (!train_run(job, *data, st, halt_budget)) return 0;
    if (halt_budget == 0 && st.run < runs) {
      std::cout << "  halted after run " << st.run << " (--halt-after); continue with --resume " << opt.out << "/checkpoint.pt\n";
      return 0;
    }
  }

  // Summary: the table over the seeds, JSON, plots and the last line. The plots show the first seed's draws.
  int64_t expert_eval = 0;
  std::vector<std::vector<Vec2>> expert_paths;
  for (const auto& d : first.eval) {
    const auto ep = expert_episode(job.task, d);
    expert_eval += ep.success;
    if (static_cast<int64_t>(expert_paths.size()) < kPlotted) expert_paths.push_back(ep.states);
  }
  const double expert_rate = static_cast<double>(expert_eval) / static_cast<double>(first.eval.size());
  std::cout << "\n  closed-loop success on " << opt.eval << " held-out draws per seed (expert: " << std::fixed << std::setprecision(3)
            << expert_rate << " on seed " << opt.seed << "), mean ± standard deviation over " << opt.seeds << " seeds [min, max]\n"
            << "  demos   equivariant                       baseline\n";
  nlohmann::json table = nlohmann::json::array();
  for (const int64_t n : job.demos) {
    const auto e = spread(st.results, "equivariant", n), b = spread(st.results, "baseline", n);
    char line[200];
    std::snprintf(line, sizeof line, "  %5lld   %.3f ± %.3f [%.3f, %.3f]   %.3f ± %.3f [%.3f, %.3f]\n", static_cast<long long>(n), e.mean,
                  e.std, e.lo, e.hi, b.mean, b.std, b.lo, b.hi);
    std::cout << line;
    table.push_back({{"demos", n},
                     {"equivariant", {{"mean", e.mean}, {"std", e.std}, {"min", e.lo}, {"max", e.hi}, {"final_distance", e.distance}}},
                     {"baseline", {{"mean", b.mean}, {"std", b.std}, {"min", b.lo}, {"max", b.hi}, {"final_distance", b.distance}}}});
  }
  double model_eq = 0, policy_eq = 0, baseline_policy_eq = INFINITY;
  for (const auto& r : st.results) {
    if (r.model == "equivariant") model_eq = std::max(model_eq, r.model_equivariance), policy_eq = std::max(policy_eq, r.policy_equivariance);
    else baseline_policy_eq = std::min(baseline_policy_eq, r.policy_equivariance);
  }
  const auto eq = spread(st.results, "equivariant", job.demos.back()), base = spread(st.results, "baseline", job.demos.back());
  nlohmann::json runs_json = nlohmann::json::array();
  for (const auto& r : st.results) runs_json.push_back(to_json(r));
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const nlohmann::json summary = {{"config", job.config},
                                  {"device", opt.device},
                                  {"expert_success", expert_rate},
                                  {"runs", runs_json},
                                  {"success", table},
                                  {"largest_demos", job.demos.back()},
                                  {"equivariant_success", eq.mean},
                                  {"baseline_success", base.mean},
                                  {"model_equivariance_error", model_eq},
                                  {"policy_equivariance_error", policy_eq},
                                  {"baseline_policy_equivariance_error", baseline_policy_eq},
                                  {"seconds_this_invocation", total}};
  write_file_atomically((fs::path(opt.out) / "summary.json").string(), summary.dump(2) + "\n");
  write_file_atomically((fs::path(opt.out) / "success.svg").string(),
                        success_svg(st.results, "D4 point-robot navigation: success vs demonstrations (" + std::to_string(opt.seeds) +
                                                    (opt.seeds == 1 ? " seed)" : " seeds, mean ± sd)")));
  const std::vector<Draw> plotted(first.eval.begin(), first.eval.begin() + std::min<int64_t>(kPlotted, first.eval.size()));
  write_file_atomically((fs::path(opt.out) / "rollouts.svg").string(),
                        rollouts_svg(job.task, st.results, job.demos.front(), opt.seed, expert_paths, plotted));
  std::cout << "  wrote " << opt.out << "/{metrics.csv, summary.json, success.svg, rollouts.svg, checkpoint.pt} in " << std::setprecision(1)
            << total << " s\n";
  std::cout << "equivariant_success=" << format_number(eq.mean) << " baseline_success=" << format_number(base.mean)
            << " equivariance_error=" << format_number(policy_eq) << std::endl;
  return 0;
}

}  // namespace

void add_policy_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("policy", "imitate an obstacle-avoiding expert with an equivariant and a plain flow-matching policy");
  auto opt = std::make_shared<PolicyOptions>();
  cmd->add_option("--demos", opt->demos, "expert demonstrations: an int, or a comma list for a sweep")->capture_default_str();
  cmd->add_option("--layers", opt->layers, "decoder layers")->capture_default_str();
  cmd->add_option("--width", opt->width, "embedding width, a multiple of |D4| = 8")->capture_default_str();
  cmd->add_option("--heads", opt->heads, "attention heads; must divide width/8")->capture_default_str();
  cmd->add_option("--steps", opt->steps, "optimisation steps per run")->capture_default_str();
  cmd->add_option("--seeds", opt->seeds, "repetitions of the sweep with seeds --seed, --seed + 1, ...")->capture_default_str();
  cmd->add_option("--ema", opt->ema, "decay of the weights' moving average used for evaluation (0: the last weights)")->capture_default_str();
  cmd->add_option("--batch-size", opt->batch_size, "samples per optimisation step")->capture_default_str();
  cmd->add_option("--lr", opt->lr, "peak learning rate of Adam")->capture_default_str();
  cmd->add_option("--horizon", opt->horizon, "velocity commands predicted per plan")->capture_default_str();
  cmd->add_option("--execute", opt->execute, "commands executed before planning again")->capture_default_str();
  cmd->add_option("--obs", opt->obs, "observations (position, offset to the goal) the policy sees")->capture_default_str();
  cmd->add_option("--flow-steps", opt->flow_steps, "Euler steps of the sampler")->capture_default_str();
  cmd->add_option("--position-obs", opt->position_obs, "observations hold the absolute position (0 or 1)")->capture_default_str();
  cmd->add_option("--obstacle-obs", opt->obstacle_obs, "observations hold the offset from the nearest obstacle's surface (0 or 1)")
      ->capture_default_str();
  cmd->add_option("--near-obstacles", opt->near_obstacles,
                  "with --obstacle-obs 1: offsets from the surfaces of this many nearest obstacles, nearest first")
      ->capture_default_str();
  cmd->add_option("--obstacle-clip", opt->obstacle_clip, "with --obstacle-obs 1: obstacle offsets longer than this are scaled to it (0: none)")
      ->capture_default_str();
  cmd->add_option("--obstacle-scale", opt->obstacle_scale, "with --obstacle-obs 1: the (clipped) obstacle offsets are multiplied by this")
      ->capture_default_str();
  cmd->add_option("--goal-clip", opt->goal_clip, "an offset to the goal longer than this is scaled to it (0: none)")->capture_default_str();
  cmd->add_option("--lr-final", opt->lr_final, "fraction of the peak learning rate the cosine schedule ends at")->capture_default_str();
  cmd->add_option("--predict", opt->predict, "the regressor's output: action (the clean chunk) or velocity (a - noise)")
      ->check(CLI::IsMember({"action", "velocity"}))
      ->capture_default_str();
  cmd->add_option("--time-obs", opt->time_obs, "invariant flow-time features appended to every observation token (0: none)")
      ->check(CLI::Range(0, 16))
      ->capture_default_str();
  cmd->add_option("--models", opt->models, "both, equivariant or baseline (experiments on one model)")
      ->check(CLI::IsMember({"both", "equivariant", "baseline"}))
      ->capture_default_str();
  cmd->add_option("--trim", opt->trim, "demonstrations end where the expert reaches the goal (0 or 1)")->capture_default_str();
  cmd->add_option("--trim-pad", opt->trim_pad, "with --trim 1: samples kept from the first state inside the goal's radius on")->capture_default_str();
  cmd->add_option("--eval", opt->eval, "held-out draws for the closed-loop evaluation")->capture_default_str();
  cmd->add_option("--device", opt->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--threads", opt->threads, "intra-op threads of torch and of OpenBLAS (0: the machine's cores)")->capture_default_str();
  cmd->add_option("--seed", opt->seed, "seed of the draws and of the models")->capture_default_str();
  cmd->add_option("--out", opt->out, "output directory")->capture_default_str();
  cmd->add_option("--resume", opt->resume, "continue from a checkpoint.pt of the same configuration");
  cmd->add_option("--halt-after", opt->halt_after, "stop after this many steps, leaving a checkpoint (for resume)");
  cmd->callback([opt, &exit_code] { exit_code = run_policy(*opt); });
}

}  // namespace symm::app

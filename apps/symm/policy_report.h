#pragma once
// What `symm policy` draws: success rate against the number of demonstrations, and rollouts in the arena.
#include <string>
#include <vector>

#include "policy_task.h"

namespace symm::app {

/// One finished policy run, as the summary, the plots and the last line report it.
struct PolicyResult {
  std::string model;  // "equivariant" or "baseline"
  uint64_t seed = 0;
  int64_t demos = 0;
  double success = 0, final_distance = 0, train_loss = 0;
  double model_equivariance = -1;  // one forward, relative to |f|∞ (equivariant model)
  double policy_equivariance = 0;  // largest deviation of a rollout from the transformed rollout
  int64_t steps = 0, parameters = 0;
  double seconds = 0;
  std::vector<std::vector<Vec2>> rollouts;  // the first few evaluation rollouts, for the arena plot
  std::vector<bool> rollout_success;        // and whether each reached the goal
};

/// Success rate (linear, [0, 1]) against demonstrations (log scale): one line per model through the mean over
/// the seeds, with bars of ± one standard deviation (clipped to [0, 1]).
std::string success_svg(const std::vector<PolicyResult>& results, const std::string& title);

/// The arena with its obstacles and, side by side for each model, its first rollouts at `demos`
/// demonstrations and seed `seed` (solid ending in a ring: success; dashed ending in a cross: failure) and the
/// expert's paths for the same draws.
std::string rollouts_svg(const PolicyTask& task, const std::vector<PolicyResult>& results, int64_t demos, uint64_t seed,
                         const std::vector<std::vector<Vec2>>& expert_paths, const std::vector<Draw>& draws);

}  // namespace symm::app

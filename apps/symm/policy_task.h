#pragma once
// The task of `symm policy`: a point robot in the square arena [-1, 1]² must reach a goal without touching
// any of five round obstacles (one at the centre, four on the diagonals). Everything commutes with D4, the
// square's symmetries acting on the plane by signed permutations of the coordinates:
// - the arena and the obstacle set are D4-invariant (a symmetry permutes the diagonal obstacles);
// - the dynamics p ← clamp(p + dt·u) (speed clipped to v_max, the box clamp per coordinate) is built from
//   norms, clamps of a D4-invariant box and sums;
// - the expert steers toward the goal and, near an obstacle, turns its inward velocity along the obstacle's
//   tangent on the goal's side: a sum over obstacles of terms built from dot products, norms and the
//   obstacle centres, so expert(g·p, g·goal) = g·expert(p, goal).
// Signed permutations are exact in floating point, so g acts on states without rounding.
#include <array>
#include <cstdint>
#include <vector>

#include "symm/group/representation.h"

namespace symm::app {

using Vec2 = std::array<double, 2>;

struct PolicyTask {
  double dt = 0.1;              // seconds per control step
  double max_speed = 0.5;       // v_max, arena units per second
  double goal_radius = 0.08;    // success: within this distance of the goal
  double influence = 0.25;      // the expert reacts to obstacles closer than this (clearance)
  double slow_radius = 0.2;     // the expert slows down linearly inside this distance of the goal
  int max_steps = 70;           // steps per episode
  double min_start_goal = 0.9;  // drawn starts and goals are at least this far apart
  struct Obstacle { Vec2 centre; double radius; };
  std::vector<Obstacle> obstacles{{{0.0, 0.0}, 0.3},
                                  {{0.6, 0.6}, 0.15}, {{-0.6, 0.6}, 0.15}, {{-0.6, -0.6}, 0.15}, {{0.6, -0.6}, 0.15}};

  /// Clearance to the nearest obstacle (negative inside one).
  double clearance(const Vec2& p) const;
  /// One step of the dynamics with velocity command u (clipped to max_speed), clamped to the arena.
  Vec2 step(const Vec2& p, const Vec2& u) const;
  /// The expert's velocity command at p for the goal.
  Vec2 expert(const Vec2& p, const Vec2& goal) const;
};

/// The D4 element e acting on the plane (exact signed permutation).
Vec2 act_d4(const symm::group::Representation& plane, int e, const Vec2& v);

/// D4 and its representation on the plane (rotation by 90° and the reflection y ↦ −y); verifies that the
/// obstacle layout is invariant and that the expert and the dynamics commute with every element on a few
/// seeded states (throws std::logic_error otherwise).
symm::group::Representation d4_plane(const PolicyTask& task);

/// A start and a goal: free of obstacles (clearance ≥ 0.05), inside [-0.9, 0.9]², at least min_start_goal apart.
struct Draw { Vec2 start, goal; };
std::vector<Draw> draw_tasks(const PolicyTask& task, int64_t count, uint64_t seed);

/// An expert episode: states p_0..p_T (T = max_steps) and commands u_0..u_{T-1}; success when it came within
/// goal_radius of the goal without entering an obstacle.
struct Episode {
  Draw draw;
  std::vector<Vec2> states, actions;
  bool success = false;
};
Episode expert_episode(const PolicyTask& task, const Draw& draw);

}  // namespace symm::app

#include "policy_task.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "symm/group/named.h"
#include "symm/group/random.h"

namespace symm::app {

namespace {

double dot(const Vec2& a, const Vec2& b) { return a[0] * b[0] + a[1] * b[1]; }
double norm(const Vec2& a) { return std::sqrt(dot(a, a)); }
Vec2 sub(const Vec2& a, const Vec2& b) { return {a[0] - b[0], a[1] - b[1]}; }
Vec2 scaled(const Vec2& a, double s) { return {a[0] * s, a[1] * s}; }

Vec2 clip_speed(const Vec2& u, double max_speed) {
  const double s = norm(u);
  return s > max_speed ? scaled(u, max_speed / s) : u;
}

}  // namespace

double PolicyTask::clearance(const Vec2& p) const {
  double c = INFINITY;
  for (const auto& o : obstacles) c = std::min(c, norm(sub(p, o.centre)) - o.radius);
  return c;
}

Vec2 PolicyTask::step(const Vec2& p, const Vec2& u) const {
  const Vec2 v = clip_speed(u, max_speed);
  return {std::clamp(p[0] + dt * v[0], -1.0, 1.0), std::clamp(p[1] + dt * v[1], -1.0, 1.0)};
}

Vec2 PolicyTask::expert(const Vec2& p, const Vec2& goal) const {
  const Vec2 d = sub(goal, p);
  const double dist = norm(d);
  if (dist == 0) return {0.0, 0.0};
  const Vec2 toward = scaled(d, max_speed * std::min(1.0, dist / slow_radius) / dist);
  Vec2 u = toward;
  for (const auto& o : obstacles) {
    const Vec2 r = sub(p, o.centre);
    const double rn = norm(r), gap = rn - o.radius;
    if (gap >= influence || rn == 0) continue;
    const Vec2 n = scaled(r, 1.0 / rn);
    const double w = 1.0 - std::max(gap, 0.0) / influence;  // 0 at the edge of the influence zone, 1 on contact
    const double inward = dot(toward, n);
    if (inward < 0) {
      // Replace the inward part by the same speed along the tangent on the goal's side.
      const Vec2 tangent = sub(toward, scaled(n, inward));
      const double tn = norm(tangent);
      if (tn > 0) {
        u[0] += w * (-inward * n[0] - inward * tangent[0] / tn);
        u[1] += w * (-inward * n[1] - inward * tangent[1] / tn);
      }
    }
    u[0] += w * w * 0.5 * max_speed * n[0];
    u[1] += w * w * 0.5 * max_speed * n[1];
  }
  return clip_speed(u, max_speed);
}

Vec2 act_d4(const symm::group::Representation& plane, int e, const Vec2& v) {
  const Eigen::MatrixXd m = plane(e).array().round();  // a signed permutation: entries 0 and ±1
  return {m(0, 0) * v[0] + m(0, 1) * v[1], m(1, 0) * v[0] + m(1, 1) * v[1]};
}

symm::group::Representation d4_plane(const PolicyTask& task) {
  const auto g = symm::group::dihedral_group(4);
  Eigen::MatrixXd rot(2, 2), flip(2, 2);
  rot << 0, -1, 1, 0;
  flip << 1, 0, 0, -1;
  auto plane = symm::group::Representation::from_generators(g, {rot, flip}, "plane");
  for (int e = 0; e < g->order(); ++e) {
    if ((plane(e).array() - plane(e).array().round()).abs().maxCoeff() > 1e-9)
      throw std::logic_error("D4 on the plane is not a signed permutation");
    for (const auto& o : task.obstacles) {
      const Vec2 c = act_d4(plane, e, o.centre);
      const bool found = std::any_of(task.obstacles.begin(), task.obstacles.end(), [&](const auto& q) {
        return q.radius == o.radius && q.centre == c;
      });
      if (!found) throw std::logic_error("the obstacle layout is not D4-invariant");
    }
  }
  symm::group::Rng rng(7);
  for (int i = 0; i < 32; ++i) {
    const Vec2 p{rng.uniform(-1, 1), rng.uniform(-1, 1)}, goal{rng.uniform(-1, 1), rng.uniform(-1, 1)}, u{rng.uniform(-1, 1), rng.uniform(-1, 1)};
    for (int e = 0; e < g->order(); ++e) {
      const Vec2 a = task.expert(act_d4(plane, e, p), act_d4(plane, e, goal)), b = act_d4(plane, e, task.expert(p, goal));
      const Vec2 s = task.step(act_d4(plane, e, p), act_d4(plane, e, u)), t = act_d4(plane, e, task.step(p, u));
      if (norm(sub(a, b)) > 1e-12 || norm(sub(s, t)) > 1e-12)
        throw std::logic_error("the expert or the dynamics does not commute with D4 element " + std::to_string(e));
    }
  }
  return plane;
}

std::vector<Draw> draw_tasks(const PolicyTask& task, int64_t count, uint64_t seed) {
  symm::group::Rng rng(seed);
  auto free_point = [&] {
    for (;;) {
      const Vec2 p{rng.uniform(-0.9, 0.9), rng.uniform(-0.9, 0.9)};
      if (task.clearance(p) >= 0.05) return p;
    }
  };
  std::vector<Draw> out;
  while (static_cast<int64_t>(out.size()) < count) {
    Draw d{free_point(), free_point()};
    if (norm(sub(d.start, d.goal)) >= task.min_start_goal) out.push_back(d);
  }
  return out;
}

Episode expert_episode(const PolicyTask& task, const Draw& draw) {
  Episode ep;
  ep.draw = draw;
  ep.states.push_back(draw.start);
  bool crashed = false;
  for (int t = 0; t < task.max_steps; ++t) {
    const Vec2 u = task.expert(ep.states.back(), draw.goal);
    ep.actions.push_back(u);
    ep.states.push_back(task.step(ep.states.back(), u));
    crashed = crashed || task.clearance(ep.states.back()) < 0;
    ep.success = ep.success || (!crashed && norm(sub(ep.states.back(), draw.goal)) < task.goal_radius);
  }
  return ep;
}

}  // namespace symm::app

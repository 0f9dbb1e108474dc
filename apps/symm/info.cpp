#include "commands.h"

#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "symm/group/named.h"

namespace symm::app {

int run_info(const std::string& spec, bool json) {
  const auto g = symm::group::make_group(spec);
  if (json) {
    nlohmann::json irreps = nlohmann::json::array();
    for (const auto& psi : g->irreps()) {
      std::vector<double> chi(psi.character.data(), psi.character.data() + psi.character.size());
      for (auto& c : chi) c = std::round(c * 1e12) / 1e12 + 0.0;  // no -0 or 1e-17 noise
      irreps.push_back({{"id", psi.id}, {"dim", psi.dim}, {"type", symm::group::to_string(psi.type)}, {"character", chi}});
    }
    nlohmann::json out = {{"group", g->name()}, {"order", g->order()}, {"classes", g->classes()}, {"irreps", irreps}};
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::cout << "group " << g->name() << ": order " << g->order() << ", " << g->classes().size() << " conjugacy classes, "
            << g->irreps().size() << " real irreps\n";
  std::cout << "  class sizes:";
  for (const auto& c : g->classes()) std::cout << " " << c.size();
  std::cout << "\n  irrep  dim  type  character on class representatives\n";
  for (const auto& psi : g->irreps()) {
    std::cout << "  " << std::setw(5) << psi.id << "  " << std::setw(3) << psi.dim << "  " << std::setw(4)
              << symm::group::to_string(psi.type) << " ";
    for (const auto& c : g->classes()) std::cout << " " << std::setw(6) << std::fixed << std::setprecision(3) << psi.character(c[0]) + 0.0;
    std::cout << "\n";
  }
  return 0;
}

void add_info_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("info", "print a group's order, classes and real irreps");
  auto spec = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("SPEC", *spec, "group spec: C<n>, D<n>, K4, S<n>, A<n>, Q8, T, O, I, GxH, or a JSON file")->required();
  cmd->add_flag("--json", *json, "machine-readable output");
  cmd->callback([spec, json, &exit_code] { exit_code = run_info(*spec, *json); });
}

}  // namespace symm::app

// symm: exact equivariance for finite groups, from the command line.
#include <iostream>

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include "commands.h"

namespace {

// `symm` with no arguments: a short tour of the group engine.
int run_default() {
  for (const char* spec : {"C4", "D3", "Q8", "I"}) {
    if (int rc = symm::app::run_info(spec, false)) return rc;
    std::cout << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"symm: neural-network layers exactly equivariant to a finite group"};
  app.require_subcommand(0, 1);
  std::string spec;
  bool json = false;
  auto* info = app.add_subcommand("info", "print a group's order, classes and real irreps");
  info->add_option("SPEC", spec, "group spec: C<n>, D<n>, K4, S<n>, A<n>, Q8, T, O, I, GxH, or a JSON file")->required();
  info->add_flag("--json", json, "machine-readable output");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  try {
    if (*info) return symm::app::run_info(spec, json);
    return run_default();
  } catch (const std::invalid_argument& e) {
    std::cerr << "symm: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "symm: " << e.what_without_backtrace() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "symm: " << e.what() << "\n";
    return 1;
  }
}

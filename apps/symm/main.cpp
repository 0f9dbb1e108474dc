// symm: exact equivariance for finite groups, from the command line.
#include <iostream>

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include "commands.h"
#include "symm/allocator.h"
#include "symm/threads.h"

int main(int argc, char** argv) {
  symm::restart_with_sleeping_idle_threads();  // before any pool starts (README: "Threads")
  symm::configure_allocator();  // keeps large temporaries in the heap (README: "The allocator")
  CLI::App app{"symm: neural-network layers exactly equivariant to a finite group.\n"
               "Without a subcommand, runs the default job (see `symm train --help`)."};
  app.require_subcommand(0, 1);
  int exit_code = 0;
  symm::app::add_info_command(app, exit_code);
  symm::app::add_check_command(app, exit_code);
  symm::app::add_train_command(app, exit_code);
  symm::app::add_bench_command(app, exit_code);
  symm::app::add_policy_command(app, exit_code);
  try {
    app.parse(argc, argv);
    if (app.get_subcommands().empty()) exit_code = symm::app::run_default_job();
    return exit_code;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
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

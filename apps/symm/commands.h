#pragma once
// The subcommands of the symm program. Each add_*_command registers a subcommand whose callback runs it
// and stores the process exit code; errors in arguments throw std::invalid_argument (exit code 2).
#include <string>

#include <CLI/CLI.hpp>

namespace symm::app {

void add_info_command(CLI::App& app, int& exit_code);
void add_check_command(CLI::App& app, int& exit_code);
void add_train_command(CLI::App& app, int& exit_code);
void add_bench_command(CLI::App& app, int& exit_code);
void add_policy_command(CLI::App& app, int& exit_code);

/// What `symm` runs with no arguments.
int run_default_job();

int run_info(const std::string& spec, bool json);

}  // namespace symm::app

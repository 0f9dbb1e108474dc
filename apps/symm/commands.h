#pragma once
// The subcommands of the symm program. Each returns the process exit code.
#include <string>

namespace symm::app {

int run_info(const std::string& spec, bool json);

}  // namespace symm::app

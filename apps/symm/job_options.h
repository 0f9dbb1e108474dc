#pragma once
// Options that several jobs take in the same form; each throws std::invalid_argument (exit code 2) naming
// the option, what it expects and what came.
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace symm::app {

/// A positive integer or a comma list of them ("4,16,64"), each at most `max` (`unit` names them in the
/// message, e.g. "demonstrations"); returned ascending without repeats.
std::vector<int64_t> parse_count_list(const std::string& option, const std::string& text, int64_t max, const std::string& unit);

/// --device: "cpu", or "cuda" where this LibTorch has CUDA and sees a GPU.
torch::Device parse_device(const std::string& text);

}  // namespace symm::app

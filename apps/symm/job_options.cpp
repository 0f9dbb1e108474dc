#include "job_options.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace symm::app {

std::vector<int64_t> parse_count_list(const std::string& option, const std::string& text, int64_t max, const std::string& unit) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  auto bad = [&] { return std::invalid_argument(option + " '" + text + "': expected a positive integer or a comma list of them (e.g. 4,16,64)"); };
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      throw bad();
    }
    if (used != item.size() || v < 1) throw bad();
    if (v > max) throw std::invalid_argument(option + " " + item + ": at most " + std::to_string(max) + " " + unit);
    out.push_back(v);
  }
  if (out.empty() || text.back() == ',') throw bad();
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

torch::Device parse_device(const std::string& text) {
  if (text == "cpu") return torch::kCPU;
  if (text != "cuda") throw std::invalid_argument("--device " + text + ": expected cpu or cuda");
  if (!torch::cuda::is_available())
    throw std::invalid_argument("--device cuda: CUDA is not available (this LibTorch has no CUDA or no GPU is visible)");
  return torch::kCUDA;
}

}  // namespace symm::app

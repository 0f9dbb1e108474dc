// The isotypic feed-forward of an eTransformerEncoderLayer stage by stage, against torch's dense one, in the
// calling thread's CPU time (the minimum of many runs: on a shared machine wall time counts the neighbours).
//   build/bench/symm_feedforward_stages [group] [copies]     (default D8 32: D = 512, ff 4·D, B 16, T 32)
#include <time.h>

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <string>

#include <torch/torch.h>

#include "symm/allocator.h"
#include "symm/symm.h"
#include "symm/threads.h"

#include "isotypic_layout.h"

namespace {

template <typename F>
double cpu_ms(F f, int reps = 60) {
  for (int i = 0; i < 3; ++i) f();
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    timespec a{}, b{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    f();
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    best = std::min(best, (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) * 1e-6);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  namespace snn = symm::nn;
  symm::restart_with_sleeping_idle_threads();
  symm::configure_allocator();
  const std::string threads = symm::set_num_threads(1);  // OpenBLAS's pool too: all the work on this thread
  const std::string group = argc > 1 ? argv[1] : "D8";
  const int copies = argc > 2 ? std::stoi(argv[2]) : 32;
  const auto rep = symm::group::Representation::regular(symm::group::make_group(group)).copies(copies);
  const int64_t d = rep.size(), tokens = 16 * 32;
  snn::eFeedForward ff(snn::eFeedForwardOptions(rep, 4 * d));
  snn::set_execution(*ff, snn::Execution::isotypic);
  ff->eval();
  torch::NoGradGuard no_grad;
  const auto& layout = ff->linear1->isotypic_in();
  const auto& hidden = ff->linear1->isotypic_out();
  const auto z = layout.to_isotypic(torch::randn({tokens, d}));
  const auto h1 = ff->linear1->forward_isotypic(z, nullptr);
  const auto h = hidden.to_chunk_basis(h1);
  const auto h2 = hidden.from_chunk_basis(h);
  const auto x = torch::randn({tokens, d}), w1 = torch::randn({4 * d, d}), b1 = torch::randn({4 * d}),
             w2 = torch::randn({d, 4 * d}), b2 = torch::randn({d});
  auto line = [](const std::string& what, double ms) {
    std::cout << std::left << std::setw(44) << what << std::fixed << std::setprecision(3) << ms << " ms" << std::endl;
  };
  std::cout << "# " << group << " m=" << copies << " D=" << d << " ff=" << 4 * d << " tokens=" << tokens
            << ", thread CPU time (min of 60), threads " << threads << std::endl;
  line("torch dense feed-forward (addmm, gelu, addmm)", cpu_ms([&] { torch::addmm(b2, torch::gelu(torch::addmm(b1, x, w1.t())), w2.t()); }));
  line("ours isotypic feed-forward", cpu_ms([&] { ff->forward_isotypic(z, nullptr); }));
  line("  linear1 blocks", cpu_ms([&] { ff->linear1->forward_isotypic(z, nullptr); }));
  line("  hidden into the permutation basis", cpu_ms([&] { hidden.to_chunk_basis(h1); }));
  line("  activation", cpu_ms([&] { ff->options.activation()(h); }));
  line("  hidden back into isotypic rows", cpu_ms([&] { hidden.from_chunk_basis(h); }));
  line("  linear2 blocks", cpu_ms([&] { ff->linear2->forward_isotypic(h2, nullptr); }));
  std::cout << "# multiply-adds per token: dense " << 8 * d * d << ", blocks "
            << ff->linear1->isotypic_multiply_adds() + ff->linear2->isotypic_multiply_adds() << ", basis changes "
            << 2 * hidden.chunk_size() * hidden.size() << std::endl;
}

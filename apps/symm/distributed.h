#pragma once
// Data-parallel training on LibTorch's c10d. A job is W processes (ranks); rank 0 hosts a TCPStore through
// which they meet, then a ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA, when this LibTorch has it)
// carries the collectives. Every rank holds a replica of the model, computes gradients on its shard of
// each global batch and all-reduces them in the model's own parameters: for equivariant modules those are
// the Hom_G coefficients, |G| times fewer numbers than the dense weights they stand for.
//
// A job starts either from `--nproc N` (this program starts N copies of itself on this machine) or from
// the variables torchrun sets: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.
//
// Errors before training (bad variables, a port in use, an unreachable master) throw std::invalid_argument
// (exit code 2). A collective that fails because another rank died or hung throws WorkerFailure naming
// that rank (exit code 1).
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace symm::app {

/// This process's place in a job.
struct WorldSpec {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
};

/// Another rank died, hung or failed: the message names it.
class WorkerFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The job described by torchrun's variables, or nullopt when RANK is not set. `nproc` is --nproc (0 when
/// not given); it must agree with WORLD_SIZE. Throws std::invalid_argument on missing or inconsistent values.
std::optional<WorldSpec> world_from_environment(int nproc);

/// Runs `nproc` copies of this program (same arguments) as the ranks of a job on the loopback interface,
/// and returns the job's exit code: 0 when all succeed; 1 when one fails, after naming it and giving the
/// others `timeout` to stop on their own. MASTER_PORT from the environment when set (exit 2 if it is in
/// use), a free port otherwise.
int launch_local_workers(int nproc, std::chrono::milliseconds timeout);

/// The collectives of one job. A default-constructed instance is a job of one process, where every
/// collective is the identity and nothing is communicated.
class DataParallel {
 public:
  DataParallel();
  /// Meets the other ranks (TCPStore rendezvous, then the process group); throws std::invalid_argument
  /// with one line when that fails or the ranks disagree on the world size.
  DataParallel(const WorldSpec& world, const torch::Device& device, std::chrono::milliseconds timeout);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const { return world_.rank; }
  int world_size() const { return world_.world_size; }
  bool is_root() const { return world_.rank == 0; }

  /// The rows [begin, end) of n that this rank handles: contiguous, in rank order, sizes differing by at
  /// most one, so that the shards of all ranks put back together are the n rows in order.
  std::pair<int64_t, int64_t> shard(int64_t n) const;

  /// Throws std::invalid_argument when some rank's `value` differs from rank 0's (e.g. its options).
  void check_same(const std::string& what, const std::string& value);
  /// Sums t over the ranks, in place.
  void all_reduce_sum(torch::Tensor& t);
  /// Overwrites the tensors with rank 0's values.
  void broadcast(const std::vector<torch::Tensor>& tensors);
  /// Tells the other ranks that this one fails with `message`, so that they can name it (best effort).
  void report_failure(const std::string& message) noexcept;

  /// Starts an asynchronous sum of t over the ranks; finish with wait().
  struct Pending;
  std::shared_ptr<Pending> start_all_reduce_sum(torch::Tensor t);
  /// Waits for an asynchronous collective; throws WorkerFailure naming the rank at fault when it fails.
  void wait(const std::shared_ptr<Pending>& pending);

 private:
  struct Impl;
  [[noreturn]] void collective_failed(const std::string& error);
  WorldSpec world_;
  std::unique_ptr<Impl> impl_;
};

/// Averages gradients over the ranks in a few flat buckets, each all-reduced as soon as backward has
/// produced all of its gradients (hooks on the parameters), so communication overlaps the rest of backward.
/// Buckets are filled in reverse parameter order (roughly the order backward produces gradients) and
/// launched in index order, so every rank issues the same collectives in the same order.
///
/// Per step: begin(local_loss); loss.backward(); finish() (returns the loss summed over the ranks). The local
/// loss must be this rank's share of the global mean, so that the sum of gradients is the global gradient.
class GradientAllReduce {
 public:
  GradientAllReduce(DataParallel& dp, std::vector<torch::Tensor> params, int64_t buckets = 4);
  ~GradientAllReduce();
  GradientAllReduce(const GradientAllReduce&) = delete;
  GradientAllReduce& operator=(const GradientAllReduce&) = delete;

  void begin(const torch::Tensor& local_loss);
  double finish();
  /// Bytes each rank all-reduces per step (gradients and the loss); 0 in a job of one process.
  int64_t bytes_per_step() const;

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    std::vector<int64_t> offsets;
    torch::Tensor flat;
    int64_t ready = 0;
    std::shared_ptr<DataParallel::Pending> pending;
  };
  void on_gradient(size_t param, const torch::Tensor& grad);
  void launch_ready();

  DataParallel& dp_;
  std::vector<torch::Tensor> params_;
  std::vector<std::pair<size_t, int64_t>> place_;  // per parameter: bucket, offset
  std::vector<Bucket> buckets_;
  std::vector<unsigned> hooks_;
  std::vector<char> seen_;  // per parameter: its gradient arrived in this step
  size_t launched_ = 0;
  bool armed_ = false;
};

/// Parameter bytes of `model`, and what they would be were every equivariant module's coefficients replaced by
/// the dense tensors they parameterise (an eLinear's (out, in) weight and its out-sized bias, an eAffine's
/// per-channel scale): {coefficient bytes, dense-equivalent bytes}.
std::pair<int64_t, int64_t> parameter_bytes(const torch::nn::Module& model);

}  // namespace symm::app

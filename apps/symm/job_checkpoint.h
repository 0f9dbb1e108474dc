#pragma once
// The frame of a job's checkpoint (symm train, symm policy): a format tag and the job's configuration ahead
// of what the job stores, written through a temporary file and a rename, and checked on --resume so that a
// checkpoint of another job or configuration is refused with one line before anything is written; then
// where the job's sweep of runs stands, and the state of the run in progress.
#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace symm::app {

/// Writes the format tag and the configuration into a new checkpoint archive.
void write_checkpoint_header(torch::serialize::OutputArchive& root, const std::string& format, const nlohmann::json& config);

/// Saves the archive to path whole: a reader never sees half a checkpoint.
void save_checkpoint_file(torch::serialize::OutputArchive& root, const std::string& path);

/// Opens the checkpoint of --resume: it must exist, carry `format` (else "not a <job> checkpoint") and the
/// same configuration (else the keys that differ, checkpoint vs now). Throws std::invalid_argument.
std::shared_ptr<torch::serialize::InputArchive> open_checkpoint(const std::string& path, const std::string& format,
                                                                const std::string& job, const nlohmann::json& config);

/// Where a sweep of runs stands (two models per size, one run after the other), as both jobs checkpoint it.
struct SweepPosition {
  std::string csv;     // metrics.csv so far
  int64_t run = 0;     // the run in progress
  int64_t step = 0;    // its steps done
  double seconds = 0;  // time spent in it so far
  std::shared_ptr<torch::serialize::InputArchive> archive;  // after a resume mid-run: the run's state
};

/// Writes the position and the finished runs' results.
void write_sweep_position(torch::serialize::OutputArchive& root, const SweepPosition& position, const nlohmann::json& results);

/// Reads what write_sweep_position wrote into `position` (keeping the archive for read_run_state) and returns the
/// results; a position beyond `runs` runs of `steps` steps is refused as damaged (std::invalid_argument).
nlohmann::json read_sweep_position(const std::shared_ptr<torch::serialize::InputArchive>& root, const std::string& path, int64_t runs,
                                   int64_t steps, SweepPosition& position);

/// The run in progress: its model, optimizer state and batch sampler, so that it continues bit for bit.
void write_run_state(torch::serialize::OutputArchive& root, const torch::nn::Module& model, const torch::optim::Optimizer& optimizer,
                     const at::Generator& sampler);
void read_run_state(torch::serialize::InputArchive& root, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                    at::Generator& sampler);

}  // namespace symm::app

#include "job_checkpoint.h"

#include <filesystem>
#include <stdexcept>

namespace symm::app {

namespace fs = std::filesystem;

void write_checkpoint_header(torch::serialize::OutputArchive& root, const std::string& format, const nlohmann::json& config) {
  root.write("format", c10::IValue(format));
  root.write("config", c10::IValue(config.dump()));
}

void save_checkpoint_file(torch::serialize::OutputArchive& root, const std::string& path) {
  const std::string tmp = path + ".tmp";
  root.save_to(tmp);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw std::runtime_error("cannot write checkpoint " + path + ": " + ec.message());
}

std::shared_ptr<torch::serialize::InputArchive> open_checkpoint(const std::string& path, const std::string& format,
                                                                const std::string& job, const nlohmann::json& config) {
  if (!fs::is_regular_file(path)) throw std::invalid_argument("--resume " + path + ": no such file");
  auto root = std::make_shared<torch::serialize::InputArchive>();
  c10::IValue v;
  nlohmann::json saved;
  try {
    root->load_from(path);
    if (!root->try_read("format", v) || !v.isString() || v.toStringRef() != format) throw std::runtime_error("");
    root->read("config", v);
    saved = nlohmann::json::parse(v.toStringRef());
  } catch (const std::exception&) {
    throw std::invalid_argument("--resume " + path + ": not a " + job + " checkpoint");
  }
  std::string diff;
  for (const auto& [key, value] : config.items()) {
    const auto it = saved.find(key);
    if (it == saved.end() || *it != value)
      diff += (diff.empty() ? "" : ", ") + key + " " + (it == saved.end() ? "(absent)" : it->dump()) + " vs " + value.dump();
  }
  if (!diff.empty())
    throw std::invalid_argument("--resume " + path + ": the checkpoint is of another configuration (checkpoint vs now: " + diff + ")");
  return root;
}

void write_sweep_position(torch::serialize::OutputArchive& root, const SweepPosition& position, const nlohmann::json& results) {
  root.write("results", c10::IValue(results.dump()));
  root.write("csv", c10::IValue(position.csv));
  root.write("run", c10::IValue(position.run));
  root.write("step", c10::IValue(position.step));
  root.write("seconds", c10::IValue(position.seconds));
}

nlohmann::json read_sweep_position(const std::shared_ptr<torch::serialize::InputArchive>& root, const std::string& path, int64_t runs,
                                   int64_t steps, SweepPosition& position) {
  c10::IValue v;
  root->read("results", v);
  auto results = nlohmann::json::parse(v.toStringRef());
  root->read("csv", v), position.csv = v.toStringRef();
  root->read("run", v), position.run = v.toInt();
  root->read("step", v), position.step = v.toInt();
  root->read("seconds", v), position.seconds = v.toDouble();
  if (position.run < 0 || position.run > runs || position.step < 0 || position.step > steps)
    throw std::invalid_argument("--resume " + path + ": damaged checkpoint (run " + std::to_string(position.run) + ", step " +
                                std::to_string(position.step) + ")");
  position.archive = root;
  return results;
}

void write_run_state(torch::serialize::OutputArchive& root, const torch::nn::Module& model, const torch::optim::Optimizer& optimizer,
                     const at::Generator& sampler) {
  torch::serialize::OutputArchive m, o;
  model.save(m);
  optimizer.save(o);
  root.write("model", m);
  root.write("optimizer", o);
  root.write("sampler", sampler.get_state());
}

void read_run_state(torch::serialize::InputArchive& root, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                    at::Generator& sampler) {
  torch::serialize::InputArchive m, o;
  root.read("model", m);
  model.load(m);
  root.read("optimizer", o);
  optimizer.load(o);
  torch::Tensor state;
  root.read("sampler", state);
  sampler.set_state(state);
}

}  // namespace symm::app

#include "symm/nn/checkpoint.h"

#include <atomic>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

#include <unistd.h>

#include "checkpoint_archive.h"
#include "symm/nn/affine.h"
#include "symm/nn/linear.h"

namespace symm {

namespace {

using symm::nn::eAffineImpl;
using symm::nn::eLinearImpl;
using symm::nn::to_eigen;
using symm::nn::to_tensor;

constexpr int64_t kFormat = 2;
constexpr char kMagic[] = "symm-checkpoint\n";
constexpr size_t kMagicSize = sizeof(kMagic) - 1, kHeaderSize = kMagicSize + 16;

// FNV-1a: every step is a bijection of the state, so any single changed byte changes the hash.
uint64_t fnv1a(const char* data, size_t size) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < size; ++i) { h ^= static_cast<unsigned char>(data[i]); h *= 1099511628211ULL; }
  return h;
}

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

uint64_t get_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

std::string join(const std::string& prefix, const std::string& name) { return prefix.empty() ? name : prefix + "." + name; }

// Per irrep copy of the representation: its columns of Q.
std::vector<Eigen::MatrixXd> copy_columns(const symm::group::Representation& rep) {
  std::vector<Eigen::MatrixXd> cols;
  Eigen::Index offset = 0;
  for (int k : rep.irreps()) {
    const auto d = rep.group()->irrep(k).dim;
    cols.push_back(rep.change_of_basis().middleCols(offset, d));
    offset += d;
  }
  return cols;
}

Eigen::VectorXd vec(const torch::Tensor& t) { return to_eigen(t.reshape({-1, 1})).col(0); }

// A module's stored tensors: dense maps for the equivariant ones, the raw tensors otherwise.
std::vector<std::pair<std::string, torch::Tensor>> dense_entries(const std::string& prefix, torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  if (auto* lin = dynamic_cast<eLinearImpl*>(&m)) {
    out.emplace_back(join(prefix, "weight"), to_tensor(lin->basis().synthesize(vec(lin->weight_dof))));
    if (lin->bias_dof.defined())
      out.emplace_back(join(prefix, "bias"), to_tensor(Eigen::VectorXd(lin->out_rep().invariant_basis() * vec(lin->bias_dof))));
    return out;
  }
  if (auto* aff = dynamic_cast<eAffineImpl*>(&m)) {
    if (aff->scale_dof.defined()) {
      const auto cols = copy_columns(aff->options.rep());
      const Eigen::VectorXd alpha = vec(aff->scale_dof);
      Eigen::MatrixXd a = Eigen::MatrixXd::Zero(aff->options.rep().size(), aff->options.rep().size());
      for (size_t i = 0; i < cols.size(); ++i) a += alpha(i) * cols[i] * cols[i].transpose();
      out.emplace_back(join(prefix, "scale"), to_tensor(a));
    }
    if (aff->bias_dof.defined())
      out.emplace_back(join(prefix, "bias"), to_tensor(Eigen::VectorXd(aff->options.rep().invariant_basis() * vec(aff->bias_dof))));
    return out;
  }
  for (const auto& p : m.named_parameters(/*recurse=*/false)) out.emplace_back(join(prefix, p.key()), p.value().detach());
  for (const auto& b : m.named_buffers(/*recurse=*/false)) out.emplace_back(join(prefix, b.key()), b.value().detach());
  return out;
}

// The module's own tensors to overwrite, with the values computed from the checkpoint's dense entries.
void stage(const std::string& prefix, torch::nn::Module& m, const std::map<std::string, c10::IValue>& entries,
           std::vector<std::pair<torch::Tensor, torch::Tensor>>& updates) {
  auto read = [&](const std::string& key, const torch::Tensor& like) {
    const auto it = entries.find(key);
    TORCH_CHECK(it != entries.end() && it->second.isTensor(), "symm::load: the checkpoint has no tensor entry '", key, "'");
    const torch::Tensor& t = it->second.toTensor();
    TORCH_CHECK(t.sizes().equals(like.sizes()), "symm::load: entry '", key, "' has shape ", t.sizes(), ", expected ", like.sizes());
    TORCH_CHECK(torch::isfinite(t).all().item<bool>(), "symm::load: entry '", key, "' has non-finite values");
    return t;
  };
  auto expect_close = [&](const std::string& key, const Eigen::MatrixXd& got, const Eigen::MatrixXd& want) {
    const double err = (got - want).cwiseAbs().maxCoeff(), scale = std::max(1.0, want.cwiseAbs().maxCoeff());
    TORCH_CHECK(err <= 1e-6 * scale, "symm::load: entry '", key, "' is not equivariant for this module's representations (",
                "projection error ", err, ")");
  };
  for (auto& [key, like] : dense_entries(prefix, m)) {
    const auto stored = read(key, like);
    // Only the equivariant modules' entries are dense maps to project; others may be 0-dim or integer (counters).
    auto as_matrix = [&] { return Eigen::MatrixXd(to_eigen(stored.dim() == 1 ? stored.reshape({-1, 1}) : stored)); };
    torch::Tensor target, value;
    if (auto* lin = dynamic_cast<eLinearImpl*>(&m)) {
      const Eigen::MatrixXd dense = as_matrix();
      if (key == join(prefix, "weight")) {
        const Eigen::VectorXd theta = lin->basis().coefficients(dense);
        expect_close(key, lin->basis().synthesize(theta), dense);
        target = lin->weight_dof, value = to_tensor(theta);
      } else {
        const Eigen::MatrixXd fix = lin->out_rep().invariant_basis();
        const Eigen::VectorXd beta = fix.transpose() * dense.col(0);
        expect_close(key, fix * beta, dense);
        target = lin->bias_dof, value = to_tensor(beta);
      }
    } else if (auto* aff = dynamic_cast<eAffineImpl*>(&m)) {
      const Eigen::MatrixXd dense = as_matrix();
      if (key == join(prefix, "scale")) {
        const auto cols = copy_columns(aff->options.rep());
        Eigen::VectorXd alpha(cols.size());
        Eigen::MatrixXd rebuilt = Eigen::MatrixXd::Zero(dense.rows(), dense.cols());
        for (size_t i = 0; i < cols.size(); ++i) {
          alpha(i) = (cols[i].transpose() * dense * cols[i]).trace() / cols[i].cols();
          rebuilt += alpha(i) * cols[i] * cols[i].transpose();
        }
        expect_close(key, rebuilt, dense);
        target = aff->scale_dof, value = to_tensor(alpha);
      } else {
        const Eigen::MatrixXd fix = aff->options.rep().invariant_basis();
        const Eigen::VectorXd beta = fix.transpose() * dense.col(0);
        expect_close(key, fix * beta, dense);
        target = aff->bias_dof, value = to_tensor(beta);
      }
    } else {
      target = like, value = stored;
    }
    updates.emplace_back(target, value.reshape(target.sizes()));
  }
}

constexpr char kDecomposition[] = " decomposition=";

// The first line where the architectures differ, the checkpoint's then the module's (both empty where none does).
std::pair<std::string, std::string> first_difference(const std::string& a, const std::string& b) {
  std::istringstream sa(a), sb(b);
  std::string la, lb;
  while (true) {
    const bool ga = static_cast<bool>(std::getline(sa, la)), gb = static_cast<bool>(std::getline(sb, lb));
    if (!ga && !gb) return {};
    if (!ga) la = "(nothing)";
    if (!gb) lb = "(nothing)";
    if (la != lb) return {la, lb};
  }
}

// A line of the architecture without its decomposition, and the decomposition ("ours" where none is written).
std::pair<std::string, std::string> split_decomposition(const std::string& line) {
  const auto at = line.find(kDecomposition);
  if (at == std::string::npos) return {line, "ours"};
  return {line.substr(0, at), line.substr(at + sizeof(kDecomposition) - 1)};
}

}  // namespace

std::string architecture(const torch::nn::Module& module) {
  std::ostringstream out;
  for (const auto& item : module.named_modules("", /*include_self=*/true)) {
    const auto& m = *item.value();
    out << (item.key().empty() ? "(root)" : item.key()) << " " << m.name();
    if (const auto* e = dynamic_cast<const symm::nn::eModule*>(&m)) {
      out << " in=" << e->in_rep().fingerprint() << " out=" << e->out_rep().fingerprint();
      // Only for a foreign decomposition, so that the architecture of every model of ours stays as it was.
      if (const auto rep = e->foreign_decomposition()) out << kDecomposition << rep->decomposition_fingerprint();
    }
    out << "\n";
    for (const auto& p : m.named_parameters(/*recurse=*/false)) out << "  " << p.key() << " " << p.value().sizes() << "\n";
    for (const auto& b : m.named_buffers(/*recurse=*/false)) out << "  " << b.key() << " " << b.value().sizes() << "\n";
  }
  return out.str();
}

void save(const std::shared_ptr<torch::nn::Module>& module, const std::string& path) {
  TORCH_CHECK(module, "symm::save: no module given");
  torch::serialize::OutputArchive archive;
  archive.write("symm.format", c10::IValue(kFormat));
  archive.write("symm.architecture", c10::IValue(architecture(*module)));
  for (const auto& item : module->named_modules("", /*include_self=*/true))
    for (auto& [key, t] : dense_entries(item.key(), *item.value())) archive.write(key, t.to(torch::kCPU));
  std::ostringstream payload_stream;
  archive.save_to(payload_stream);
  const std::string payload = payload_stream.str();
  std::string header(kMagic, kMagicSize);
  put_u64(header, payload.size());
  put_u64(header, fnv1a(payload.data(), payload.size()));
  // A temporary name of this process and call: concurrent writers never share a file, and the rename is atomic.
  static std::atomic<unsigned> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  FILE* f = std::fopen(tmp.c_str(), "wb");
  TORCH_CHECK(f, "symm::save: cannot write '", path, "' (cannot create '", tmp, "')");
  bool ok = std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            std::fwrite(payload.data(), 1, payload.size(), f) == payload.size() && std::fflush(f) == 0 &&
            ::fsync(::fileno(f)) == 0;
  ok = std::fclose(f) == 0 && ok;
  if (ok) ok = std::rename(tmp.c_str(), path.c_str()) == 0;
  if (!ok) std::remove(tmp.c_str());
  TORCH_CHECK(ok, "symm::save: cannot write '", path, "'");
}

namespace {

void load_bytes(const std::shared_ptr<torch::nn::Module>& module, const std::string& bytes, const std::string& source) {
  TORCH_CHECK(module, "symm::load: no module given");
  TORCH_CHECK(bytes.size() >= kHeaderSize && bytes.compare(0, kMagicSize, kMagic) == 0, "symm::load: ", source,
              " is not a symm checkpoint (expected a \"symm-checkpoint\" header, got ", bytes.size(), " bytes without one)");
  const uint64_t size = get_u64(bytes.data() + kMagicSize), hash = get_u64(bytes.data() + kMagicSize + 8);
  const char* payload = bytes.data() + kHeaderSize;
  TORCH_CHECK(size == bytes.size() - kHeaderSize, "symm::load: ", source, " is truncated or damaged: its header announces ",
              size, " bytes of data, it holds ", bytes.size() - kHeaderSize);
  TORCH_CHECK(hash == fnv1a(payload, size), "symm::load: ", source, " is damaged: its checksum does not match its contents");
  // Read by our own bounded reader, not LibTorch's importer, which trusts the archive's length fields.
  std::map<std::string, c10::IValue> entries;
  try {
    entries = detail::read_archive(payload, size);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "symm::load: ", source, " is not a readable symm checkpoint (", e.what_without_backtrace(), ")");
  }
  const auto format = entries.find("symm.format"), arch = entries.find("symm.architecture");
  TORCH_CHECK(format != entries.end() && format->second.isInt(), "symm::load: ", source,
              " is not a symm checkpoint (expected an integer entry 'symm.format')");
  TORCH_CHECK(format->second.toInt() == kFormat, "symm::load: checkpoint format ", format->second.toInt(), ", expected ", kFormat);
  TORCH_CHECK(arch != entries.end() && arch->second.isString(), "symm::load: ", source,
              " has no architecture (expected a string entry 'symm.architecture')");
  const auto [saved, ours] = first_difference(arch->second.toStringRef(), architecture(*module));
  const auto [saved_module, saved_decomposition] = split_decomposition(saved);
  const auto [our_module, our_decomposition] = split_decomposition(ours);
  TORCH_CHECK(saved_module != our_module || saved_decomposition == our_decomposition, "symm::load: ", source,
              " was saved with its hidden regular copies in another irrep decomposition: at '",
              our_module.substr(0, our_module.find(" in=")),
              "' the checkpoint has decomposition ", saved_decomposition, " where the module has ", our_decomposition,
              " (their per-copy scales belong to other irrep copies); build the module with the hidden_rep it was saved with");
  TORCH_CHECK(saved == ours, "symm::load: ", source, " was saved from a different architecture or group: checkpoint has '",
              saved, "' where the module has '", ours, "'");
  std::vector<std::pair<torch::Tensor, torch::Tensor>> updates;
  for (const auto& item : module->named_modules("", /*include_self=*/true)) stage(item.key(), *item.value(), entries, updates);
  torch::NoGradGuard no_grad;
  for (auto& [target, value] : updates) target.copy_(value.to(target.device(), target.scalar_type()));
}

}  // namespace

void load(const std::shared_ptr<torch::nn::Module>& module, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in, "symm::load: cannot read '", path, "'");
  load_bytes(module, std::string(std::istreambuf_iterator<char>(in), {}), "'" + path + "'");
}

void load(const std::shared_ptr<torch::nn::Module>& module, std::istream& in) {
  load_bytes(module, std::string(std::istreambuf_iterator<char>(in), {}), "the stream");
}

}  // namespace symm

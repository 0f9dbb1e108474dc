// Data-parallel training on c10d: the local launcher, the rendezvous, the collectives, failure diagnosis
// and the bucketed gradient all-reduce. See distributed.h.
#include "distributed.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <thread>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>
// LibTorch's build defines USE_C10D_GLOO / USE_C10D_NCCL when it has those process groups; their headers
// also need gloo's (Debian's libgloo-dev) and nccl.h (the CUDA toolkit's).
#if defined(USE_C10D_GLOO) && __has_include(<gloo/config.h>)
#define SYMM_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(USE_C10D_NCCL) && __has_include(<nccl.h>)
#define SYMM_C10D_NCCL 1
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "symm/nn/module.h"

namespace symm::app {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// LibTorch 2 split the process group into a front end and per-device backends; the backends are what
// ProcessGroupGloo and ProcessGroupNCCL derive from, and they carry the collectives we need.
#if TORCH_VERSION_MAJOR >= 2
using Backend = c10d::Backend;
#else
using Backend = c10d::ProcessGroup;
#endif

std::string first_line(const std::string& text) {
  const auto end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}

std::string what_of(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) return first_line(c10->what_without_backtrace());
  return first_line(e.what());
}

std::string seconds_text(milliseconds ms) {
  std::ostringstream s;
  s << static_cast<double>(ms.count()) / 1000 << " s";
  return s.str();
}

// A whole non-negative decimal integer, or nullopt.
std::optional<long> parse_count(const char* text) {
  if (text == nullptr || *text == '\0') return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  if (*end != '\0' || errno != 0 || v < 0) return std::nullopt;
  return v;
}

long env_count(const char* name, std::optional<long> fallback = std::nullopt) {
  const char* text = std::getenv(name);
  if (text == nullptr) {
    if (fallback) return *fallback;
    throw std::invalid_argument(std::string(name) + " is not set (a job started by torchrun sets RANK, WORLD_SIZE, "
                                                    "LOCAL_RANK, MASTER_ADDR and MASTER_PORT)");
  }
  const auto v = parse_count(text);
  if (!v) throw std::invalid_argument(std::string(name) + "='" + text + "': expected a non-negative integer");
  return *v;
}

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::string text(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

bool is_loopback(const std::string& addr) {
  in_addr a{};
  return addr == "localhost" || (inet_pton(AF_INET, addr.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127);
}

// Binds 127.0.0.1:port (0: any free port) and returns the port bound, or -1 with errno set.
int probe_port(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int bound = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    bound = ntohs(a.sin_port);
  const int saved = errno;
  close(fd);
  errno = saved;
  return bound;
}

std::vector<std::string> own_arguments() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t begin = 0; begin < all.size();) {
    const size_t end = all.find('\0', begin);
    args.push_back(all.substr(begin, end - begin));
    begin = end == std::string::npos ? all.size() : end + 1;
  }
  return args;
}

// Time left until deadline, at least 1 ms (a store wait of 0 means no timeout).
milliseconds remaining(Clock::time_point deadline) {
  return std::max(milliseconds(1), std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
}

std::string describe_exit(int status) {
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  return "exited with code " + std::to_string(WEXITSTATUS(status));
}

}  // namespace

// --- starting a job -------------------------------------------------------------------------------------

std::optional<WorldSpec> world_from_environment(int nproc) {
  if (std::getenv("RANK") == nullptr) {
    if (std::getenv("WORLD_SIZE") != nullptr && env_count("WORLD_SIZE") != 1)
      throw std::invalid_argument(std::string("WORLD_SIZE=") + std::getenv("WORLD_SIZE") +
                                  " is set but RANK is not: set both (torchrun does), or neither");
    return std::nullopt;
  }
  WorldSpec w;
  const long rank = env_count("RANK"), size = env_count("WORLD_SIZE");
  if (size < 1 || size > 65536) throw std::invalid_argument("WORLD_SIZE=" + std::to_string(size) + ": expected 1..65536");
  if (rank >= size)
    throw std::invalid_argument("RANK=" + std::to_string(rank) + " with WORLD_SIZE=" + std::to_string(size) +
                                ": a rank must be below the world size");
  if (nproc > 0 && nproc != size)
    throw std::invalid_argument("--nproc " + std::to_string(nproc) + " disagrees with WORLD_SIZE=" + std::to_string(size) +
                                " (under torchrun, leave --nproc out)");
  w.rank = static_cast<int>(rank);
  w.world_size = static_cast<int>(size);
  w.local_rank = static_cast<int>(env_count("LOCAL_RANK", rank));
  const char* addr = std::getenv("MASTER_ADDR");
  if (addr == nullptr || *addr == '\0') throw std::invalid_argument("MASTER_ADDR is not set (the address of rank 0)");
  w.master_addr = addr;
  const long port = env_count("MASTER_PORT");
  if (port < 1 || port > 65535) throw std::invalid_argument("MASTER_PORT=" + std::to_string(port) + ": expected 1..65535");
  w.master_port = static_cast<int>(port);
  return w;
}

int launch_local_workers(int nproc, milliseconds timeout) {
  int port = 0;
  if (std::getenv("MASTER_PORT") != nullptr) {
    const long p = env_count("MASTER_PORT");
    if (p < 1 || p > 65535) throw std::invalid_argument("MASTER_PORT=" + std::to_string(p) + ": expected 1..65535");
    if (probe_port(static_cast<int>(p)) < 0)
      throw std::invalid_argument("MASTER_PORT=" + std::to_string(p) + ": cannot listen on 127.0.0.1:" + std::to_string(p) +
                                  " (" + std::strerror(errno) + ")");
    port = static_cast<int>(p);
  } else if ((port = probe_port(0)) < 0) {
    throw std::invalid_argument(std::string("cannot find a free port on 127.0.0.1: ") + std::strerror(errno));
  }
  const auto args = own_arguments();
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // Each rank gets its share of the cores unless the user chose (torchrun sets 1).
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const std::string threads = std::to_string(std::max(1u, cores / static_cast<unsigned>(nproc)));

  std::cout << std::flush;
  std::cerr << std::flush;
  const pid_t parent = getpid();
  std::vector<pid_t> pids(static_cast<size_t>(nproc), -1);
  for (int r = 0; r < nproc; ++r) {
    const pid_t pid = fork();
    if (pid < 0) {
      for (pid_t p : pids)
        if (p > 0) kill(p, SIGKILL);
      throw std::runtime_error(std::string("cannot start rank ") + std::to_string(r) + ": " + std::strerror(errno));
    }
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // the ranks never outlive the launcher
      if (getppid() != parent) _exit(1);
      setenv("RANK", std::to_string(r).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      setenv("OMP_NUM_THREADS", threads.c_str(), 0);
      execv("/proc/self/exe", argv.data());
      std::cerr << "symm train: cannot start rank " << r << ": " << std::strerror(errno) << "\n";
      _exit(1);
    }
    pids[static_cast<size_t>(r)] = pid;
  }

  // Wait for all; after the first failure, give the others `timeout` (and a little) to notice and stop.
  int running = nproc, code = 0;
  bool failed = false;
  Clock::time_point deadline;
  while (running > 0) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno != EINTR) break;
    if (pid <= 0) {
      if (failed && Clock::now() > deadline) {
        for (size_t r = 0; r < pids.size(); ++r)
          if (pids[r] > 0) {
            std::cerr << "symm train: rank " << r << " did not stop within --timeout; killing it\n";
            kill(pids[r], SIGKILL);
          }
        failed = false;
      }
      std::this_thread::sleep_for(milliseconds(20));
      continue;
    }
    const auto it = std::find(pids.begin(), pids.end(), pid);
    if (it == pids.end()) continue;
    const auto r = it - pids.begin();
    *it = -1;
    --running;
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok && code == 0) {
      std::cerr << "symm train: rank " << r << " " << describe_exit(status) << "\n";
      // A rank that rejected its input (exit 2) makes the job's exit code 2; any other failure, 1.
      code = WIFEXITED(status) && WEXITSTATUS(status) == 2 ? 2 : 1;
      failed = true;
      deadline = Clock::now() + timeout + std::chrono::seconds(5);
    }
  }
  return code;
}

// --- the process group ----------------------------------------------------------------------------------

struct DataParallel::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Backend> backend;
  milliseconds timeout{0};
  milliseconds window{0};  // how long a rank that saw a failure waits to hear from the others
};

struct DataParallel::Pending {
  std::vector<at::Tensor> tensors;
  c10::intrusive_ptr<c10d::Work> work;
};

DataParallel::DataParallel() = default;
DataParallel::~DataParallel() = default;

DataParallel::DataParallel(const WorldSpec& world, const torch::Device& device, milliseconds timeout)
    : world_(world), impl_(std::make_unique<Impl>()) {
  impl_->window = std::min<milliseconds>(milliseconds(5000), timeout / 4);
  impl_->timeout = timeout - impl_->window;
  const std::string where = world.master_addr + ":" + std::to_string(world.master_port);
  // Under torchrun the agent of the first node already serves a store at MASTER_ADDR:MASTER_PORT; every rank
  // is its client, and each restart of the workers uses keys of its own.
  const char* agent_store = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  const bool serve = world.rank == 0 && !(agent_store != nullptr && std::string(agent_store) == "True");
  const char* restart = std::getenv("TORCHELASTIC_RESTART_COUNT");
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(world.master_port);
  so.isServer = serve;
  so.waitWorkers = false;
  so.timeout = timeout;
  try {
    impl_->store = c10::make_intrusive<c10d::PrefixStore>(
        std::string("symm") + (restart != nullptr ? restart : ""), c10::make_intrusive<c10d::TCPStore>(world.master_addr, so));
  } catch (const std::exception& e) {
    if (serve)
      throw std::invalid_argument("rank 0 cannot listen on MASTER_PORT " + std::to_string(world.master_port) +
                                  " (in use?): " + what_of(e));
    throw std::invalid_argument("rank " + std::to_string(world.rank) + " cannot reach the rendezvous at MASTER_ADDR:MASTER_PORT " +
                                where + " within " + seconds_text(timeout) + ": " + what_of(e));
  }
  // Every rank checks in under its own key and states the world size it believes in.
  auto& store = *impl_->store;
  const std::string me = std::to_string(world.rank), size = std::to_string(world.world_size);
  try {
    if (store.add("claim/" + me, 1) > 1)
      throw std::invalid_argument("RANK=" + me + " is taken by another process of this job");
    store.set("world_size/" + me, bytes(size));
    std::vector<std::string> keys;
    for (int r = 0; r < world.world_size; ++r) keys.push_back("world_size/" + std::to_string(r));
    try {
      store.wait(keys, timeout);
    } catch (const std::exception&) {
      int joined = 0;
      for (const auto& k : keys) joined += store.check({k}) ? 1 : 0;
      throw std::invalid_argument("only " + std::to_string(joined) + " of WORLD_SIZE=" + size + " ranks reached " + where +
                                  " within " + seconds_text(timeout));
    }
    for (int r = 0; r < world.world_size; ++r) {
      const std::string theirs = text(store.get(keys[static_cast<size_t>(r)]));
      if (theirs != size)
        throw std::invalid_argument("inconsistent WORLD_SIZE: rank " + std::to_string(r) + " has " + theirs + ", rank " + me +
                                    " has " + size);
    }
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const std::exception& e) {
    throw std::invalid_argument("rank " + me + ": the rendezvous at " + where + " failed: " + what_of(e));
  }
  auto pg_store = c10::make_intrusive<c10d::PrefixStore>("pg", impl_->store);
  try {
    if (device.is_cuda()) {
#ifdef SYMM_C10D_NCCL
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = impl_->timeout;
      impl_->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(pg_store, world.rank, world.world_size, options);
#else
      throw std::invalid_argument("data-parallel training on CUDA needs a LibTorch built with NCCL; this one has none");
#endif
    } else {
#ifdef SYMM_C10D_GLOO
      auto options = c10d::ProcessGroupGloo::Options::create(impl_->timeout);
      // On loopback, bind there; otherwise the interface GLOO_SOCKET_IFNAME names, or the one the host name
      // resolves to, as torch.distributed does.
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      if (is_loopback(world.master_addr))
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else if (ifname != nullptr && *ifname != '\0')
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else
        options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      impl_->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(pg_store, world.rank, world.world_size, options);
#else
      throw std::invalid_argument("data-parallel training on the CPU needs LibTorch's Gloo (this build has no gloo headers)");
#endif
    }
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const std::exception& e) {
    throw std::invalid_argument("rank " + me + ": the process group did not form: " + what_of(e));
  }
}

std::pair<int64_t, int64_t> DataParallel::shard(int64_t n) const {
  const int64_t w = world_size(), r = rank();
  return {n * r / w, n * (r + 1) / w};
}

void DataParallel::check_same(const std::string& what, const std::string& value) {
  if (!impl_) return;
  auto& store = *impl_->store;
  if (is_root()) store.set("same/" + what, bytes(value));
  try {
    store.wait({"same/" + what}, impl_->timeout);
  } catch (const std::exception& e) {
    collective_failed(what_of(e));
  }
  if (text(store.get("same/" + what)) != value)
    throw std::invalid_argument("rank " + std::to_string(rank()) + " runs with other " + what + " than rank 0");
}

std::shared_ptr<DataParallel::Pending> DataParallel::start_all_reduce_sum(torch::Tensor t) {
  auto p = std::make_shared<Pending>();
  p->tensors = {std::move(t)};
  if (!impl_) return p;
  try {
    p->work = impl_->backend->allreduce(p->tensors);
  } catch (const std::exception& e) {
    collective_failed(what_of(e));
  }
  return p;
}

void DataParallel::wait(const std::shared_ptr<Pending>& pending) {
  if (!impl_ || !pending->work) return;
  try {
    pending->work->wait(impl_->timeout);
  } catch (const std::exception& e) {
    collective_failed(what_of(e));
  }
  pending->work.reset();
}

void DataParallel::all_reduce_sum(torch::Tensor& t) {
  if (!impl_) return;
  wait(start_all_reduce_sum(t));
}

void DataParallel::broadcast(const std::vector<torch::Tensor>& tensors) {
  if (!impl_ || tensors.empty()) return;
  // One flat buffer, one collective.
  std::vector<torch::Tensor> flat{torch::cat([&] {
    std::vector<torch::Tensor> parts;
    for (const auto& t : tensors) parts.push_back(t.detach().reshape(-1));
    return parts;
  }())};
  try {
    impl_->backend->broadcast(flat)->wait(impl_->timeout);
  } catch (const std::exception& e) {
    collective_failed(what_of(e));
  }
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (const auto& t : tensors) {
    t.copy_(flat[0].narrow(0, offset, t.numel()).view_as(t));
    offset += t.numel();
  }
}

void DataParallel::report_failure(const std::string& message) noexcept {
  if (!impl_) return;
  try {
    impl_->store->set("failed/" + std::to_string(rank()), bytes(first_line(message)));
    // Rank 0 hosts the store: keep it up until the others have read the message. Dropping the process
    // group first breaks their pending collectives at once.
    impl_->backend.reset();
    if (is_root()) {
      const auto deadline = Clock::now() + impl_->window;
      for (int r = 1; r < world_size(); ++r)
        impl_->store->wait({"abort/" + std::to_string(r)}, remaining(deadline));
    }
  } catch (...) {
  }
}

// A collective failed: another rank died, hung or threw. The survivors check in through the store; a rank
// that threw has left its message there; a rank that is silent for `window` is the one that died or hangs.
void DataParallel::collective_failed(const std::string& error) {
  auto& store = *impl_->store;
  const int n = world_size(), me = rank();
  auto failed_message = [&]() -> std::string {
    for (int r = 0; r < n; ++r)
      if (r != me && store.check({"failed/" + std::to_string(r)}))
        return "rank " + std::to_string(r) + " failed: " + text(store.get("failed/" + std::to_string(r)));
    return "";
  };
  std::string verdict;
  try {
    store.set("abort/" + std::to_string(me), bytes("1"));
    verdict = failed_message();
    if (verdict.empty()) {
      const auto deadline = Clock::now() + impl_->window;
      std::string silent;
      for (int r = 0; r < n; ++r) {
        if (r == me) continue;
        try {
          store.wait({"abort/" + std::to_string(r)}, remaining(deadline));
        } catch (const std::exception&) {
          silent += (silent.empty() ? "" : ", ") + std::to_string(r);
        }
      }
      verdict = failed_message();
      if (verdict.empty())
        verdict = silent.empty() ? "a collective failed on every rank"
                                 : "rank " + silent + " stopped responding (killed, crashed or hung)";
    }
  } catch (const std::exception&) {
    verdict = me == 0 ? "the rendezvous store failed" : "rank 0 stopped responding (killed, crashed or hung; it holds the rendezvous store)";
  }
  impl_->backend.reset();
  throw WorkerFailure(verdict + "; rank " + std::to_string(me) + " stops (" + error + ")");
}

// --- gradients --------------------------------------------------------------------------------------------

GradientAllReduce::GradientAllReduce(DataParallel& dp, std::vector<torch::Tensor> params, int64_t buckets)
    : dp_(dp), params_(std::move(params)) {
  if (dp_.world_size() == 1) return;
  int64_t total = 0;
  for (const auto& p : params_) total += p.numel();
  const int64_t cap = std::max<int64_t>(1, (total + buckets - 1) / buckets);
  place_.resize(params_.size());
  for (size_t k = params_.size(); k-- > 0;) {
    if (buckets_.empty() || buckets_.back().offsets.back() >= cap) buckets_.push_back(Bucket{{}, {0}, {}, 0, nullptr});
    auto& b = buckets_.back();
    place_[k] = {buckets_.size() - 1, b.offsets.back()};
    b.params.push_back(k);
    b.offsets.push_back(b.offsets.back() + params_[k].numel());
  }
  if (buckets_.empty()) buckets_.push_back(Bucket{{}, {0}, {}, 0, nullptr});
  for (size_t i = 0; i < buckets_.size(); ++i) {
    // The last bucket also carries the loss, in one extra slot.
    const int64_t size = buckets_[i].offsets.back() + (i + 1 == buckets_.size() ? 1 : 0);
    buckets_[i].flat = torch::zeros({size}, params_.empty() ? torch::TensorOptions() : params_[0].options());
  }
  for (size_t k = 0; k < params_.size(); ++k)
    hooks_.push_back(params_[k].register_hook([this, k](const torch::Tensor& grad) { on_gradient(k, grad); }));
}

GradientAllReduce::~GradientAllReduce() {
  for (size_t k = 0; k < hooks_.size(); ++k) params_[k].remove_hook(hooks_[k]);
}

int64_t GradientAllReduce::bytes_per_step() const {
  int64_t b = 0;
  for (const auto& bucket : buckets_) b += bucket.flat.numel() * static_cast<int64_t>(bucket.flat.element_size());
  return b;
}

void GradientAllReduce::begin(const torch::Tensor& local_loss) {
  if (buckets_.empty()) return;
  for (auto& b : buckets_) b.ready = 0;
  seen_.assign(params_.size(), 0);
  launched_ = 0;
  armed_ = true;
  buckets_.back().flat.narrow(0, buckets_.back().flat.numel() - 1, 1).copy_(local_loss.detach().reshape(1));
}

void GradientAllReduce::on_gradient(size_t param, const torch::Tensor& grad) {
  if (!armed_ || seen_[param]) return;
  seen_[param] = 1;
  const auto [bucket, offset] = place_[param];
  auto& b = buckets_[bucket];
  b.flat.narrow(0, offset, grad.numel()).copy_(grad.reshape(-1));
  ++b.ready;
  launch_ready();
}

void GradientAllReduce::launch_ready() {
  while (launched_ < buckets_.size() && buckets_[launched_].ready == static_cast<int64_t>(buckets_[launched_].params.size())) {
    buckets_[launched_].pending = dp_.start_all_reduce_sum(buckets_[launched_].flat);
    ++launched_;
  }
}

double GradientAllReduce::finish() {
  if (buckets_.empty()) return 0;  // one process: nothing to do (the caller has the loss)
  armed_ = false;
  // Parameters that took no part in this step's graph contribute zeros.
  for (auto& b : buckets_) {
    for (size_t j = 0; j < b.params.size(); ++j)
      if (!seen_[b.params[j]]) b.flat.narrow(0, b.offsets[j], b.offsets[j + 1] - b.offsets[j]).zero_();
    b.ready = static_cast<int64_t>(b.params.size());
  }
  launch_ready();
  torch::NoGradGuard no_grad;
  for (auto& b : buckets_) {
    dp_.wait(b.pending);
    b.pending.reset();
    for (size_t j = 0; j < b.params.size(); ++j) {
      auto& p = params_[b.params[j]];
      const auto reduced = b.flat.narrow(0, b.offsets[j], b.offsets[j + 1] - b.offsets[j]).view_as(p);
      if (p.grad().defined()) p.mutable_grad().copy_(reduced);
      else p.mutable_grad() = reduced.clone();
    }
  }
  return buckets_.back().flat[-1].item<double>();
}

// --- sizes ------------------------------------------------------------------------------------------------

std::pair<int64_t, int64_t> parameter_bytes(const torch::nn::Module& model) {
  int64_t coefficients = 0, dense = 0;
  const auto* e = dynamic_cast<const symm::nn::eModule*>(&model);
  for (const auto& item : model.named_parameters(/*recurse=*/false)) {
    const auto& p = item.value();
    // An equivariant module's coefficients stand for dense tensors: weight_dof for an (out, in) matrix,
    // scale_dof for a per-channel scale, bias_dof for a bias on the output channels.
    int64_t numel = p.numel();
    if (e != nullptr) {
      if (item.key() == "weight_dof") numel = e->out_rep().size() * e->in_rep().size();
      else if (item.key() == "scale_dof") numel = e->in_rep().size();
      else if (item.key() == "bias_dof") numel = e->out_rep().size();
    }
    coefficients += p.numel() * static_cast<int64_t>(p.element_size());
    dense += numel * static_cast<int64_t>(p.element_size());
  }
  for (const auto& child : model.children()) {
    const auto [c, d] = parameter_bytes(*child);
    coefficients += c, dense += d;
  }
  return {coefficients, dense};
}

}  // namespace symm::app

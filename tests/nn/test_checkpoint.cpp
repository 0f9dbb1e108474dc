// Checkpoints under damage and concurrent writers: every truncation and every flipped byte of a small
// checkpoint is refused with the module unchanged, hostile archives behind a valid header are refused by
// the bounded reader, and two processes saving to one path leave one complete file.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "symm/group/named.h"
#include "symm/nn/affine.h"
#include "symm/nn/checkpoint.h"
#include "symm/nn/linear.h"
#include "test_util.h"

namespace {

using symm::group::make_group;
using symm::group::Representation;
using namespace symm::nn;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string test_data(const std::string& name) { return read_file(std::string(SYMM_TEST_DATA_DIR "/") + name); }

std::vector<torch::Tensor> snapshot(const torch::nn::Module& m) {
  std::vector<torch::Tensor> v;
  for (const auto& p : m.parameters()) v.push_back(p.detach().clone());
  return v;
}

bool same(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return true;
}

// A small module with an equivariant map, an affine map and a plain LibTorch parameter.
torch::nn::Sequential small_module(uint64_t seed) {
  torch::manual_seed(seed);
  const auto rep = Representation::regular(make_group("C3"));
  torch::nn::Sequential m(eLinear(rep, rep), eAffine(eAffineOptions(rep)), torch::nn::Linear(3, 2));
  torch::NoGradGuard no_grad;
  for (auto& p : m->parameters()) p.uniform_(-1, 1);
  return m;
}

TEST(CheckpointDamage, StreamRoundTrip) {
  auto a = small_module(1), b = small_module(2);
  const std::string path = ::testing::TempDir() + "stream.symm";
  symm::save(a, path);
  std::istringstream in(read_file(path));
  symm::load(b, in);
  EXPECT_TRUE(same(snapshot(*a), snapshot(*b)));
}

TEST(CheckpointDamage, EveryTruncationAndEveryFlippedByteIsRefusedWithTheModuleUnchanged) {
  const std::string path = ::testing::TempDir() + "damage.symm";
  symm::save(small_module(1), path);
  const std::string bytes = read_file(path);
  ASSERT_GT(bytes.size(), 32u);
  auto target = small_module(2);
  const auto before = snapshot(*target);
  size_t refused = 0, attempts = 0;
  auto try_load = [&](const std::string& damaged) {
    ++attempts;
    std::istringstream in(damaged);
    try {
      symm::load(target, in);
    } catch (const c10::Error&) {
      ++refused;
    }
    if (!same(before, snapshot(*target))) ADD_FAILURE() << "the module changed at attempt " << attempts;
  };
  for (size_t n = 0; n < bytes.size(); ++n) try_load(bytes.substr(0, n));
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string flipped = bytes;
    flipped[i] = static_cast<char>(flipped[i] ^ 0xff);
    try_load(flipped);
  }
  EXPECT_EQ(refused, attempts) << "of " << bytes.size() << " bytes";
  std::istringstream in(bytes);
  symm::load(target, in);  // the undamaged file still loads
  EXPECT_FALSE(same(before, snapshot(*target)));
}

// A header announcing the payload's true length and hash, as symm::save writes it.
std::string framed(const std::string& payload) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : payload) { h ^= c; h *= 1099511628211ULL; }
  std::string out = "symm-checkpoint\n";
  for (uint64_t v : {static_cast<uint64_t>(payload.size()), h})
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  return out + payload;
}

// Damage behind a valid header reaches LibTorch's archive reader, which throws more than c10::Error.
TEST(CheckpointDamage, DamagedArchivesBehindAValidHeaderAreRefusedWithTheModuleUnchanged) {
  const std::string path = ::testing::TempDir() + "archive.symm";
  symm::save(small_module(1), path);
  const std::string payload = read_file(path).substr(32);
  // fuzz_checkpoint's finding: a TorchScript type name that does not parse (std::runtime_error in LibTorch).
  const std::string finding = test_data("checkpoint_torchscript_error.bin");
  ASSERT_FALSE(finding.empty());
  std::vector<std::string> inputs{finding[0] % 2 ? framed(finding.substr(1)) : finding.substr(1)};
  for (size_t i = 0; i < payload.size(); i += 13) {
    std::string damaged = payload;
    damaged[i] = static_cast<char>(damaged[i] ^ 0x5a);
    inputs.push_back(framed(damaged));
  }
  auto target = small_module(2);
  const auto before = snapshot(*target);
  for (size_t k = 0; k < inputs.size(); ++k) {
    std::istringstream in(inputs[k]);
    try {
      symm::load(target, in);
      // A change in bytes the archive does not read may load; then it loads the saved values.
      target = small_module(2);
    } catch (const c10::Error&) {
      if (!same(before, snapshot(*target))) ADD_FAILURE() << "input " << k << " changed the module";
    } catch (const std::exception& e) {
      ADD_FAILURE() << "input " << k << ": not a c10::Error: " << e.what();
    }
  }
}

// Loads `bytes` into `target`, which must refuse with a c10::Error whose message contains `expected` and
// leave every parameter as it was.
void expect_refused(torch::nn::Sequential& target, const std::string& bytes, const std::string& expected) {
  const auto before = snapshot(*target);
  std::istringstream in(bytes);
  try {
    symm::load(target, in);
    ADD_FAILURE() << "loaded; expected a refusal naming '" << expected << "'";
  } catch (const c10::Error& e) {
    const std::string message = e.what_without_backtrace();
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  }
  EXPECT_TRUE(same(before, snapshot(*target))) << "a refused load changed the module";
}

// fuzz_checkpoint's finding (fuzz/findings/checkpoint-oom-unpickler): data.pkl's BINUNICODE length field
// claims 1.85 GB behind a valid header; LibTorch's unpickler reserved it and ran out of memory.
TEST(CheckpointHostile, FuzzFindingOutOfMemoryUnpicklerIsRefused) {
  const std::string finding = test_data("checkpoint_oom_unpickler.bin");
  ASSERT_FALSE(finding.empty());
  auto target = small_module(2);
  expect_refused(target, finding[0] % 2 ? framed(finding.substr(1)) : finding.substr(1),
                 "BINUNICODE's string needs 1852386926 bytes");
}

// The payload of a checkpoint of `m` with data.pkl replaced, written by LibTorch's own zip writer.
std::string with_pickle(const std::string& payload, const std::string& pkl) {
  std::istringstream in(payload);
  caffe2::serialize::PyTorchStreamReader reader(&in);
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* p, size_t n) {
    out.append(static_cast<const char*>(p), n);
    return n;
  });
  writer.writeRecord("data.pkl", pkl.data(), pkl.size());
  for (const auto& name : reader.getAllRecords())
    if (name.rfind("data/", 0) == 0) {
      auto record = reader.getRecord(name);
      writer.writeRecord(name, std::get<0>(record).get(), std::get<1>(record));
    }
  writer.writeEndOfFile();
  return out;
}

std::string data_pkl(const std::string& payload) {
  std::istringstream in(payload);
  caffe2::serialize::PyTorchStreamReader reader(&in);
  auto record = reader.getRecord("data.pkl");
  return std::string(static_cast<const char*>(std::get<0>(record).get()), std::get<1>(record));
}

// Protocol-2 pickle opcodes, as LibTorch's pickler writes them.
struct Pickle {
  std::string bytes = "\x80\x02";
  Pickle& op(char c) { bytes += c; return *this; }
  Pickle& u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes += static_cast<char>(v >> (8 * i));
    return *this;
  }
  Pickle& str(const std::string& s) { op('X').u32(static_cast<uint32_t>(s.size())); bytes += s; return *this; }
  Pickle& integer(int32_t v) { return op('J').u32(static_cast<uint32_t>(v)); }
  Pickle& global(const std::string& module, const std::string& name) { bytes += "c" + module + "\n" + name + "\n"; return *this; }
  Pickle& ints(const std::vector<int32_t>& v) {
    op('(');
    for (auto x : v) integer(x);
    return op('t');
  }
  // _rebuild_tensor_v2(('storage', torch.DoubleStorage, key, 'cpu', numel), offset, sizes, strides, False, OrderedDict())
  Pickle& tensor(const std::string& key, int32_t numel, int32_t offset, const std::vector<int32_t>& sizes,
                 const std::vector<int32_t>& strides) {
    global("torch._utils", "_rebuild_tensor_v2").op('(').op('(').str("storage").global("torch", "DoubleStorage");
    str(key).str("cpu").integer(numel).op('t').op('Q').integer(offset).ints(sizes).ints(strides).op('\x89');
    return global("collections", "OrderedDict").op(')').op('R').op('t').op('R');
  }
  Pickle& module() { return global("__torch__", "Module").op(')').op('\x81').op('}').op('('); }  // then attributes
  std::string end() { return op('u').op('b').op('.').bytes; }
};

TEST(CheckpointHostile, ArchivesThatClaimMoreThanTheyHoldAreRefusedWithTheModuleUnchanged) {
  const std::string path = ::testing::TempDir() + "hostile.symm";
  symm::save(small_module(1), path);
  const std::string payload = read_file(path).substr(32);
  auto target = small_module(2);
  // The rewriting itself keeps a checkpoint loadable.
  {
    std::istringstream in(framed(with_pickle(payload, data_pkl(payload))));
    symm::load(target, in);
    EXPECT_TRUE(same(snapshot(*small_module(1)), snapshot(*target)));
    target = small_module(2);
  }
  auto hostile = [&](const std::string& pkl, const std::string& expected) {
    SCOPED_TRACE(expected);
    expect_refused(target, framed(with_pickle(payload, pkl)), expected);
  };
  // Lengths beyond the bytes present: a string, and an unterminated GLOBAL.
  hostile(Pickle().op('X').u32(0x7fffffff).bytes, "BINUNICODE's string needs 2147483647 bytes, 0 remain");
  hostile(Pickle().bytes + "ctorch", "GLOBAL's module is not a line");
  // A memo index of 2^32 - 1 (LibTorch reserves twice that many slots), then a read of one never set.
  hostile(Pickle().op('N').op('r').u32(0xffffffff).op('j').u32(7).bytes, "memo 7 is read but was never set");
  // A storage of 2^30 doubles whose record holds 9, a view past its storage, a broadcast view of 2^30
  // elements over one, a negative stride.
  hostile(Pickle().module().str("w").tensor("0", 1 << 30, 0, {1 << 30}, {1}).end(), "claims 1073741824 elements");
  hostile(Pickle().module().str("w").tensor("0", 9, 0, {4, 4}, {4, 1}).end(), "exceeds its storage of 9 elements");
  hostile(Pickle().module().str("w").tensor("0", 9, 8, {2}, {1}).end(), "reaches element 9 of a storage of 9");
  hostile(Pickle().module().str("w").tensor("0", 9, 0, {1 << 30}, {0}).end(), "exceeds its storage of 9 elements");
  hostile(Pickle().module().str("w").tensor("0", 9, 0, {3}, {-1}).end(), "expected integers >= 0");
  hostile(Pickle().module().str("w").tensor("missing", 9, 0, {3}, {1}).end(), "has no record archive/data/missing");
  // Calls and opcodes LibTorch's pickler never writes; a million nested marks and lists stay iterative.
  hostile(Pickle().global("os", "system").str("true").op('\x85').op('R').op('.').bytes, "a call of 'os.system'");
  hostile(Pickle().op('I').bytes + "1\n.", "opcode 73 ('I') is not one LibTorch's pickler writes");
  hostile(Pickle().bytes + std::string(1000000, '(') + std::string(1000000, ']') + ".", "1000000 marks");
  hostile(Pickle().module().str("w").op(']').end(), "attribute 'w' is a list");
  hostile(Pickle().module().str("symm.format").integer(2).str("symm.format").integer(3).end(), "'symm.format' appears twice");
  // The zip's central directory claiming a record larger than the archive.
  std::string zip = payload;
  const size_t entry = zip.find(std::string("PK\x01\x02", 4));
  ASSERT_NE(entry, std::string::npos);
  for (int i = 0; i < 4; ++i) zip[entry + 20 + i] = static_cast<char>(0x7fffffff >> (8 * i));
  expect_refused(target, framed(zip), "claims 2147483647 bytes");
}

TEST(CheckpointDamage, TwoProcessesSavingToOnePathLeaveOneCompleteFile) {
  const std::string dir = ::testing::TempDir() + "race." + std::to_string(::getpid());
  ASSERT_EQ(::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "'").c_str()), 0);
  const std::string path = dir + "/model.symm";
  std::vector<torch::nn::Sequential> writers{small_module(1), small_module(2)};
  std::vector<pid_t> children;
  {
    const symm::test::ThreadsForScope one_thread(1);  // the children use no thread pool inherited across fork
    for (auto& w : writers) {
      const pid_t pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        int code = 0;
        try {
          for (int i = 0; i < 20; ++i) symm::save(w, path);
        } catch (...) {
          code = 1;
        }
        ::_exit(code);
      }
      children.push_back(pid);
    }
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a writer failed";
  }
  auto target = small_module(3);
  symm::load(target, path);
  const auto loaded = snapshot(*target);
  EXPECT_TRUE(same(loaded, snapshot(*writers[0])) || same(loaded, snapshot(*writers[1])));
  std::vector<std::string> left;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') left.emplace_back(e->d_name);
    ::closedir(d);
  }
  EXPECT_EQ(left, std::vector<std::string>{"model.symm"}) << "temporary files left behind";
  EXPECT_EQ(::system(("rm -rf '" + dir + "'").c_str()), 0);
}

}  // namespace

#include "checkpoint_archive.h"

#include <cctype>
#include <cstdint>
#include <cstring>
#include <unordered_map>
#include <vector>

namespace symm::detail {

namespace {

uint64_t little_endian(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

// A stored record of the zip: where its bytes start in the payload, how many, and how they are compressed.
struct Record {
  uint64_t offset = 0, size = 0;
  uint64_t method = 0;  // 0: stored, as LibTorch writes data.pkl and every tensor storage
};

// The records named by the zip's central directory, each checked to lie before the directory. LibTorch
// writes its local headers without sizes (a data descriptor follows the bytes), so the directory's sizes
// are the ones that count. CRCs are not checked: the checkpoint's header already hashes every byte.
std::map<std::string, Record> read_zip(const char* p, uint64_t n, std::string& first_name) {
  constexpr uint64_t kEndSize = 22, kEntrySize = 46, kLocalSize = 30;
  TORCH_CHECK(n >= kEndSize, "expected a zip archive, which ends with a 22-byte record, got ", n, " bytes");
  // The end record, searched from the back: a comment of up to 65535 bytes may follow it.
  uint64_t end = n - kEndSize;
  const uint64_t lowest = end > 65535 ? end - 65535 : 0;
  while (little_endian(p + end, 4) != 0x06054b50 || end + kEndSize + little_endian(p + end + 20, 2) != n) {
    TORCH_CHECK(end > lowest, "expected a zip archive, found no end-of-central-directory record in its last ",
                n - lowest, " bytes");
    --end;
  }
  uint64_t count = little_endian(p + end + 10, 2), dir_size = little_endian(p + end + 12, 4),
           dir_offset = little_endian(p + end + 16, 4);
  if (count == 0xffff || dir_size == 0xffffffff || dir_offset == 0xffffffff) {
    // Saturated fields: the zip64 end record, found through the locator just before this one, has them.
    TORCH_CHECK(end >= 20 && little_endian(p + end - 20, 4) == 0x07064b50,
                "the zip end record defers to a zip64 record, but no zip64 locator precedes it");
    const uint64_t at = little_endian(p + end - 20 + 8, 8);
    TORCH_CHECK(at <= end - 20 && end - 20 - at >= 56 && little_endian(p + at, 4) == 0x06064b50,
                "the zip64 locator points at byte ", at, ", where no zip64 end record lies");
    count = little_endian(p + at + 32, 8), dir_size = little_endian(p + at + 40, 8), dir_offset = little_endian(p + at + 48, 8);
    end = at;
  }
  TORCH_CHECK(dir_offset <= end && dir_size <= end - dir_offset, "the zip central directory claims ", dir_size,
              " bytes at byte ", dir_offset, ", the archive has ", end, " bytes before its end record");
  TORCH_CHECK(count <= dir_size / kEntrySize, "the zip central directory claims ", count, " records in ", dir_size,
              " bytes (a record takes at least 46)");
  std::map<std::string, Record> records;
  uint64_t pos = dir_offset;
  const uint64_t dir_end = dir_offset + dir_size;
  for (uint64_t i = 0; i < count; ++i) {
    const char* e = p + pos;
    TORCH_CHECK(dir_end - pos >= kEntrySize && little_endian(e, 4) == 0x02014b50, "zip directory entry ", i,
                " at byte ", pos, ": expected its signature, got other bytes");
    const uint64_t name_size = little_endian(e + 28, 2), extra_size = little_endian(e + 30, 2),
                   comment_size = little_endian(e + 32, 2);
    TORCH_CHECK(dir_end - pos - kEntrySize >= name_size + extra_size + comment_size, "zip directory entry ", i,
                " runs past the directory's end");
    const std::string name(e + kEntrySize, name_size);
    Record r;
    r.method = little_endian(e + 10, 2);
    r.size = little_endian(e + 20, 4);
    uint64_t uncompressed = little_endian(e + 24, 4);
    r.offset = little_endian(e + 42, 4);
    // The zip64 extra field holds the 64-bit values of the saturated fields, in this order.
    for (uint64_t x = 0; x + 4 <= extra_size;) {
      const char* field = e + kEntrySize + name_size + x;
      const uint64_t id = little_endian(field, 2), size = little_endian(field + 2, 2);
      TORCH_CHECK(x + 4 + size <= extra_size, "zip record '", name, "': an extra field runs past its entry");
      if (id == 1) {
        uint64_t k = 0;
        for (uint64_t* v : {&uncompressed, &r.size, &r.offset}) {
          if (*v != 0xffffffff) continue;
          TORCH_CHECK(k + 8 <= size, "zip record '", name, "': its zip64 field lacks a saturated size or offset");
          *v = little_endian(field + 4 + k, 8);
          k += 8;
        }
      }
      x += 4 + size;
    }
    pos += kEntrySize + name_size + extra_size + comment_size;
    const char* local = p + r.offset;
    TORCH_CHECK(r.offset <= dir_offset && dir_offset - r.offset >= kLocalSize && little_endian(local, 4) == 0x04034b50,
                "zip record '", name, "': expected a local header at byte ", r.offset, ", got other bytes");
    const uint64_t data = r.offset + kLocalSize + little_endian(local + 26, 2) + little_endian(local + 28, 2);
    TORCH_CHECK(data <= dir_offset && r.size <= dir_offset - data, "zip record '", name, "' claims ", r.size,
                " bytes at byte ", data, ", the records end at byte ", dir_offset);
    TORCH_CHECK(little_endian(local + 26, 2) == name_size && std::memcmp(local + kLocalSize, name.data(), name_size) == 0,
                "zip record '", name, "': its local header names another record");
    TORCH_CHECK(r.method != 0 || uncompressed == r.size, "zip record '", name, "' is stored in ", r.size,
                " bytes but claims ", uncompressed, " uncompressed");
    r.offset = data;
    TORCH_CHECK(records.emplace(name, r).second, "the zip archive holds record '", name, "' twice");
    if (i == 0) first_name = name;
  }
  return records;
}

// A pickle value. Containers and strings live in side tables, so a value is small and a container may
// hold itself (memo plus mutation) without owning cycles.
struct Value {
  enum Kind : uint8_t { kNone, kBool, kInt, kFloat, kString, kTuple, kList, kDict, kGlobal, kStorage, kTensor, kObject };
  Kind kind = kNone;
  int64_t i = 0;   // kBool, kInt; index into strings (kString, kGlobal), items (kTuple, kList, kDict, kObject), tensors
  double f = 0;    // kFloat
};

std::string hex(unsigned char c) {
  const char* digits = "0123456789abcdef";
  return {digits[c >> 4], digits[c & 15]};
}

const char* kind_name(Value::Kind k) {
  static const char* names[] = {"None", "bool", "integer", "float", "string", "tuple", "list", "dict", "global",
                                "storage", "tensor", "object"};
  return names[k];
}

// Runs data.pkl on a stack machine that knows only the opcodes of LibTorch's pickler (protocol 2) and
// only the globals it writes: the module class, tensor storages, _rebuild_tensor_v2 and OrderedDict.
// Every length is checked against the bytes that remain, every memo index against the memo, and each
// tensor against its storage, whose bytes must be in the archive; so work and memory stay linear in the
// pickle's size (a few dozen bytes per byte at worst) plus the storages it names.
class Unpickler {
 public:
  Unpickler(const char* data, uint64_t size, const std::map<std::string, Record>& records, const char* payload,
            std::string prefix)
      : p_(data), size_(size), records_(records), payload_(payload), prefix_(std::move(prefix)) {}

  std::map<std::string, c10::IValue> run() {
    while (true) {
      TORCH_CHECK(pos_ < size_, "data.pkl ends at byte ", size_, " without a STOP opcode");
      at_ = pos_;
      const auto op = static_cast<unsigned char>(p_[pos_++]);
      switch (op) {
        case 0x80: read(1, "PROTO's version"); break;
        case '.': return stop();
        case '(': marks_.push_back(stack_.size()); break;
        case 'N': push({Value::kNone}); break;
        case 0x88: push({Value::kBool, 1}); break;
        case 0x89: push({Value::kBool, 0}); break;
        case 'K': push({Value::kInt, static_cast<int64_t>(read(1, "BININT1"))}); break;
        case 'M': push({Value::kInt, static_cast<int64_t>(read(2, "BININT2"))}); break;
        case 'J': push({Value::kInt, static_cast<int32_t>(read(4, "BININT"))}); break;
        case 0x8a: {  // LONG1: a length byte, then a little-endian two's complement integer
          const auto n = read(1, "LONG1's length");
          TORCH_CHECK(n <= 8, "data.pkl byte ", at_, ": a LONG1 integer of ", n, " bytes, expected at most 8");
          uint64_t v = read(static_cast<int>(n), "LONG1");
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);
          push({Value::kInt, static_cast<int64_t>(v)});
          break;
        }
        case 'G': {  // BINFLOAT: big-endian IEEE double
          need(8, "BINFLOAT");
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = bits << 8 | static_cast<unsigned char>(p_[pos_ + k]);
          pos_ += 8;
          Value v{Value::kFloat};
          std::memcpy(&v.f, &bits, 8);
          push(v);
          break;
        }
        case 'X': {
          const auto n = read(4, "BINUNICODE's length");
          need(n, "BINUNICODE's string");
          push({Value::kString, add_string(std::string(p_ + pos_, n))});
          pos_ += n;
          break;
        }
        case 'c': {
          std::string module = line("GLOBAL's module"), name = line("GLOBAL's name");
          push({Value::kGlobal, add_string(module + "." + name)});
          break;
        }
        case ')': push({Value::kTuple, add_items({})}); break;
        case 't': push({Value::kTuple, add_items(pop_mark())}); break;
        case 0x85: case 0x86: case 0x87: {  // TUPLE1, TUPLE2, TUPLE3
          const size_t n = op - 0x84;
          TORCH_CHECK(stack_.size() - floor() >= n, "data.pkl byte ", at_, ": TUPLE", n, " on a stack of ",
                      stack_.size() - floor(), " values");
          std::vector<Value> items(stack_.end() - n, stack_.end());
          stack_.resize(stack_.size() - n);
          push({Value::kTuple, add_items(std::move(items))});
          break;
        }
        case ']': push({Value::kList, add_items({})}); break;
        case '}': push({Value::kDict, add_items({})}); break;
        case 'a': { Value v = pop(); append(Value::kList, {v}); break; }
        case 'e': append(Value::kList, pop_mark()); break;
        case 's': { Value v = pop(), k = pop(); append(Value::kDict, {k, v}); break; }
        case 'u': {
          auto items = pop_mark();
          TORCH_CHECK(items.size() % 2 == 0, "data.pkl byte ", at_, ": SETITEMS with ", items.size(),
                      " values, expected key-value pairs");
          append(Value::kDict, std::move(items));
          break;
        }
        case 'q': memo_put(read(1, "BINPUT")); break;
        case 'r': memo_put(read(4, "LONG_BINPUT")); break;
        case 'h': memo_get(read(1, "BINGET")); break;
        case 'j': memo_get(read(4, "LONG_BINGET")); break;
        case 'Q': push(storage(pop())); break;
        case 'R': { Value args = pop(), fn = pop(); push(reduce(fn, args)); break; }
        case 0x81: { Value args = pop(), cls = pop(); push(new_object(cls, args)); break; }
        case 'b': {
          Value state = pop();
          TORCH_CHECK(!stack_.empty() && stack_.back().kind == Value::kObject && state.kind == Value::kDict,
                      "data.pkl byte ", at_, ": BUILD expects a module object and a dict of its attributes, got ",
                      stack_.empty() ? "nothing" : kind_name(stack_.back().kind), " and ", kind_name(state.kind));
          auto& slot = items_[stack_.back().i];
          TORCH_CHECK(slot.empty(), "data.pkl byte ", at_, ": BUILD on a module object that has its attributes");
          slot.push_back(state);
          break;
        }
        default:
          TORCH_CHECK(false, "data.pkl byte ", at_, ": opcode ", static_cast<int>(op), " ('",
                      std::isprint(op) ? std::string(1, static_cast<char>(op)) : "\\x" + hex(op),
                      "') is not one LibTorch's pickler writes");
      }
    }
  }

 private:
  void need(uint64_t n, const char* what) const {
    TORCH_CHECK(size_ - pos_ >= n, "data.pkl byte ", at_, ": ", what, " needs ", n, " bytes, ", size_ - pos_, " remain");
  }
  uint64_t read(int bytes, const char* what) {
    need(bytes, what);
    const uint64_t v = little_endian(p_ + pos_, bytes);
    pos_ += bytes;
    return v;
  }
  std::string line(const char* what) {
    const void* nl = std::memchr(p_ + pos_, '\n', std::min<uint64_t>(size_ - pos_, 256));
    TORCH_CHECK(nl, "data.pkl byte ", at_, ": ", what, " is not a line of at most 255 bytes");
    std::string s(p_ + pos_, static_cast<const char*>(nl));
    pos_ += s.size() + 1;
    return s;
  }

  int64_t add_string(std::string s) { strings_.push_back(std::move(s)); return static_cast<int64_t>(strings_.size() - 1); }
  int64_t add_items(std::vector<Value> v) { items_.push_back(std::move(v)); return static_cast<int64_t>(items_.size() - 1); }
  const std::string& str(const Value& v) const { return strings_[v.i]; }
  const std::vector<Value>& items(const Value& v) const { return items_[v.i]; }

  void push(const Value& v) { stack_.push_back(v); }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  Value pop() {
    TORCH_CHECK(stack_.size() > floor(), "data.pkl byte ", at_, ": an opcode needs a value, the stack has none above its mark");
    Value v = stack_.back();
    stack_.pop_back();
    return v;
  }
  std::vector<Value> pop_mark() {
    TORCH_CHECK(!marks_.empty(), "data.pkl byte ", at_, ": an opcode needs a MARK, there is none");
    std::vector<Value> v(stack_.begin() + marks_.back(), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return v;
  }
  void append(Value::Kind kind, std::vector<Value> v) {
    TORCH_CHECK(!stack_.empty() && stack_.back().kind == kind, "data.pkl byte ", at_, ": expected a ", kind_name(kind),
                " to add to, got ", stack_.empty() ? "nothing" : kind_name(stack_.back().kind));
    auto& target = items_[stack_.back().i];
    target.insert(target.end(), v.begin(), v.end());
  }
  void memo_put(uint64_t id) {
    TORCH_CHECK(!stack_.empty(), "data.pkl byte ", at_, ": memo ", id, " is set from an empty stack");
    memo_[id] = stack_.back();
  }
  void memo_get(uint64_t id) {
    const auto it = memo_.find(id);
    TORCH_CHECK(it != memo_.end(), "data.pkl byte ", at_, ": memo ", id, " is read but was never set (", memo_.size(),
                " set)");
    push(it->second);
  }

  // BINPERSID: ('storage', torch.<Type>Storage, key, location, numel) names the record data/<key>.
  Value storage(const Value& id) {
    const auto* t = id.kind == Value::kTuple ? &items(id) : nullptr;
    TORCH_CHECK(t && t->size() == 5 && (*t)[0].kind == Value::kString && str((*t)[0]) == "storage" &&
                    (*t)[1].kind == Value::kGlobal && (*t)[2].kind == Value::kString && (*t)[4].kind == Value::kInt,
                "data.pkl byte ", at_, ": expected a persistent id ('storage', type, key, location, size), got a ",
                kind_name(id.kind), t ? " of " + std::to_string(t->size()) + " values" : "");
    const std::string& type = str((*t)[1]);
    c10::optional<c10::ScalarType> dtype;
    for (auto s : {torch::kDouble, torch::kFloat, torch::kHalf, torch::kBFloat16, torch::kLong, torch::kInt, torch::kShort,
                   torch::kChar, torch::kByte, torch::kBool, torch::kComplexFloat, torch::kComplexDouble})
      if (type == std::string("torch.") + c10::toString(s) + "Storage") dtype = s;
    TORCH_CHECK(dtype, "data.pkl byte ", at_, ": storage type '", type, "', expected torch.<dtype>Storage");
    const std::string& key = str((*t)[2]);
    const int64_t numel = (*t)[4].i;
    if (const auto it = storages_.find(key); it != storages_.end()) {
      const auto& s = tensors_[it->second];
      TORCH_CHECK(s.scalar_type() == *dtype && s.numel() == numel, "data.pkl byte ", at_, ": storage '", key,
                  "' is named again with another type or size");
      return {Value::kStorage, it->second};
    }
    const auto item = static_cast<int64_t>(c10::elementSize(*dtype));
    torch::Tensor s;
    if (numel == 0) {
      s = torch::empty({0}, torch::TensorOptions().dtype(*dtype));
    } else {
      const auto r = records_.find(prefix_ + "/data/" + key);
      TORCH_CHECK(r != records_.end(), "data.pkl byte ", at_, ": storage '", key, "' has no record ", prefix_, "/data/", key);
      TORCH_CHECK(numel > 0 && r->second.method == 0 && static_cast<uint64_t>(numel) <= r->second.size / item,
                  "data.pkl byte ", at_, ": storage '", key, "' claims ", numel, " elements of ", item,
                  " bytes, its record holds ", r->second.size, " bytes", r->second.method ? " compressed" : "");
      const char* bytes = payload_ + r->second.offset;
      if (*dtype == torch::kBool)
        for (int64_t k = 0; k < numel; ++k)
          TORCH_CHECK(bytes[k] == 0 || bytes[k] == 1, "storage '", key, "' holds a bool that is neither 0 nor 1");
      s = torch::empty({numel}, torch::TensorOptions().dtype(*dtype));
      std::memcpy(s.data_ptr(), bytes, numel * item);
    }
    tensors_.push_back(s);
    storages_[key] = static_cast<int64_t>(tensors_.size() - 1);
    return {Value::kStorage, static_cast<int64_t>(tensors_.size() - 1)};
  }

  std::vector<int64_t> ints(const Value& v, const char* what) const {
    TORCH_CHECK(v.kind == Value::kTuple, "data.pkl byte ", at_, ": a tensor's ", what, " is a ", kind_name(v.kind),
                ", expected a tuple of integers");
    std::vector<int64_t> out;
    for (const auto& x : items(v)) {
      TORCH_CHECK(x.kind == Value::kInt && x.i >= 0, "data.pkl byte ", at_, ": a tensor's ", what,
                  " holds a ", kind_name(x.kind), x.kind == Value::kInt ? " below 0" : "", ", expected integers >= 0");
      out.push_back(x.i);
    }
    return out;
  }

  // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks[, metadata]): a view
  // that must lie inside its storage and have no more elements than it.
  Value tensor(const std::vector<Value>& a) {
    TORCH_CHECK((a.size() == 6 || a.size() == 7) && a[0].kind == Value::kStorage && a[1].kind == Value::kInt,
                "data.pkl byte ", at_, ": _rebuild_tensor_v2 expects (storage, offset, size, stride, requires_grad, ",
                "hooks), got ", a.size(), " arguments");
    const torch::Tensor& storage = tensors_[a[0].i];
    const int64_t offset = a[1].i, numel = storage.numel();
    const auto sizes = ints(a[2], "size"), strides = ints(a[3], "stride");
    TORCH_CHECK(sizes.size() == strides.size() && sizes.size() <= 64, "data.pkl byte ", at_, ": a tensor with ",
                sizes.size(), " sizes and ", strides.size(), " strides, expected as many of each, at most 64");
    TORCH_CHECK(offset >= 0 && offset <= numel, "data.pkl byte ", at_, ": a tensor at offset ", offset,
                " of a storage of ", numel, " elements");
    int64_t count = 1, last = offset;  // elements of the view, and its last element's index
    for (size_t d = 0; d < sizes.size(); ++d) {
      int64_t reach = 0;
      const bool overflow = __builtin_mul_overflow(count, sizes[d], &count) ||
                            (sizes[d] > 0 && (__builtin_mul_overflow(sizes[d] - 1, strides[d], &reach) ||
                                              __builtin_add_overflow(last, reach, &last)));
      TORCH_CHECK(!overflow && count <= numel, "data.pkl byte ", at_, ": a tensor of sizes ", c10::IntArrayRef(sizes),
                  " exceeds its storage of ", numel, " elements");
    }
    TORCH_CHECK(count == 0 || last < numel, "data.pkl byte ", at_, ": a tensor of sizes ", c10::IntArrayRef(sizes),
                ", strides ", c10::IntArrayRef(strides), " at offset ", offset, " reaches element ", last,
                " of a storage of ", numel);
    tensors_.push_back(storage.as_strided(sizes, strides, offset));
    return {Value::kTensor, static_cast<int64_t>(tensors_.size() - 1)};
  }

  Value reduce(const Value& fn, const Value& args) {
    TORCH_CHECK(fn.kind == Value::kGlobal && args.kind == Value::kTuple, "data.pkl byte ", at_,
                ": REDUCE expects a global and a tuple, got ", kind_name(fn.kind), " and ", kind_name(args.kind));
    if (str(fn) == "torch._utils._rebuild_tensor_v2") return tensor(items(args));
    TORCH_CHECK(str(fn) == "collections.OrderedDict" && items(args).empty(), "data.pkl byte ", at_, ": a call of '",
                str(fn), "' with ", items(args).size(),
                " arguments, expected torch._utils._rebuild_tensor_v2 or collections.OrderedDict()");
    return {Value::kDict, add_items({})};
  }

  Value new_object(const Value& cls, const Value& args) {
    TORCH_CHECK(cls.kind == Value::kGlobal && str(cls).rfind("__torch__.", 0) == 0 && args.kind == Value::kTuple &&
                    items(args).empty(),
                "data.pkl byte ", at_, ": NEWOBJ expects a __torch__ module class and no arguments, got ",
                cls.kind == Value::kGlobal ? "'" + str(cls) + "'" : kind_name(cls.kind));
    return {Value::kObject, add_items({})};
  }

  std::map<std::string, c10::IValue> stop() {
    TORCH_CHECK(pos_ == size_, "data.pkl has ", size_ - pos_, " bytes after its STOP opcode");
    TORCH_CHECK(marks_.empty() && stack_.size() == 1, "data.pkl stops with ", stack_.size(), " values and ",
                marks_.size(), " marks on its stack, expected one value");
    const Value root = stack_.back();
    TORCH_CHECK(root.kind == Value::kObject && items(root).size() == 1, "data.pkl holds a ", kind_name(root.kind),
                root.kind == Value::kObject ? " without attributes" : "", ", expected a module object");
    const auto& attributes = items(items(root)[0]);
    std::map<std::string, c10::IValue> out;
    for (size_t k = 0; k < attributes.size(); k += 2) {
      const Value &key = attributes[k], &v = attributes[k + 1];
      TORCH_CHECK(key.kind == Value::kString, "the module object has an attribute named by a ", kind_name(key.kind));
      c10::IValue value;
      switch (v.kind) {
        case Value::kNone: continue;  // LibTorch 2.x writes a module's unset hooks as None
        case Value::kBool: value = v.i != 0; break;
        case Value::kInt: value = v.i; break;
        case Value::kFloat: value = v.f; break;
        case Value::kString: value = str(v); break;
        case Value::kTensor: value = tensors_[v.i]; break;
        default:
          TORCH_CHECK(false, "attribute '", str(key), "' is a ", kind_name(v.kind), ", expected a tensor, number or string");
      }
      TORCH_CHECK(out.emplace(str(key), std::move(value)).second, "attribute '", str(key), "' appears twice");
    }
    return out;
  }

  const char* p_;
  uint64_t size_, pos_ = 0, at_ = 0;
  const std::map<std::string, Record>& records_;
  const char* payload_;
  std::string prefix_;
  std::vector<Value> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value> memo_;
  std::vector<std::string> strings_;
  std::vector<std::vector<Value>> items_;
  std::vector<torch::Tensor> tensors_;
  std::map<std::string, int64_t> storages_;
};

}  // namespace

std::map<std::string, c10::IValue> read_archive(const char* data, size_t size) {
  std::string first;
  const auto records = read_zip(data, size, first);
  TORCH_CHECK(!records.empty(), "the zip archive is empty, expected data.pkl and tensor records");
  // LibTorch names every record <prefix>/...; the prefix is the first record's top folder.
  const std::string prefix = first.substr(0, first.find('/'));
  const auto pkl = records.find(prefix + "/data.pkl");
  TORCH_CHECK(pkl != records.end() && pkl->second.method == 0, "expected a stored record ", prefix, "/data.pkl, ",
              pkl == records.end() ? "there is none" : "it is compressed");
  if (const auto order = records.find(prefix + "/byteorder"); order != records.end())
    TORCH_CHECK(order->second.method == 0 && order->second.size == 6 &&
                    std::memcmp(data + order->second.offset, "little", 6) == 0,
                "the archive's tensors are not little-endian, as this reader expects");
  return Unpickler(data + pkl->second.offset, pkl->second.size, records, data, prefix).run();
}

}  // namespace symm::detail

#pragma once
// Internal: reads the payload of a symm checkpoint, a LibTorch archive as torch::serialize::OutputArchive
// writes it (a zip with <prefix>/data.pkl, a pickle of one module object, and one stored record per tensor
// storage, <prefix>/data/<key>), without LibTorch's importer. Not installed.
//
// Hostile bytes are the input: LibTorch's unpickler reserves what a length field claims and compiles the
// archive's TorchScript code. This reader walks the zip's central directory, checks every size and offset
// against the bytes present, runs only the pickle opcodes LibTorch's pickler emits, and builds each tensor as
// a view that must lie inside its storage record. Work and memory stay linear in the payload's size.
#include <cstddef>
#include <map>
#include <string>

#include <torch/torch.h>

namespace symm::detail {

/// The module object's attributes by name: tensors, integers, floats, booleans and strings. Throws
/// c10::Error naming what was expected where and what came.
std::map<std::string, c10::IValue> read_archive(const char* data, size_t size);

}  // namespace symm::detail

#pragma once
// Checkpoints that load anywhere. Equivariant weights are stored dense, in the original basis, where they
// do not depend on the numerically computed irrep bases; loading projects them back onto the module's
// coefficients and verifies the round trip. A fingerprint of the architecture and of every representation
// guards against loading into another group, width or depth.
//
// File layout: a 32-byte header ("symm-checkpoint\n", the payload's length and its FNV-1a 64-bit hash, both
// little-endian uint64) and a LibTorch archive as payload. The hash covers every payload byte, so a truncated
// file or any changed byte is refused before the archive is parsed. Loading reads the archive with symm's own
// reader, not LibTorch's importer: every length, index and tensor extent is checked against the bytes present,
// so a hostile file behind a valid header is refused in time and memory linear in its size.
#include <iosfwd>
#include <memory>
#include <string>

#include <torch/torch.h>

namespace symm {

/// Writes the module to path through a temporary file of this process and a rename, so the path holds
/// either its previous content or a complete checkpoint, also when several writers race.
void save(const std::shared_ptr<torch::nn::Module>& module, const std::string& path);
template <typename Impl>
void save(const torch::nn::ModuleHolder<Impl>& module, const std::string& path) { save(module.ptr(), path); }

/// Reads a checkpoint written by save into a module of the same architecture and representations. On a
/// mismatch, a damaged file or weights that are not equivariant for the module, throws c10::Error naming the
/// problem and leaves the module unchanged.
void load(const std::shared_ptr<torch::nn::Module>& module, const std::string& path);
template <typename Impl>
void load(const torch::nn::ModuleHolder<Impl>& module, const std::string& path) { load(module.ptr(), path); }
/// The same from the bytes of a checkpoint read from a stream (to its end).
void load(const std::shared_ptr<torch::nn::Module>& module, std::istream& in);
template <typename Impl>
void load(const torch::nn::ModuleHolder<Impl>& module, std::istream& in) { load(module.ptr(), in); }

/// One line per submodule and parameter: names, types, shapes and representation fingerprints.
std::string architecture(const torch::nn::Module& module);

}  // namespace symm

#pragma once
// The C allocator under tensor workloads. glibc's malloc serves every block above its mmap threshold with a
// fresh mmap and returns it on free, so each large temporary of a forward pass page-faults anew; a program
// that runs layers in a loop should keep those pages instead. No torch here: any program may call it.
#include <string>

namespace symm {

/// Settles the process's allocator for repeated tensor work and returns a one-line description of the
/// setting (as allocator_setting()). Under glibc's malloc: mmap threshold 32 MiB (glibc's maximum) and trim
/// threshold 128 MiB through mallopt, so freed blocks up to 32 MiB stay in the heap for the next pass.
/// Leaves the allocator alone when another one is loaded (jemalloc or tcmalloc, through LD_PRELOAD or
/// linking) or when GLIBC_TUNABLES sets glibc.malloc options: the user chose. Call it once, early in main,
/// before large tensors exist; calling it again does nothing more.
std::string configure_allocator();

/// One-line description of the allocator this process runs under, e.g.
/// "glibc mallopt mmap_threshold=33554432 trim_threshold=134217728", "glibc default", "jemalloc".
std::string allocator_setting();

}  // namespace symm

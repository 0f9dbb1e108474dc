#pragma once
// The malloc family of this test binary counts its calls (tests/nn/counting_malloc.cpp), so that a test can
// assert that a steady-state path allocates nothing.

namespace symm::test {

/// Whether allocations are counted: not under a sanitizer, whose own allocator must stay in place.
bool counts_allocations();
/// Calls of malloc, calloc, realloc and the aligned allocations so far, in every thread.
long allocations();

}  // namespace symm::test

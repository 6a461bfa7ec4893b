// CPU feature detection and the instruction-set variant in use.
#pragma once

namespace evometa {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };

// The best variant this CPU supports (and this binary carries).
Isa detectIsa();
// The variant in use: detectIsa() unless lowered by setIsa (for tests and benchmarks).
Isa activeIsa();
// Returns false when the CPU cannot run `isa`.
bool setIsa(Isa isa);
const char* isaName(Isa isa);
bool parseIsa(const char* name, Isa* out);
// Why the detected variant was chosen (CPU flags seen).
const char* isaReason();

// Process-wide glibc malloc tuning, applied once when the addon loads: large blocks (every
// op output is a typed array allocated by malloc) come from the reused heap instead of a
// fresh mmap + page faults + munmap per allocation. Off when EVOMETA_MALLOC_TUNE=0, and a
// no-op off glibc. Returns a description of what was done.
const char* tuneMalloc();

}  // namespace evometa

namespace evometa {
struct IsaOps;
// The kernel table of the active variant.
const IsaOps& currentIsaOps();
}  // namespace evometa

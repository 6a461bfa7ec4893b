// A test fixture: a shared library that records being loaded (a constructor
// writes the file named by EVOMETA_MARKER) and exports no GetPjrtApi. Used as
// a stand-in "libtpu.so" (to prove the binding refuses it before loading when
// there are no TPU chips) and as a "not a plugin" library.
#include <cstdio>
#include <cstdlib>

__attribute__((constructor)) static void evometa_marker() {
  if (const char* p = std::getenv("EVOMETA_MARKER")) {
    if (FILE* f = std::fopen(p, "w")) { std::fputs("loaded\n", f); std::fclose(f); }
  }
}

extern "C" int evometa_marker_present() { return 1; }

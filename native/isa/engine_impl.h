// The ISA-generic kernels, written once against a thin vector layer `Vec` (load, store,
// set1, bcast, fma, max; L lanes) and included by each isa_<name>.cc inside its own
// namespace, with `rowsFor(nv)` and `blockWidthFor(cp)` defined there.
//
// No C++ standard library here: every function is compiled with the ISA's flags, and a
// shared template instantiation (a COMDAT symbol) could otherwise leak AVX-512 code into
// the baseline path.

// ---- micro-kernel: a tile of R rows x (NV * L) columns, accumulators in registers ----

// ctile[r][v*L + l] (+)= sum_k A[r*lda + k] * B[k*(NV*L) + v*L + l]   (+= when `accumulate`)
template <int NV, int R>
static inline void microKernel(const float* a, long lda, int k, const float* b, float* ctile, bool accumulate = false) {
  constexpr int NB = NV * Vec::L;
  typename Vec::R acc[R][NV];
#pragma GCC unroll 32
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = accumulate ? Vec::load(ctile + r * NB + v * Vec::L) : Vec::zero();
  for (int kk = 0; kk < k; kk++) {
    typename Vec::R bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = Vec::load(b + (long)kk * NB + v * Vec::L);
#pragma GCC unroll 32
    for (int r = 0; r < R; r++) {
      const typename Vec::R av = Vec::bcast(a + r * lda + kk);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = Vec::fma(av, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) Vec::store(ctile + r * NB + v * Vec::L, acc[r][v]);
}

static inline int imin(int a, int b) { return a < b ? a : b; }

// ---- sgemm for the single-op kernels: C = A * B (+ C) ----

template <int NV>
static void sgemmT(int m, int n, int k, const float* a, long lda, const float* b, long ldb, float* c, long ldc,
                   bool accumulate) {
  constexpr int NB = NV * Vec::L;
  constexpr int R = rowsFor(NV);
  float* panel = static_cast<float*>(__builtin_malloc(sizeof(float) * ((long)k * NB + 1)));
  float* pad = static_cast<float*>(__builtin_malloc(sizeof(float) * ((long)R * k + 1)));
  if (panel == nullptr || pad == nullptr) {
    __builtin_free(pad);
    __builtin_free(panel);
    isaOutOfMemory();  // throws std::bad_alloc (defined outside the ISA-specific code)
  }
  alignas(64) float ctile[R * NB];
  for (int j0 = 0; j0 < n; j0 += NB) {
    const int cols = imin(NB, n - j0);
    for (int kk = 0; kk < k; kk++) {
      for (int j = 0; j < cols; j++) panel[(long)kk * NB + j] = b[kk * ldb + j0 + j];
      for (int j = cols; j < NB; j++) panel[(long)kk * NB + j] = 0.f;
    }
    for (int i0 = 0; i0 < m; i0 += R) {
      const int nrows = imin(R, m - i0);
      const float* ap = a + i0 * lda;
      long ld = lda;
      if (nrows < R) {  // copy the ragged last rows into a zero-padded block
        for (int r = 0; r < R; r++)
          for (int kk = 0; kk < k; kk++) pad[(long)r * k + kk] = r < nrows ? a[(i0 + r) * lda + kk] : 0.f;
        ap = pad;
        ld = k;
      }
      microKernel<NV, R>(ap, ld, k, panel, ctile);
      for (int r = 0; r < nrows; r++) {
        float* crow = c + (i0 + r) * ldc + j0;
        if (accumulate)
          for (int j = 0; j < cols; j++) crow[j] += ctile[r * NB + j];
        else
          for (int j = 0; j < cols; j++) crow[j] = ctile[r * NB + j];
      }
    }
  }
  __builtin_free(pad);
  __builtin_free(panel);
}

static void sgemm(int m, int n, int k, const float* a, long lda, const float* b, long ldb, float* c, long ldc,
                  bool accumulate) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate)
      for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) c[i * ldc + j] = 0.f;
    return;
  }
  sgemmT<2>(m, n, k, a, lda, b, ldb, c, ldc, accumulate);
}

static int blockWidth(int cp) { return blockWidthFor(cp); }
// convRaw works on groups of kTileGroup micro-tiles, K-blocked so that a slice of the weight
// panel (kc x nb floats, about 32 KB) stays in L1 while it serves every tile of the group.
constexpr int kTileGroup = 8;
static int tileRows(int cp) { return kTileGroup * rowsFor(blockWidthFor(cp) / Vec::L); }

// ---- population engine: block 0 fused conv + shift + ReLU + pool ----

static inline float* poolDstAt(const PoolDst& d, int n, int py, int px) {
  const long sp = d.side + 2 * d.pad;
  return d.base + ((n * sp + py + d.pad) * sp + px + d.pad) * (long)d.cp;
}

// NW consecutive pooling windows (4 pixels each) x G vectors of output channels from co:
// 4 * NW * G independent accumulators (16), enough to hide the FMA latency.
template <int G, int NW>
static inline void layer1Windows(const float* p0, int k1, const float* wpk, const float* shift, int cp, int co,
                                 float* const* out) {
  typename Vec::R acc[NW][4][G];
#pragma GCC unroll 4
  for (int w = 0; w < NW; w++)
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
      for (int g = 0; g < G; g++) acc[w][i][g] = Vec::zero();
  for (int kk = 0; kk < k1; kk++) {
    typename Vec::R bv[G];
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) bv[g] = Vec::load(wpk + (long)kk * cp + co + g * Vec::L);
#pragma GCC unroll 4
    for (int w = 0; w < NW; w++)
#pragma GCC unroll 4
      for (int i = 0; i < 4; i++) {
        const typename Vec::R av = Vec::bcast(p0 + (w * 4 + i) * k1 + kk);
#pragma GCC unroll 4
        for (int g = 0; g < G; g++) acc[w][i][g] = Vec::fma(av, bv[g], acc[w][i][g]);
      }
  }
  const typename Vec::R zero = Vec::zero();
#pragma GCC unroll 4
  for (int w = 0; w < NW; w++)
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
      typename Vec::R m = Vec::maxNan(Vec::maxNan(acc[w][0][g], acc[w][1][g]), Vec::maxNan(acc[w][2][g], acc[w][3][g]));
      // max commutes with the (monotone) shift and ReLU: pool first, then shift, then ReLU.
      // NaN propagates through both (ReLU(NaN) = NaN, a window holding NaN pools to NaN).
      m = Vec::maxNan(m + Vec::load(shift + co + g * Vec::L), zero);
      Vec::store(out[w] + co + g * Vec::L, m);
    }
}

template <int G, int NW>
static void layer1T(const Layer1Args& a) {
  const int side = a.dst.side;
  const long total = (long)a.nImg * a.winPerImg;
  long w0 = 0;
  float* out[NW];
  for (; w0 + NW <= total; w0 += NW) {
    for (int w = 0; w < NW; w++) {
      const long g = w0 + w;
      const int n = (int)(g / a.winPerImg), wi = (int)(g % a.winPerImg);
      out[w] = poolDstAt(a.dst, n, wi / side, wi % side);
    }
    const float* p0 = a.patches + w0 * 4 * a.k1;
    for (int co = 0; co < a.cp; co += G * Vec::L) layer1Windows<G, NW>(p0, a.k1, a.wpk, a.shift, a.cp, co, out);
  }
  for (; w0 < total; w0++) {
    const int n = (int)(w0 / a.winPerImg), wi = (int)(w0 % a.winPerImg);
    out[0] = poolDstAt(a.dst, n, wi / side, wi % side);
    const float* p0 = a.patches + w0 * 4 * a.k1;
    for (int co = 0; co < a.cp; co += Vec::L) layer1Windows<1, 1>(p0, a.k1, a.wpk, a.shift, a.cp, co, out);
  }
}

static void layer1(const Layer1Args& a) {
  // cp is a multiple of 16: split it into blocks of G vectors, G * NW = 4 (16 accumulators)
  const int vecs = a.cp / Vec::L;
  if (vecs % 4 == 0) layer1T<4, 1>(a);
  else if (vecs % 2 == 0) layer1T<2, 2>(a);
  else layer1T<1, 4>(a);
}

// ---- population engine: blocks 1.. raw conv with batch statistics ----

// x rounded to bf16 as VCVTNEPS2BF16 rounds (nearest even, denormals to a signed zero, NaN
// quieted): the emulated bf16 kernel (native/core/bf16.h has the reference, toBf16Bits).
static inline float bf16Round(float x) {
  unsigned u, r;
  __builtin_memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0) r = u & 0x80000000u;
  else if ((u & 0x7fffffffu) > 0x7f800000u) r = (u | 0x00400000u) & 0xffff0000u;
  else r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  __builtin_memcpy(&x, &r, 4);
  return x;
}

static void roundBf16(float* x, long n) {
  for (long i = 0; i < n; i++) x[i] = bf16Round(x[i]);
}

template <int NV>
static void convRawT(const ConvRawArgs& a) {
  constexpr int NB = NV * Vec::L;
  constexpr int R = rowsFor(NV);
  constexpr int TG = kTileGroup;
  constexpr int KC = 8192 / NB;  // kc * nb floats = 32 KB
  alignas(64) float cgroup[TG * R * NB];
  const int nblk = a.cp / NB;
  for (int g0 = 0; g0 < a.nPix; g0 += R * TG) {
    const int tiles = imin(TG, (a.nPix - g0 + R - 1) / R);
    // implicit im2col of the group: rows of k = 9 * cin (tap-major, channel-minor); rows past
    // the last pixel repeat the group's first pixel and are never stored
    for (int r = 0; r < tiles * R; r++) {
      const int gp = g0 + r < a.nPix ? g0 + r : g0;
      const float* src = a.act + (gp / a.perImg) * a.imgStride + a.pixOff[gp % a.perImg];
      float* dst = a.atile + (long)r * a.k;
      if (a.cin == Vec::L) {  // one vector per tap (C = 16 with AVX-512): straight-line copies
#pragma GCC unroll 9
        for (int t = 0; t < 9; t++) Vec::store(dst + t * Vec::L, Vec::load(src + a.tapOff[t]));
      } else {
        for (int t = 0; t < 9; t++) {
          const float* s = src + a.tapOff[t];
          float* d = dst + t * a.cin;
          for (int c = 0; c < a.cin; c += Vec::L) Vec::store(d + c, Vec::load(s + c));
        }
      }
      if (a.roundBf16)
        for (int kk = 0; kk < a.k; kk++) dst[kk] = bf16Round(dst[kk]);
    }
    for (int blk = 0; blk < nblk; blk++) {
      const float* panel = a.wpk + (long)blk * a.k * NB;
      for (int k0 = 0; k0 < a.k; k0 += KC) {
        const int kl = imin(KC, a.k - k0);
        for (int t = 0; t < tiles; t++)
          microKernel<NV, R>(a.atile + (long)t * R * a.k + k0, a.k, kl, panel + (long)k0 * NB, cgroup + t * R * NB, k0 > 0);
      }
      const int c0 = blk * NB;
      typename Vec::R s[NV], ss[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) s[v] = ss[v] = Vec::zero();
      const int rows = imin(tiles * R, a.nPix - g0);
      for (int r = 0; r < rows; r++) {
        float* out = a.raw + (long)(g0 + r) * a.cp + c0;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
          const typename Vec::R x = Vec::load(cgroup + r * NB + v * Vec::L);
          Vec::store(out + v * Vec::L, x);
          s[v] = s[v] + x;
          ss[v] = Vec::fma(x, x, ss[v]);
        }
      }
      alignas(64) float ts[NB], tss[NB];
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) {
        Vec::store(ts + v * Vec::L, s[v]);
        Vec::store(tss + v * Vec::L, ss[v]);
      }
      for (int j = 0; j < NB; j++) {
        a.sum[c0 + j] += ts[j];
        a.sumsq[c0 + j] += tss[j];
      }
    }
  }
}

static void convRaw(const ConvRawArgs& a) {
  switch (blockWidthFor(a.cp) / Vec::L) {
    case 4: convRawT<4>(a); break;
    case 2: convRawT<2>(a); break;
    default: convRawT<1>(a); break;
  }
}

static void bnReluPool(const BnPoolArgs& a) {
  const int ps = a.side / 2, win = ps * ps;
  const long perImg = (long)a.side * a.side;
  const typename Vec::R zero = Vec::zero();
  for (int n = 0; n < a.nImg; n++) {
    for (int w = 0; w < win; w++) {
      const float* x = a.raw + (n * perImg + 4L * w) * a.cp;
      float* out = poolDstAt(a.dst, n, w / ps, w % ps);
      for (int c = 0; c < a.cp; c += Vec::L) {
        const typename Vec::R sc = Vec::load(a.scale + c), sh = Vec::load(a.shift + c);
        typename Vec::R m = Vec::fma(Vec::load(x + c), sc, sh);
        m = Vec::maxNan(m, Vec::fma(Vec::load(x + a.cp + c), sc, sh));
        m = Vec::maxNan(m, Vec::fma(Vec::load(x + 2 * a.cp + c), sc, sh));
        m = Vec::maxNan(m, Vec::fma(Vec::load(x + 3 * a.cp + c), sc, sh));
        Vec::store(out + c, Vec::maxNan(m, zero));  // NaN-propagating pool and ReLU
      }
    }
  }
}

// ---- the FMA peak probe: independent accumulator chains (enough to cover latency x throughput,
// few enough to stay in registers: 16 with 32 vector registers, 12 with 16) ----

static float fmaLoop(long iters) {
  constexpr int kChains = Vec::L == 16 ? 16 : 12;
  typename Vec::R acc[16];
  const typename Vec::R a = Vec::set1(0.999999f), b = Vec::set1(1e-7f);
#pragma GCC unroll 16
  for (int i = 0; i < kChains; i++) acc[i] = Vec::set1((float)i);
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; i++) acc[i] = Vec::fma(acc[i], a, b);
  }
  typename Vec::R s = acc[0];
#pragma GCC unroll 16
  for (int i = 1; i < kChains; i++) s = Vec::max(s, acc[i]);
  alignas(64) float out[Vec::L];
  Vec::store(out, s);
  return out[0];
}

// The single-op kernels' weight gradient (see single_ops.h), written against the vector layer
// `Vec` and the micro-kernel of engine_impl.h like the rest of single_ops_impl.h, which includes
// this file where its other kernels' helpers are defined. No C++ standard library here.

// ---- weight gradient ----
// Two formulations, by the number of input channels:
//  - NHWC (cin a multiple of 16): acc[(tap, cb)][coutP][nbc] += dyc x im2row, with dyc = dy as
//    [coutP][Q] (Q = the chunk's pixels; zero rows past cout) broadcast as A, and each im2row row
//    (one pixel's window for one tap: nbc = blockWidth(cin) channels) read in place from the
//    zero-padded NHWC input through a table of pixel pointers, so nothing is copied per tap;
//  - planes (fewer channels, e.g. the 1-channel first layer): acc[cb][rowsP][nb] += col x dyt, with
//    col = im2col(x) [rowsP][Q] copied from zero-padded NCHW planes (rowsP = k*k*cin rounded up
//    to the tile height) and dyt = dy as [cout / nb][Q][nb] by register transposes.
// Both K-block over pixels so that a kc x nb slice of B stays in L1 while every row tile of A
// passes over it.
static bool weightNhwc(int cin) { return cin % 16 == 0; }

static long weightAccFloats(int cin, int k, int cout) {
  if (smallConv(cin, k, Vec::L)) return (long)cout * cin * k * k * Vec::L;  // lanes reduced by weightStore
  if (weightNhwc(cin)) return (long)k * k * cin * roundUp(cout, rowsFor(blockWidthFor(cin) / Vec::L));
  return (long)cout * roundUp(cin * k * k, convRowsFor(cout));
}

// Row stride of the small-tap weight gradient's padded planes: whole vectors of columns, plus the pads.
static int smallRowStride(int w, int pad) { return roundUp(w, Vec::L) + 2 * pad; }

static long weightScratchFloats(int nImg, int cin, int h, int w, int k, int pad, int cout) {
  const long q = (long)nImg * h * w;
  if (smallConv(cin, k, Vec::L)) return (long)nImg * cin * (h + 2 * pad) * smallRowStride(w, pad) + Vec::L;
  if (weightNhwc(cin)) {
    const int coP = roundUp(cout, rowsFor(blockWidthFor(cin) / Vec::L));
    return alignFloats(q * kPtrFloats) + alignFloats(sameXpadFloats(nImg, cin, h, w, pad)) +
           alignFloats((long)coP * q);
  }
  const int rowsP = roundUp(cin * k * k, convRowsFor(cout));
  return alignFloats((long)nImg * cin * (h + 2 * pad) * (w + 2 * pad) + Vec::L) + alignFloats(rowsP * q + Vec::L) +
         alignFloats(q * cout);
}

static void weightStore(int cin, int k, int cout, const float* acc, float* dw) {
  const int taps = k * k;
  if (smallConv(cin, k, Vec::L)) {
    for (long e = 0; e < (long)cout * cin * taps; e++) {
      float s = 0;
      for (int j = 0; j < Vec::L; j++) s += acc[e * Vec::L + j];
      dw[e] = s;
    }
    return;
  }
  if (weightNhwc(cin)) {
    const int nb = blockWidthFor(cin), coP = roundUp(cout, rowsFor(nb / Vec::L)), nbc = cin / nb;
    for (int co = 0; co < cout; co++)
      for (int ci = 0; ci < cin; ci++)
        for (int t = 0; t < taps; t++)
          dw[((long)co * cin + ci) * taps + t] = acc[(((long)t * nbc + ci / nb) * coP + co) * nb + ci % nb];
    return;
  }
  const int nb = blockWidthFor(cout), rows = cin * taps, rowsP = roundUp(rows, convRowsFor(cout));
  for (int co = 0; co < cout; co++)
    for (int r = 0; r < rows; r++) dw[(long)co * rows + r] = acc[((long)(co / nb) * rowsP + r) * nb + co % nb];
}

// Adds each row's sum (rows of n floats, `ld` apart; vector partial sums in a fixed order) to out.
static void rowSums(const float* x, long ld, int rows, long n, double* out) {
  for (int r = 0; r < rows; r++) {
    const float* p = x + r * ld;
    typename Vec::R s = Vec::zero();
    long i = 0;
    for (; i + Vec::L <= n; i += Vec::L) s = s + Vec::load(p + i);
    alignas(64) float t[Vec::L];
    Vec::store(t, s);
    double acc = 0;
    for (int j = 0; j < Vec::L; j++) acc += t[j];
    for (; i < n; i++) acc += p[i];
    out[r] += acc;
  }
}

// acc[r][v] += sum_kk a[r * lda + kk] * brow[kk][boff + v * L]: the micro-kernel with one pointer
// per row of B.
template <int NV, int R>
static inline void microKernelB(const float* a, long lda, int k, const float* const* brow, long boff, float* ctile) {
  constexpr int NB = NV * Vec::L;
  typename Vec::R acc[R][NV];
#pragma GCC unroll 32
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = Vec::load(ctile + r * NB + v * Vec::L);
  for (int kk = 0; kk < k; kk++) {
    const float* bp = brow[kk] + boff;
    typename Vec::R bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = Vec::load(bp + v * Vec::L);
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

template <int NV>
static void convWeightNhwcT(const ConvWeightArgs& a) {
  constexpr int NB = NV * Vec::L;
  constexpr int R = rowsFor(NV);
  constexpr int KC = 8192 / NB;
  const int kk = a.k, cin = a.cin, w = a.w, taps = kk * kk, nbc = cin / NB;
  const int wp = w + 2 * a.pad;
  const long plane = (long)a.h * w, Q = (long)a.nImg * plane, img = (long)(a.h + 2 * a.pad) * wp * cin;
  const int coP = roundUp(a.cout, R);
  const float** brow = reinterpret_cast<const float**>(a.scratch);
  float* xpad = a.scratch + alignFloats(Q * kPtrFloats);
  float* dyc = xpad + alignFloats(sameXpadFloats(a.nImg, cin, a.h, w, a.pad));
  padNhwc(a.x, a.nImg, cin, a.h, w, a.pad, xpad);
  for (long q = 0; q < Q; q++) {
    const long n = q / plane, p = q % plane;
    brow[q] = xpad + n * img + ((p / w) * wp + p % w) * cin;
  }
  for (int co = 0; co < a.cout; co++)
    for (int n = 0; n < a.nImg; n++) copyFloats(dyc + co * Q + n * plane, a.dy + ((long)n * a.cout + co) * plane, (int)plane);
  if (coP > a.cout) __builtin_memset(dyc + a.cout * Q, 0, sizeof(float) * (coP - a.cout) * Q);
  rowSums(dyc, Q, a.cout, Q, a.dbias);
  for (long k0 = 0; k0 < Q; k0 += KC) {
    const int kl = (int)lmin(KC, Q - k0);
    for (int t = 0; t < taps; t++) {
      const long toff = ((long)(t / kk) * wp + t % kk) * cin;
      for (int cb = 0; cb < nbc; cb++) {
        float* accb = a.acc + (long)(t * nbc + cb) * coP * NB;
        for (int m0 = 0; m0 < coP; m0 += R)
          microKernelB<NV, R>(dyc + m0 * Q + k0, Q, kl, brow + k0, toff + cb * NB, accb + m0 * NB);
      }
    }
  }
}

template <int NV>
static void convWeightPlanesT(const ConvWeightArgs& a) {
  constexpr int NB = NV * Vec::L;
  constexpr int R = rowsFor(NV);
  constexpr int KC = 8192 / NB;
  const int kk = a.k, pad = a.pad, cin = a.cin, h = a.h, w = a.w;
  const int wp = w + 2 * pad, hp = h + 2 * pad;
  const long plane = (long)h * w, Q = (long)a.nImg * plane, ppl = (long)hp * wp;
  const int rows = cin * kk * kk, rowsP = roundUp(rows, R);
  float* xpad = a.scratch;
  float* col = xpad + alignFloats((long)a.nImg * cin * ppl + Vec::L);
  float* dyt = col + alignFloats(rowsP * Q + Vec::L);
  padPlanes(a.x, a.nImg * cin, h, w, pad, xpad);
  // col rows in address order; each copy's overrun is covered by the next (slack after the last)
  for (int ci = 0; ci < cin; ci++)
    for (int ky = 0; ky < kk; ky++)
      for (int kx = 0; kx < kk; kx++) {
        float* c = col + (long)((ci * kk + ky) * kk + kx) * Q;
        for (int n = 0; n < a.nImg; n++) {
          const float* src = xpad + ((long)n * cin + ci) * ppl + (long)ky * wp + kx;
          float* dst = c + n * plane;
          for (int oy = 0; oy < h; oy++) copyOver(dst + (long)oy * w, src + (long)oy * wp, w);
        }
      }
  if (rowsP > rows) __builtin_memset(col + (long)rows * Q, 0, sizeof(float) * (rowsP - rows) * Q);
  for (int n = 0; n < a.nImg; n++) {
    const float* dn = a.dy + (long)n * a.cout * plane;
    rowSums(dn, plane, a.cout, plane, a.dbias);
    long p0 = 0;
    for (; p0 + Vec::L <= plane; p0 += Vec::L)
      for (int c = 0; c < a.cout; c += Vec::L) {
        float* dst[Vec::L];
        float* base = dyt + ((long)(c / NB) * Q + n * plane + p0) * NB + c % NB;
        for (int j = 0; j < Vec::L; j++) dst[j] = base + (long)j * NB;
        transposeL(dn + c * plane + p0, plane, dst);
      }
    for (long p = p0; p < plane; p++)
      for (int c = 0; c < a.cout; c++) dyt[((long)(c / NB) * Q + n * plane + p) * NB + c % NB] = dn[c * plane + p];
  }
  for (int blk = 0; blk < a.cout / NB; blk++) {
    const float* b = dyt + (long)blk * Q * NB;
    for (long k0 = 0; k0 < Q; k0 += KC) {
      const int kl = (int)lmin(KC, Q - k0);
      for (int m0 = 0; m0 < rowsP; m0 += R)
        microKernel<NV, R>(col + m0 * Q + k0, Q, kl, b + k0 * NB, a.acc + ((long)blk * rowsP + m0) * NB, true);
    }
  }
}

// Pixels in lanes (few taps): for each image and pair of output channels, acc[co][r] (vectors)
// += dy row block x the tap's shifted input row block, over planes padded with zero columns up to
// whole vectors (the last block of a dy row is a masked load: no lane reads past the row).
template <int KD>
static void convWeightSmallT(const ConvWeightArgs& a) {
  const int cin = a.cin, w = a.w, kk = a.k, taps = kk * kk, pad = a.pad;
  const int ws = smallRowStride(w, pad), hp = a.h + 2 * pad;
  const long plane = (long)a.h * w, ppl = (long)hp * ws;
  long off[KD];  // input offset of gradient row r = ci * taps + tap (the weight's order)
  for (int ci = 0; ci < cin; ci++)
    for (int t = 0; t < taps; t++) off[ci * taps + t] = ci * ppl + (long)(t / kk) * ws + t % kk;
  float* xp = a.scratch;
  __builtin_memset(xp, 0, sizeof(float) * ((long)a.nImg * cin * ppl + Vec::L));
  for (long pl = 0; pl < (long)a.nImg * cin; pl++)
    for (int y = 0; y < a.h; y++) copyFloats(xp + pl * ppl + (long)(y + pad) * ws + pad, a.x + pl * plane + (long)y * w, w);
  for (int n = 0; n < a.nImg; n++)
    for (int c0 = 0; c0 < a.cout; c0 += 2) {
      const float* d0 = a.dy + ((long)n * a.cout + c0) * plane;
      const float* d1 = d0 + plane;
      typename Vec::R acc0[KD], acc1[KD];
#pragma GCC unroll 16
      for (int r = 0; r < KD; r++) acc0[r] = acc1[r] = Vec::zero();
      typename Vec::R b0 = Vec::zero(), b1 = Vec::zero();
      for (int oy = 0; oy < a.h; oy++) {
        const float* src = xp + (long)n * cin * ppl + (long)oy * ws;
        for (int ox = 0; ox < w; ox += Vec::L) {
          const int m = w - ox < Vec::L ? w - ox : Vec::L;
          const typename Vec::R g0 = loadFirst(d0 + (long)oy * w + ox, m), g1 = loadFirst(d1 + (long)oy * w + ox, m);
          b0 = b0 + g0;
          b1 = b1 + g1;
#pragma GCC unroll 16
          for (int r = 0; r < KD; r++) {
            const typename Vec::R xv = Vec::load(src + ox + off[r]);
            acc0[r] = Vec::fma(g0, xv, acc0[r]);
            acc1[r] = Vec::fma(g1, xv, acc1[r]);
          }
        }
      }
#pragma GCC unroll 16
      for (int r = 0; r < KD; r++) {
        float* o0 = a.acc + ((long)c0 * KD + r) * Vec::L;
        float* o1 = o0 + (long)KD * Vec::L;
        Vec::store(o0, Vec::load(o0) + acc0[r]);
        Vec::store(o1, Vec::load(o1) + acc1[r]);
      }
      a.dbias[c0] += lanesSum(b0);
      a.dbias[c0 + 1] += lanesSum(b1);
    }
}

static void convWeight(const ConvWeightArgs& a) {
  if (smallConv(a.cin, a.k, Vec::L)) {
    switch (a.cin * a.k * a.k) {
      case 1: convWeightSmallT<1>(a); break;
      case 2: convWeightSmallT<2>(a); break;
      case 3: convWeightSmallT<3>(a); break;
      case 4: convWeightSmallT<4>(a); break;
      case 5: convWeightSmallT<5>(a); break;
      case 6: convWeightSmallT<6>(a); break;
      case 7: convWeightSmallT<7>(a); break;
      case 8: convWeightSmallT<8>(a); break;
      default: convWeightSmallT<9>(a); break;
    }
    return;
  }
  if (weightNhwc(a.cin)) {
    switch (blockWidthFor(a.cin) / Vec::L) {
      case 4: convWeightNhwcT<4>(a); break;
      case 2: convWeightNhwcT<2>(a); break;
      default: convWeightNhwcT<1>(a); break;
    }
    return;
  }
  switch (blockWidthFor(a.cout) / Vec::L) {
    case 4: convWeightPlanesT<4>(a); break;
    case 2: convWeightPlanesT<2>(a); break;
    default: convWeightPlanesT<1>(a); break;
  }
}

// Max and average pooling over NCHW planes, with their backward passes (PyTorch semantics).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include "kernels.h"

namespace pw {

namespace {
// Torch's rule for the running maximum: a larger value or a NaN takes over (so NaN propagates).
inline void take(float v, int32_t at, float& best, int32_t& arg) {
  if (v > best || std::isnan(v)) { best = v; arg = at; }
}
}  // namespace

void maxPool2d(const float* x, const Pool& p, float* out, int32_t* argmax) {
  const int64_t planes = p.n * p.c;
  const bool k2s2 = p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.ph == 0 && p.pw == 0;
  for (int64_t pl = 0; pl < planes; pl++) {
    const float* xp = x + pl * p.h * p.w;
    float* op = out + pl * p.oh * p.ow;
    int32_t* ap = argmax + pl * p.oh * p.ow;
    if (k2s2) {
      // The CNN's 2x2/2 pooling: the four candidates in row-major order, no bounds checks needed.
      for (int64_t oy = 0; oy < p.oh; oy++) {
        const float* r0 = xp + 2 * oy * p.w;
        const float* r1 = r0 + p.w;
        const int32_t base = static_cast<int32_t>(2 * oy * p.w);
        for (int64_t ox = 0; ox < p.ow; ox++) {
          const int32_t c0 = base + static_cast<int32_t>(2 * ox);
          float best = r0[2 * ox];
          int32_t arg = c0;
          take(r0[2 * ox + 1], c0 + 1, best, arg);
          take(r1[2 * ox], c0 + static_cast<int32_t>(p.w), best, arg);
          take(r1[2 * ox + 1], c0 + static_cast<int32_t>(p.w) + 1, best, arg);
          op[oy * p.ow + ox] = best;
          ap[oy * p.ow + ox] = arg;
        }
      }
      continue;
    }
    for (int64_t oy = 0; oy < p.oh; oy++) {
      const int64_t y0 = oy * p.sh - p.ph;
      const int64_t ya = std::max<int64_t>(y0, 0), yb = std::min(y0 + p.kh, p.h);
      for (int64_t ox = 0; ox < p.ow; ox++) {
        const int64_t x0 = ox * p.sw - p.pw;
        const int64_t xa = std::max<int64_t>(x0, 0), xb = std::min(x0 + p.kw, p.w);
        // Padding counts as -inf; a window always holds at least one real cell (padding <= kernel/2).
        float best = xp[ya * p.w + xa];
        int32_t arg = static_cast<int32_t>(ya * p.w + xa);
        for (int64_t yy = ya; yy < yb; yy++)
          for (int64_t xx = (yy == ya ? xa + 1 : xa); xx < xb; xx++)
            take(xp[yy * p.w + xx], static_cast<int32_t>(yy * p.w + xx), best, arg);
        op[oy * p.ow + ox] = best;
        ap[oy * p.ow + ox] = arg;
      }
    }
  }
}

void maxPool2dBackward(const float* dy, const int32_t* argmax, const Pool& p, float* dx, bool accumulate) {
  const int64_t planes = p.n * p.c, plane = p.h * p.w, oplane = p.oh * p.ow;
  if (!accumulate) std::memset(dx, 0, sizeof(float) * planes * plane);
  for (int64_t pl = 0; pl < planes; pl++) {
    float* dxp = dx + pl * plane;
    const float* dyp = dy + pl * oplane;
    const int32_t* ap = argmax + pl * oplane;
    for (int64_t i = 0; i < oplane; i++)
      if (ap[i] >= 0) dxp[ap[i]] += dyp[i];
  }
}

namespace {
// Window bounds as torch computes them with count_include_pad=true: the divisor counts padded
// cells inside the padded input but not beyond it.
struct Win { int64_t ya, yb, xa, xb, size; };
inline Win window(const Pool& p, int64_t oy, int64_t ox) {
  int64_t y0 = oy * p.sh - p.ph, x0 = ox * p.sw - p.pw;
  int64_t y1 = std::min(y0 + p.kh, p.h + p.ph), x1 = std::min(x0 + p.kw, p.w + p.pw);
  const int64_t size = (y1 - y0) * (x1 - x0);
  return {std::max<int64_t>(y0, 0), std::min(y1, p.h), std::max<int64_t>(x0, 0), std::min(x1, p.w), size};
}
}  // namespace

void avgPool2d(const float* x, const Pool& p, float* out) {
  const int64_t planes = p.n * p.c;
  for (int64_t pl = 0; pl < planes; pl++) {
    const float* xp = x + pl * p.h * p.w;
    float* op = out + pl * p.oh * p.ow;
    for (int64_t oy = 0; oy < p.oh; oy++)
      for (int64_t ox = 0; ox < p.ow; ox++) {
        const Win wn = window(p, oy, ox);
        float s = 0;
        for (int64_t yy = wn.ya; yy < wn.yb; yy++)
          for (int64_t xx = wn.xa; xx < wn.xb; xx++) s += xp[yy * p.w + xx];
        op[oy * p.ow + ox] = s / static_cast<float>(wn.size);
      }
  }
}

void avgPool2dBackward(const float* dy, const Pool& p, float* dx, bool accumulate) {
  const int64_t planes = p.n * p.c, plane = p.h * p.w;
  if (!accumulate) std::memset(dx, 0, sizeof(float) * planes * plane);
  for (int64_t pl = 0; pl < planes; pl++) {
    float* dxp = dx + pl * plane;
    const float* dyp = dy + pl * p.oh * p.ow;
    for (int64_t oy = 0; oy < p.oh; oy++)
      for (int64_t ox = 0; ox < p.ow; ox++) {
        const Win wn = window(p, oy, ox);
        const float g = dyp[oy * p.ow + ox] / static_cast<float>(wn.size);
        for (int64_t yy = wn.ya; yy < wn.yb; yy++)
          for (int64_t xx = wn.xa; xx < wn.xb; xx++) dxp[yy * p.w + xx] += g;
      }
  }
}

void gather(const float* table, const int32_t* ids, int64_t count, int64_t dim, float* out) {
  for (int64_t i = 0; i < count; i++) std::memcpy(out + i * dim, table + static_cast<int64_t>(ids[i]) * dim, sizeof(float) * dim);
}

void scatterAdd(const float* dy, const int32_t* ids, int64_t count, int64_t dim, float* dtable) {
  for (int64_t i = 0; i < count; i++) {
    float* row = dtable + static_cast<int64_t>(ids[i]) * dim;
    const float* src = dy + i * dim;
    for (int64_t j = 0; j < dim; j++) row[j] += src[j];
  }
}

}  // namespace pw

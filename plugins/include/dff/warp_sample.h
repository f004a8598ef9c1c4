// Per-pixel sampling math of the feature warp W (Deep Feature Flow, Eq. 1-3), shared by the CUDA kernel and the
// host test. Conventions are those of dff/ops/warp.py: flow channel 0 is the horizontal displacement, channel 1
// the vertical one, both in feature-map pixels; pixel coordinates are cell indices (align_corners=True); samples
// outside the map contribute zero.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define DFF_HOST_DEVICE __host__ __device__
#else
#define DFF_HOST_DEVICE
#endif

namespace dff
{

// Sample position along one axis of a map `size` cells long, for output location p displaced by `delta`.
// dff.ops.warp builds a grid_sample grid g = (p + delta) * 2 / max(size - 1, 1) - 1 and grid_sample maps it back
// through (g + 1) / 2 * (size - 1): that is p + delta, except on a one-cell axis, where every finite sample lands on
// 0 (and a non-finite one stays NaN, reading nothing, as in grid_sample).
DFF_HOST_DEVICE inline float sampleCoordinate(int64_t p, float delta, int64_t size)
{
    return size > 1 ? static_cast<float>(p) + delta : 0.0F * delta;
}

// The (at most) four locations q with a non-zero bilinear kernel G(q, s) = g(q_x, s_x) g(q_y, s_y),
// g(a, b) = max(0, 1 - |a - b|) (Eq. 2), ordered (y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1).
struct BilinearTaps
{
    static constexpr int kCount = 4;
    int32_t offset[kCount]; // y * width + x inside one channel plane; -1 where the location is outside the map
    float weight[kCount];   // G(q, s); 0 where the location is outside the map
};

DFF_HOST_DEVICE inline BilinearTaps bilinearTaps(float sx, float sy, int32_t height, int32_t width)
{
    BilinearTaps taps{{-1, -1, -1, -1}, {0.0F, 0.0F, 0.0F, 0.0F}};
    // A sample one cell or more outside the map touches no location. The test also rejects NaN and keeps the
    // float-to-int conversions below in range for any flow value.
    if (!(sx > -1.0F && sx < static_cast<float>(width) && sy > -1.0F && sy < static_cast<float>(height)))
    {
        return taps;
    }
    float const x0f = floorf(sx);
    float const y0f = floorf(sy);
    int32_t const x0 = static_cast<int32_t>(x0f);
    int32_t const y0 = static_cast<int32_t>(y0f);
    float const fx = sx - x0f;
    float const fy = sy - y0f;
    float const wx[2] = {1.0F - fx, fx};
    float const wy[2] = {1.0F - fy, fy};
    for (int32_t dy = 0; dy < 2; ++dy)
    {
        for (int32_t dx = 0; dx < 2; ++dx)
        {
            int32_t const x = x0 + dx;
            int32_t const y = y0 + dy;
            if (x >= 0 && x < width && y >= 0 && y < height)
            {
                taps.offset[2 * dy + dx] = y * width + x;
                taps.weight[2 * dy + dx] = wy[dy] * wx[dx];
            }
        }
    }
    return taps;
}

} // namespace dff

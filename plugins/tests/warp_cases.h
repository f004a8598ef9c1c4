// Random warp cases and the reference of the host tests: a direct sum over every location q of Eq. (1), with the
// sample position derived the way dff.ops.warp derives it (a normalised grid_sample grid, align_corners=True).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <vector>

namespace dff_test
{

struct Case
{
    int batch;
    int channels;
    int featHeight;
    int featWidth;
    int flowHeight;
    int flowWidth;
    std::vector<float> feat;  // batch x channels x featHeight x featWidth
    std::vector<float> flow;  // batch x 2 x flowHeight x flowWidth
    std::vector<float> scale; // batch x channels x flowHeight x flowWidth
};

// g(a, b) = max(0, 1 - |a - b|) (Eq. 2), written so that a NaN position weighs 0.
inline double hat(double a, double b)
{
    double const d = std::fabs(a - b);
    return d < 1.0 ? 1.0 - d : 0.0;
}

// The position grid_sample reads: normalise p + delta to [-1, 1] over max(size - 1, 1), then map back over size - 1.
inline double gridSamplePosition(int p, double delta, int size)
{
    double const g = (p + delta) * 2.0 / std::max(size - 1, 1) - 1.0;
    return (g + 1.0) / 2.0 * (size - 1);
}

inline double referenceOutput(Case const& k, int n, int c, int y, int x)
{
    size_t const flowAt = (static_cast<size_t>(n) * 2 * k.flowHeight + y) * k.flowWidth + x;
    size_t const flowPlane = static_cast<size_t>(k.flowHeight) * k.flowWidth;
    double const sx = gridSamplePosition(x, k.flow[flowAt], k.featWidth);
    double const sy = gridSamplePosition(y, k.flow[flowAt + flowPlane], k.featHeight);
    double sum = 0.0;
    for (int qy = 0; qy < k.featHeight; ++qy)
    {
        for (int qx = 0; qx < k.featWidth; ++qx)
        {
            size_t const at = ((static_cast<size_t>(n) * k.channels + c) * k.featHeight + qy) * k.featWidth + qx;
            sum += hat(qx, sx) * hat(qy, sy) * k.feat[at];
        }
    }
    size_t const outAt = ((static_cast<size_t>(n) * k.channels + c) * k.flowHeight + y) * k.flowWidth + x;
    return sum * k.scale[outAt];
}

// A displacement that lands inside, outside, on the border, on an integer or far away, or is not a number.
inline float drawDisplacement(std::mt19937& rng, int p, int size)
{
    std::uniform_int_distribution<int> kind(0, 11);
    std::uniform_real_distribution<float> unit(0.0F, 1.0F);
    std::uniform_int_distribution<int> cell(-2, size + 1);
    switch (kind(rng))
    {
    case 0: return static_cast<float>(cell(rng) - p);                  // integer position, possibly outside
    case 1: return static_cast<float>(-1 - p);                          // exactly one cell before the map
    case 2: return static_cast<float>(size - 1 - p) + 0.5F * unit(rng); // between the last cell and the border
    case 3: return static_cast<float>(size - p);                        // exactly one cell past the last cell
    case 4: return (unit(rng) < 0.5F ? -1.0F : 1.0F) * 1.0e30F;        // far outside
    case 5: return unit(rng) < 0.5F ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
    case 6:
    case 7:
    case 8: return (unit(rng) * (size + 6.0F) - 3.0F) - static_cast<float>(p); // anywhere around the map
    default: return unit(rng) * static_cast<float>(size - 1) - static_cast<float>(p); // inside the map
    }
}

// A random case: batch 1..3, channels 1..maxChannels, every extent 1..maxExtent.
inline Case drawCase(std::mt19937& rng, int maxChannels = 3, int maxExtent = 7)
{
    std::uniform_int_distribution<int> small(1, 3);
    std::uniform_int_distribution<int> channels(1, maxChannels);
    std::uniform_int_distribution<int> extent(1, maxExtent);
    std::uniform_real_distribution<float> value(-1.0F, 1.0F);
    Case k{small(rng), channels(rng), extent(rng), extent(rng), extent(rng), extent(rng), {}, {}, {}};
    k.feat.resize(static_cast<size_t>(k.batch) * k.channels * k.featHeight * k.featWidth);
    for (float& v : k.feat)
    {
        v = value(rng);
    }
    k.flow.resize(static_cast<size_t>(k.batch) * 2 * k.flowHeight * k.flowWidth);
    for (int n = 0; n < k.batch; ++n)
    {
        for (int y = 0; y < k.flowHeight; ++y)
        {
            for (int x = 0; x < k.flowWidth; ++x)
            {
                size_t const at = (static_cast<size_t>(n) * 2 * k.flowHeight + y) * k.flowWidth + x;
                k.flow[at] = drawDisplacement(rng, x, k.featWidth);
                k.flow[at + static_cast<size_t>(k.flowHeight) * k.flowWidth] = drawDisplacement(rng, y, k.featHeight);
            }
        }
    }
    k.scale.resize(static_cast<size_t>(k.batch) * k.channels * k.flowHeight * k.flowWidth);
    for (float& v : k.scale)
    {
        v = value(rng);
    }
    return k;
}

} // namespace dff_test

// Host test of the kernel's per-pixel sampling math (dff/warp_sample.h): on random cases, including samples
// outside the map, on its border, at integer positions, one-cell maps and non-finite flow, the warp built from
// bilinearTaps must equal a direct sum over every location q of Eq. (1), with the sample position derived the way
// dff.ops.warp derives it (a normalised grid_sample grid, align_corners=True).
#include "dff/warp_sample.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

namespace
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
double hat(double a, double b)
{
    double const d = std::fabs(a - b);
    return d < 1.0 ? 1.0 - d : 0.0;
}

// The position grid_sample reads: normalise p + delta to [-1, 1] over max(size - 1, 1), then map back over size - 1.
double gridSamplePosition(int p, double delta, int size)
{
    double const g = (p + delta) * 2.0 / std::max(size - 1, 1) - 1.0;
    return (g + 1.0) / 2.0 * (size - 1);
}

double referenceOutput(Case const& k, int n, int c, int y, int x)
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

// What one kernel thread computes for one output element, in the kernel's order of operations.
float tapsOutput(Case const& k, int n, int c, int y, int x)
{
    size_t const flowAt = (static_cast<size_t>(n) * 2 * k.flowHeight + y) * k.flowWidth + x;
    float const dx = k.flow[flowAt];
    float const dy = k.flow[flowAt + static_cast<size_t>(k.flowHeight) * k.flowWidth];
    dff::BilinearTaps const taps = dff::bilinearTaps(dff::sampleCoordinate(x, dx, k.featWidth),
        dff::sampleCoordinate(y, dy, k.featHeight), k.featHeight, k.featWidth);
    float const* plane = k.feat.data() + (static_cast<size_t>(n) * k.channels + c) * k.featHeight * k.featWidth;
    float acc = 0.0F;
    for (int t = 0; t < dff::BilinearTaps::kCount; ++t)
    {
        if (taps.offset[t] >= 0)
        {
            acc = std::fmaf(taps.weight[t], plane[taps.offset[t]], acc);
        }
    }
    size_t const outAt = ((static_cast<size_t>(n) * k.channels + c) * k.flowHeight + y) * k.flowWidth + x;
    return acc * k.scale[outAt];
}

// A displacement that lands inside, outside, on the border, on an integer or far away, or is not a number.
float drawDisplacement(std::mt19937& rng, int p, int size)
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

Case drawCase(std::mt19937& rng)
{
    std::uniform_int_distribution<int> small(1, 3);
    std::uniform_int_distribution<int> extent(1, 7);
    std::uniform_real_distribution<float> value(-1.0F, 1.0F);
    Case k{small(rng), small(rng), extent(rng), extent(rng), extent(rng), extent(rng), {}, {}, {}};
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

} // namespace

int main()
{
    constexpr int kCases = 2000;
    constexpr double kTolerance = 1.0e-5;
    std::mt19937 rng(20170721);
    long compared = 0;
    long zeros = 0;
    int failures = 0;
    for (int i = 0; i < kCases; ++i)
    {
        Case const k = drawCase(rng);
        for (int n = 0; n < k.batch; ++n)
        {
            for (int c = 0; c < k.channels; ++c)
            {
                for (int y = 0; y < k.flowHeight; ++y)
                {
                    for (int x = 0; x < k.flowWidth; ++x)
                    {
                        double const expected = referenceOutput(k, n, c, y, x);
                        float const actual = tapsOutput(k, n, c, y, x);
                        zeros += expected == 0.0 ? 1 : 0;
                        ++compared;
                        if (!(std::fabs(actual - expected) <= kTolerance) && failures++ < 10)
                        {
                            size_t const flowAt = (static_cast<size_t>(n) * 2 * k.flowHeight + y) * k.flowWidth + x;
                            std::printf("case %d: feat %dx%dx%dx%d flow %dx%d at (n=%d, c=%d, y=%d, x=%d) flow "
                                        "(%g, %g): expected %.9g, got %.9g\n",
                                i, k.batch, k.channels, k.featHeight, k.featWidth, k.flowHeight, k.flowWidth, n, c,
                                y, x, k.flow[flowAt],
                                k.flow[flowAt + static_cast<size_t>(k.flowHeight) * k.flowWidth], expected, actual);
                        }
                    }
                }
            }
        }
    }
    std::printf("bilinearTaps vs Eq. (1): %ld outputs in %d random cases (%ld of them zero), %d "
                "mismatches beyond %g\n",
        compared, kCases, zeros, failures, kTolerance);
    return failures == 0 ? 0 : 1;
}

// Host test of the kernel's per-pixel sampling math (dff/warp_sample.h): on random cases, including samples
// outside the map, on its border, at integer positions, one-cell maps and non-finite flow, the warp built from
// bilinearTaps must equal a direct sum over every location q of Eq. (1), with the sample position derived the way
// dff.ops.warp derives it (a normalised grid_sample grid, align_corners=True).
#include "dff/warp_sample.h"
#include "warp_cases.h"

#include <cmath>
#include <cstdio>
#include <random>

namespace
{

using dff_test::Case;

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
        Case const k = dff_test::drawCase(rng);
        for (int n = 0; n < k.batch; ++n)
        {
            for (int c = 0; c < k.channels; ++c)
            {
                for (int y = 0; y < k.flowHeight; ++y)
                {
                    for (int x = 0; x < k.flowWidth; ++x)
                    {
                        double const expected = dff_test::referenceOutput(k, n, c, y, x);
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

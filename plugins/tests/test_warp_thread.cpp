// Host test of the kernel's threads (dff/warp_thread.h): the launch plan of launchWarp and every thread of its grid,
// run one after another on the CPU, float32 and float16, on random cases (odd and even planes, channel counts that are
// not multiples of the 16-channel chunk, pair-aligned and misaligned pointers, samples outside the map, non-finite
// flow), must write every output element once with the value of a direct sum over Eq. (1). Paired loads and stores
// assert their alignment here, and the sanitizers (where the compiler has them) catch any access out of bounds.
#include "dff/warp_thread.h"
#include "warp_cases.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

namespace
{

using dff_test::Case;

float roundTo(float v, float)
{
    return v;
}

float roundTo(float v, __half)
{
    return __half2float(__float2half_rn(v));
}

template <typename T>
T fromFloat(float v)
{
    if constexpr (sizeof(T) == sizeof(float))
    {
        return v;
    }
    else
    {
        return __float2half_rn(v);
    }
}

// The case's values as type T holds them, so the reference sees exactly what the kernel reads.
template <typename T>
Case rounded(Case k)
{
    for (std::vector<float>* values : {&k.feat, &k.flow, &k.scale})
    {
        for (float& v : *values)
        {
            v = roundTo(v, T{});
        }
    }
    return k;
}

// A copy of `values` as T, starting `offset` elements into a fresh buffer (offset 1 breaks pair alignment).
template <typename T>
struct Buffer
{
    Buffer(std::vector<float> const& values, size_t offset) : storage(values.size() + offset), offset(offset)
    {
        for (size_t i = 0; i < values.size(); ++i)
        {
            storage[offset + i] = fromFloat<T>(values[i]);
        }
    }
    T* data()
    {
        return storage.data() + offset;
    }
    std::vector<T> storage;
    size_t offset;
};

struct Counts
{
    long cases = 0;
    long pairCases = 0;
    long singleCases = 0;
    long oddPlanes = 0;
    long partialChunks = 0;
    long misaligned = 0;
    long outputs = 0;
    int failures = 0;
};

template <typename T, int kPixels>
void runGrid(dff::WarpLaunch const& launch, dff::WarpShape const& shape, T const* feat, T const* flow, T const* scale,
    T* out)
{
    for (int64_t n = 0; n < launch.batch; ++n)
    {
        for (int64_t chunk = 0; chunk < launch.channelChunks; ++chunk)
        {
            for (int64_t thread = 0; thread < launch.blocks * dff::kThreadsPerBlock; ++thread)
            {
                dff::warpThread<T, kPixels>(shape, feat, flow, scale, out, thread, chunk, n);
            }
        }
    }
}

template <typename T>
void checkCase(Case const& drawn, int index, bool misalign, double absTolerance, double relTolerance, Counts& counts)
{
    Case const k = rounded<T>(drawn);
    dff::WarpShape const shape{k.batch, k.channels, k.featHeight, k.featWidth, k.flowHeight, k.flowWidth};
    size_t const outSize = static_cast<size_t>(k.batch) * k.channels * k.flowHeight * k.flowWidth;
    Buffer<T> feat(k.feat, 0);
    Buffer<T> flow(k.flow, 0);
    Buffer<T> scale(k.scale, misalign ? 1 : 0);
    Buffer<T> out(std::vector<float>(outSize, std::numeric_limits<float>::quiet_NaN()), 0);

    dff::WarpLaunch const launch = dff::planWarp(shape, flow.data(), scale.data(), out.data(), sizeof(T));
    bool const evenPlane = (k.flowHeight * k.flowWidth) % 2 == 0;
    int const expectedPixels = evenPlane && !misalign ? 2 : 1;
    if (!launch.valid || launch.empty || launch.pixelsPerThread != expectedPixels)
    {
        std::printf("case %d (%s): plan valid=%d empty=%d with %d pixels per thread, expected %d\n", index,
            sizeof(T) == 4 ? "float32" : "float16", launch.valid, launch.empty, launch.pixelsPerThread, expectedPixels);
        ++counts.failures;
        return;
    }
    if (launch.pixelsPerThread == 2)
    {
        runGrid<T, 2>(launch, shape, feat.data(), flow.data(), scale.data(), out.data());
    }
    else
    {
        runGrid<T, 1>(launch, shape, feat.data(), flow.data(), scale.data(), out.data());
    }
    ++counts.cases;
    counts.pairCases += launch.pixelsPerThread == 2;
    counts.singleCases += launch.pixelsPerThread == 1;
    counts.oddPlanes += !evenPlane;
    counts.partialChunks += k.channels > dff::kChannelsPerThread && k.channels % dff::kChannelsPerThread != 0;
    counts.misaligned += misalign;

    for (int n = 0; n < k.batch; ++n)
    {
        for (int c = 0; c < k.channels; ++c)
        {
            for (int y = 0; y < k.flowHeight; ++y)
            {
                for (int x = 0; x < k.flowWidth; ++x)
                {
                    size_t const at = ((static_cast<size_t>(n) * k.channels + c) * k.flowHeight + y) * k.flowWidth + x;
                    double const expected = dff_test::referenceOutput(k, n, c, y, x);
                    float const actual = dff::toFloat(out.data()[at]);
                    ++counts.outputs;
                    // NaN: the element was never written (the sentinel), or written with garbage.
                    if (!(std::fabs(actual - expected) <= absTolerance + relTolerance * std::fabs(expected))
                        && counts.failures++ < 10)
                    {
                        std::printf("case %d (%s, %d pixel(s) per thread): feat %dx%dx%dx%d flow %dx%d at (n=%d, c=%d, "
                                    "y=%d, x=%d): expected %.9g, got %.9g\n",
                            index, sizeof(T) == 4 ? "float32" : "float16", launch.pixelsPerThread, k.batch, k.channels,
                            k.featHeight, k.featWidth, k.flowHeight, k.flowWidth, n, c, y, x, expected, actual);
                    }
                }
            }
        }
    }
}

bool covered(char const* dtype, Counts const& counts)
{
    std::printf("%s: %ld cases (%ld with pixel pairs, %ld one pixel per thread; %ld odd planes, %ld partial channel "
                "chunks, %ld misaligned scale), %ld outputs, %d mismatches\n",
        dtype, counts.cases, counts.pairCases, counts.singleCases, counts.oddPlanes, counts.partialChunks,
        counts.misaligned, counts.outputs, counts.failures);
    // Each path the test claims to cover must have been taken.
    bool const ok = counts.pairCases >= 50 && counts.singleCases >= 50 && counts.oddPlanes >= 50
        && counts.partialChunks >= 50 && counts.misaligned >= 50;
    if (!ok)
    {
        std::printf("%s: a path was taken fewer than 50 times\n", dtype);
    }
    return ok && counts.failures == 0;
}

} // namespace

int main()
{
    constexpr int kCases = 400;
    std::mt19937 rng(20170722);
    Counts float32;
    Counts float16;
    for (int i = 0; i < kCases; ++i)
    {
        Case const k = dff_test::drawCase(rng, 40, 9);
        bool const misalign = i % 4 == 3;
        checkCase<float>(k, i, misalign, 1.0e-5, 0.0, float32);
        // float16 output is rounded once: half an ulp is 2^-11 of the value.
        checkCase<__half>(k, i, misalign, 1.0e-4, 1.0e-3, float16);
    }
    bool const ok = covered("float32", float32) & covered("float16", float16);
    return ok ? 0 : 1;
}

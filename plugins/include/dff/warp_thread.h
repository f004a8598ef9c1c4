// One thread of the fused warp kernel and the launch plan that maps threads to pixels, both callable on the host:
// the kernel (src/warp_kernel.cu) runs them on the GPU, and the host test (tests/test_warp_thread.cpp) runs the very
// same code over every thread of the grid on the CPU, so the mapping, the pixel pairing and the paired loads are
// checked against Eq. (1) without a GPU.
#pragma once

#include "dff/warp_kernel.h"
#include "dff/warp_sample.h"

#include <cassert>
#include <climits>
#include <cstdint>
#include <cuda_fp16.h>
#include <vector_functions.h>
#include <vector_types.h>

namespace dff
{

// A thread owns one pixel (or two horizontally adjacent ones, see WarpLaunch::pixelsPerThread) of one image and a
// chunk of kChannelsPerThread channels. The flow is read and the four taps are computed once per pixel and reused for
// every channel of the chunk, so flow traffic is 1/16 of the output's at most (and it stays in L2). Chunking the
// channels instead of walking all of them keeps enough threads in flight to hide memory latency on small maps: one
// thread per pixel over all 1024 channels of a 64x128 Cityscapes map would be 256 warps for a whole GPU.
constexpr int kThreadsPerBlock = 256;
constexpr int kChannelsPerThread = 16;
constexpr int64_t kMaxGridYZ = 65535;

// The grid of one launch: x covers the pixels (or pixel pairs) of a plane, y the channel chunks, z the images.
struct WarpLaunch
{
    bool valid;  // false: extents the kernel cannot index (launchWarp returns cudaErrorInvalidValue)
    bool empty;  // nothing to compute
    int pixelsPerThread;
    int64_t threadsPerImage;
    int64_t blocks;
    int64_t channelChunks;
    int64_t batch;
};

inline bool alignedForPairs(void const* p, size_t elementSize)
{
    return reinterpret_cast<uintptr_t>(p) % (2 * elementSize) == 0;
}

// Pixel pairs (float2 / half2 loads of flow and scale, paired stores of the output) need an even number of cells per
// plane, so that a pair never straddles two planes, and pair-aligned pointers.
inline WarpLaunch planWarp(
    WarpShape const& shape, void const* flow, void const* scale, void const* out, size_t elementSize)
{
    WarpLaunch launch{false, false, 1, 0, 0, 0, shape.batch};
    if (shape.batch < 0 || shape.channels < 0 || shape.featHeight < 0 || shape.featWidth < 0 || shape.flowHeight < 0
        || shape.flowWidth < 0)
    {
        return launch;
    }
    launch.channelChunks = (shape.channels + kChannelsPerThread - 1) / kChannelsPerThread;
    // Offsets inside one plane are 32-bit; the batch and the channel chunks are grid dimensions y and z.
    if (shape.featHeight > INT32_MAX || shape.featWidth > INT32_MAX || shape.flowHeight > INT32_MAX
        || shape.flowWidth > INT32_MAX || shape.featHeight * shape.featWidth > INT32_MAX
        || shape.flowHeight * shape.flowWidth > INT32_MAX || shape.batch > kMaxGridYZ
        || launch.channelChunks > kMaxGridYZ)
    {
        return launch;
    }
    launch.valid = true;
    int64_t const flowPlane = shape.flowHeight * shape.flowWidth;
    launch.empty = shape.batch == 0 || shape.channels == 0 || flowPlane == 0;
    bool const pairs = flowPlane % 2 == 0 && alignedForPairs(flow, elementSize) && alignedForPairs(out, elementSize)
        && (scale == nullptr || alignedForPairs(scale, elementSize));
    launch.pixelsPerThread = pairs ? 2 : 1;
    launch.threadsPerImage = flowPlane / launch.pixelsPerThread;
    launch.blocks = (launch.threadsPerImage + kThreadsPerBlock - 1) / kThreadsPerBlock;
    return launch;
}

DFF_HOST_DEVICE inline float toFloat(float v)
{
    return v;
}

DFF_HOST_DEVICE inline float toFloat(__half v)
{
    return __half2float(v);
}

// Read-only loads go through the texture path on the GPU.
template <typename T>
DFF_HOST_DEVICE inline T loadOne(T const* p)
{
#if defined(__CUDA_ARCH__)
    return __ldg(p);
#else
    return *p;
#endif
}

// Two adjacent elements in one 8-byte (float2) or 4-byte (half2) transaction; planWarp checks the alignment, and the
// host build asserts it (the host test compiles with assertions on).
template <typename Pair, typename T>
DFF_HOST_DEVICE inline Pair const* pairAt(T const* p)
{
#if !defined(__CUDA_ARCH__)
    assert(reinterpret_cast<uintptr_t>(p) % sizeof(Pair) == 0 && "paired access misaligned");
#endif
    return reinterpret_cast<Pair const*>(p);
}

DFF_HOST_DEVICE inline float2 loadPair(float const* p)
{
    return loadOne(pairAt<float2>(p));
}

DFF_HOST_DEVICE inline float2 loadPair(__half const* p)
{
    return __half22float2(loadOne(pairAt<__half2>(p)));
}

DFF_HOST_DEVICE inline void storeOne(float* p, float v)
{
    *p = v;
}

DFF_HOST_DEVICE inline void storeOne(__half* p, float v)
{
    *p = __float2half_rn(v);
}

DFF_HOST_DEVICE inline void storePair(float* p, float2 v)
{
    *const_cast<float2*>(pairAt<float2>(p)) = v;
}

DFF_HOST_DEVICE inline void storePair(__half* p, float2 v)
{
    *const_cast<__half2*>(pairAt<__half2>(p)) = __floats2half2_rn(v.x, v.y);
}

// Eq. (1) for one channel plane: the sum over the taps' locations of G(q, p + dp) f_k(q), accumulated in float.
template <typename T>
DFF_HOST_DEVICE inline float gather(T const* __restrict__ plane, BilinearTaps const& taps)
{
    float acc = 0.0F;
#pragma unroll
    for (int k = 0; k < BilinearTaps::kCount; ++k)
    {
        if (taps.offset[k] >= 0)
        {
            acc = fmaf(taps.weight[k], toFloat(loadOne(plane + taps.offset[k])), acc);
        }
    }
    return acc;
}

// Thread `thread` (grid x) of channel chunk `chunk` (grid y) of image `n` (grid z). kPixels = 2 handles two adjacent
// flow cells with paired loads of the flow and the scale and paired stores of the output. Feature reads are gathers
// at data-dependent locations and stay scalar.
template <typename T, int kPixels>
DFF_HOST_DEVICE inline void warpThread(WarpShape const& shape, T const* __restrict__ feat, T const* __restrict__ flow,
    T const* __restrict__ scale, T* __restrict__ out, int64_t thread, int64_t chunk, int64_t n)
{
    int32_t const featHeight = static_cast<int32_t>(shape.featHeight);
    int32_t const featWidth = static_cast<int32_t>(shape.featWidth);
    int32_t const flowWidth = static_cast<int32_t>(shape.flowWidth);
    int64_t const featPlane = shape.featHeight * shape.featWidth;
    int64_t const flowPlane = shape.flowHeight * shape.flowWidth;

    int64_t const first = thread * kPixels;
    if (first >= flowPlane)
    {
        return;
    }
    int32_t const p0 = static_cast<int32_t>(first); // planWarp keeps planes under 2^31 cells
    int64_t const cBegin = chunk * kChannelsPerThread;
    int64_t const cEnd = cBegin + kChannelsPerThread < shape.channels ? cBegin + kChannelsPerThread : shape.channels;

    T const* const flowX = flow + 2 * n * flowPlane + p0;
    T const* const flowY = flowX + flowPlane;
    float dx[kPixels];
    float dy[kPixels];
    if constexpr (kPixels == 2)
    {
        float2 const pairX = loadPair(flowX);
        float2 const pairY = loadPair(flowY);
        dx[0] = pairX.x;
        dx[1] = pairX.y;
        dy[0] = pairY.x;
        dy[1] = pairY.y;
    }
    else
    {
        dx[0] = toFloat(loadOne(flowX));
        dy[0] = toFloat(loadOne(flowY));
    }

    BilinearTaps taps[kPixels];
#pragma unroll
    for (int i = 0; i < kPixels; ++i)
    {
        int32_t const p = p0 + i;
        int32_t const y = p / flowWidth;
        int32_t const x = p - y * flowWidth;
        taps[i] = bilinearTaps(sampleCoordinate(x, dx[i], shape.featWidth),
            sampleCoordinate(y, dy[i], shape.featHeight), featHeight, featWidth);
    }

    T const* featPlaneC = feat + (n * shape.channels + cBegin) * featPlane;
    int64_t outIndex = (n * shape.channels + cBegin) * flowPlane + p0;
    // Two channels per iteration keep 8-16 gathers in flight; unrolling by 4 spilled on sm_75/sm_90 (ptxas -v).
#pragma unroll 2
    for (int64_t c = cBegin; c < cEnd; ++c, featPlaneC += featPlane, outIndex += flowPlane)
    {
        float value[kPixels];
#pragma unroll
        for (int i = 0; i < kPixels; ++i)
        {
            value[i] = gather(featPlaneC, taps[i]);
        }
        if constexpr (kPixels == 2)
        {
            if (scale != nullptr)
            {
                float2 const s = loadPair(scale + outIndex);
                value[0] *= s.x;
                value[1] *= s.y;
            }
            storePair(out + outIndex, make_float2(value[0], value[1]));
        }
        else
        {
            if (scale != nullptr)
            {
                value[0] *= toFloat(loadOne(scale + outIndex));
            }
            storeOne(out + outIndex, value[0]);
        }
    }
}

} // namespace dff

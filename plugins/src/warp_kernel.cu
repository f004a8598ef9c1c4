// The fused warp kernel: for every output (n, c, y, x), read the flow at (y, x), sample the key-frame features
// bilinearly at p + flow with zero padding and multiply by the scale field, in one pass over memory.
#include "dff/warp_kernel.h"
#include "dff/warp_sample.h"

#include <climits>

namespace dff
{
namespace
{

// Launch configuration: a thread owns one pixel (or two horizontally adjacent ones, see kPixels) of one image and
// a chunk of kChannelsPerThread channels. The flow is read and the four taps are computed once per pixel and reused
// for every channel of the chunk, so flow traffic is 1/16 of the output's at most (and it stays in L2). Chunking
// the channels instead of walking all of them keeps enough threads in flight to hide memory latency on small maps:
// one thread per pixel over all 1024 channels of a 64x128 Cityscapes map would be 256 warps for a whole GPU.
constexpr int kThreadsPerBlock = 256;
constexpr int kChannelsPerThread = 16;
constexpr int64_t kMaxGridYZ = 65535;

__device__ inline float toFloat(float v)
{
    return v;
}

__device__ inline float toFloat(__half v)
{
    return __half2float(v);
}

__device__ inline void storeFloat(float* p, float v)
{
    *p = v;
}

__device__ inline void storeFloat(__half* p, float v)
{
    *p = __float2half_rn(v);
}

// Two adjacent elements in one 8-byte (float2) or 4-byte (half2) transaction; the launcher checks alignment.
__device__ inline float2 loadPair(float const* p)
{
    return __ldg(reinterpret_cast<float2 const*>(p));
}

__device__ inline float2 loadPair(__half const* p)
{
    return __half22float2(__ldg(reinterpret_cast<__half2 const*>(p)));
}

__device__ inline void storePair(float* p, float2 v)
{
    *reinterpret_cast<float2*>(p) = v;
}

__device__ inline void storePair(__half* p, float2 v)
{
    *reinterpret_cast<__half2*>(p) = __floats2half2_rn(v.x, v.y);
}

// Eq. (1) for one channel plane: the sum over the taps' locations of G(q, p + dp) f_k(q), accumulated in float.
template <typename T>
__device__ inline float gather(T const* __restrict__ plane, BilinearTaps const& taps)
{
    float acc = 0.0F;
#pragma unroll
    for (int k = 0; k < BilinearTaps::kCount; ++k)
    {
        if (taps.offset[k] >= 0)
        {
            acc = fmaf(taps.weight[k], toFloat(__ldg(plane + taps.offset[k])), acc);
        }
    }
    return acc;
}

// kPixels = 2 handles two adjacent flow cells per thread with paired (float2 / half2) loads of the flow and the
// scale and paired stores of the output; the launcher picks it when the flow plane has an even number of cells and
// the pointers are aligned. Feature reads are gathers at data-dependent locations and stay scalar.
template <typename T, int kPixels>
__global__ void __launch_bounds__(kThreadsPerBlock) warpKernel(WarpShape const shape, T const* __restrict__ feat,
    T const* __restrict__ flow, T const* __restrict__ scale, T* __restrict__ out)
{
    int32_t const featHeight = static_cast<int32_t>(shape.featHeight);
    int32_t const featWidth = static_cast<int32_t>(shape.featWidth);
    int32_t const flowWidth = static_cast<int32_t>(shape.flowWidth);
    int64_t const featPlane = shape.featHeight * shape.featWidth;
    int64_t const flowPlane = shape.flowHeight * shape.flowWidth;

    int64_t const first = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * kPixels;
    if (first >= flowPlane)
    {
        return;
    }
    int32_t const p0 = static_cast<int32_t>(first); // the launcher keeps planes under 2^31 cells
    int64_t const n = blockIdx.z;
    int64_t const cBegin = static_cast<int64_t>(blockIdx.y) * kChannelsPerThread;
    int64_t const cEnd = min(cBegin + kChannelsPerThread, shape.channels);

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
        dx[0] = toFloat(__ldg(flowX));
        dy[0] = toFloat(__ldg(flowY));
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
                value[0] *= toFloat(__ldg(scale + outIndex));
            }
            storeFloat(out + outIndex, value[0]);
        }
    }
}

bool alignedForPairs(void const* p, size_t elementSize)
{
    return reinterpret_cast<uintptr_t>(p) % (2 * elementSize) == 0;
}

} // namespace

template <typename T>
cudaError_t launchWarp(
    WarpShape const& shape, T const* feat, T const* flow, T const* scale, T* out, cudaStream_t stream) noexcept
{
    if (shape.batch < 0 || shape.channels < 0 || shape.featHeight < 0 || shape.featWidth < 0 || shape.flowHeight < 0
        || shape.flowWidth < 0)
    {
        return cudaErrorInvalidValue;
    }
    if (shape.batch == 0 || shape.channels == 0 || shape.flowHeight == 0 || shape.flowWidth == 0)
    {
        return cudaSuccess;
    }
    // Offsets inside one plane are 32-bit; the batch and the channel chunks are grid dimensions y and z.
    int64_t const channelChunks = (shape.channels + kChannelsPerThread - 1) / kChannelsPerThread;
    if (shape.featHeight > INT32_MAX || shape.featWidth > INT32_MAX || shape.flowHeight > INT32_MAX
        || shape.flowWidth > INT32_MAX || shape.featHeight * shape.featWidth > INT32_MAX
        || shape.flowHeight * shape.flowWidth > INT32_MAX || shape.batch > kMaxGridYZ || channelChunks > kMaxGridYZ)
    {
        return cudaErrorInvalidValue;
    }
    int64_t const flowPlane = shape.flowHeight * shape.flowWidth;
    bool const pairs = flowPlane % 2 == 0 && alignedForPairs(flow, sizeof(T)) && alignedForPairs(out, sizeof(T))
        && (scale == nullptr || alignedForPairs(scale, sizeof(T)));
    int64_t const threadsPerImage = pairs ? flowPlane / 2 : flowPlane;
    dim3 const grid(static_cast<unsigned>((threadsPerImage + kThreadsPerBlock - 1) / kThreadsPerBlock),
        static_cast<unsigned>(channelChunks), static_cast<unsigned>(shape.batch));
    if (pairs)
    {
        warpKernel<T, 2><<<grid, kThreadsPerBlock, 0, stream>>>(shape, feat, flow, scale, out);
    }
    else
    {
        warpKernel<T, 1><<<grid, kThreadsPerBlock, 0, stream>>>(shape, feat, flow, scale, out);
    }
    return cudaGetLastError();
}

template cudaError_t launchWarp<float>(
    WarpShape const&, float const*, float const*, float const*, float*, cudaStream_t) noexcept;
template cudaError_t launchWarp<__half>(
    WarpShape const&, __half const*, __half const*, __half const*, __half*, cudaStream_t) noexcept;

} // namespace dff

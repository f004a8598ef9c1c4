// The fused warp kernel: for every output (n, c, y, x), read the flow at (y, x), sample the key-frame features
// bilinearly at p + flow with zero padding and multiply by the scale field, in one pass over memory. The per-thread
// work and the launch plan live in dff/warp_thread.h, where the host test runs them too.
#include "dff/warp_kernel.h"
#include "dff/warp_thread.h"

namespace dff
{
namespace
{

template <typename T, int kPixels>
__global__ void __launch_bounds__(kThreadsPerBlock) warpKernel(WarpShape const shape, T const* __restrict__ feat,
    T const* __restrict__ flow, T const* __restrict__ scale, T* __restrict__ out)
{
    warpThread<T, kPixels>(shape, feat, flow, scale, out, static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x,
        blockIdx.y, blockIdx.z);
}

} // namespace

template <typename T>
cudaError_t launchWarp(
    WarpShape const& shape, T const* feat, T const* flow, T const* scale, T* out, cudaStream_t stream) noexcept
{
    WarpLaunch const launch = planWarp(shape, flow, scale, out, sizeof(T));
    if (!launch.valid)
    {
        return cudaErrorInvalidValue;
    }
    if (launch.empty)
    {
        return cudaSuccess;
    }
    dim3 const grid(static_cast<unsigned>(launch.blocks), static_cast<unsigned>(launch.channelChunks),
        static_cast<unsigned>(launch.batch));
    // cudaLaunchKernel returns this launch's own status, where <<<>>> + cudaGetLastError() would also report (and
    // clear) an error some earlier call left behind.
    void const* const kernel = launch.pixelsPerThread == 2 ? reinterpret_cast<void const*>(&warpKernel<T, 2>)
                                                           : reinterpret_cast<void const*>(&warpKernel<T, 1>);
    WarpShape shapeArgument = shape;
    void* arguments[] = {&shapeArgument, &feat, &flow, &scale, &out};
    return cudaLaunchKernel(kernel, grid, dim3(kThreadsPerBlock), arguments, 0, stream);
}

template cudaError_t launchWarp<float>(
    WarpShape const&, float const*, float const*, float const*, float*, cudaStream_t) noexcept;
template cudaError_t launchWarp<__half>(
    WarpShape const&, __half const*, __half const*, __half const*, __half*, cudaStream_t) noexcept;

} // namespace dff

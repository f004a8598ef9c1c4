// Host launcher of the fused warp kernel: out = S * bilinear(feat, p + flow) (Deep Feature Flow, Eq. 1-3).
// Shared by the TensorRT plugin (plugins/src/dff_warp_plugin.cpp) and the PyTorch binding
// (plugins/torch/warp_binding.cpp); compiled once, in plugins/src/warp_kernel.cu.
#pragma once

#include <cstdint>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace dff
{

// Extents of the three NCHW tensors: feat (batch, channels, featHeight, featWidth), flow (batch, 2, flowHeight,
// flowWidth), scale and out (batch, channels, flowHeight, flowWidth).
struct WarpShape
{
    int64_t batch;
    int64_t channels;
    int64_t featHeight;
    int64_t featWidth;
    int64_t flowHeight;
    int64_t flowWidth;
};

// Hidden: each library that compiles warp_kernel.cu (the two plugin libraries, the PyTorch extension) keeps its own
// copy instead of exporting a weak symbol that another one, loaded into the same process, could interpose.
#if defined(__GNUC__)
#define DFF_KERNEL_API __attribute__((visibility("hidden")))
#else
#define DFF_KERNEL_API
#endif

// Enqueues the warp on `stream`. All tensors are contiguous NCHW of the same element type T (float or __half);
// `scale` may be null, meaning S = 1. Returns cudaErrorInvalidValue for extents the kernel cannot index
// (a feature plane of 2^31 cells or more, more than 65535 batches or 65535 * 16 channels), otherwise the launch
// status of this launch alone (an error left over from an earlier, unrelated call is neither reported nor cleared).
// Empty tensors enqueue nothing.
template <typename T>
DFF_KERNEL_API cudaError_t launchWarp(
    WarpShape const& shape, T const* feat, T const* flow, T const* scale, T* out, cudaStream_t stream) noexcept;

extern template DFF_KERNEL_API cudaError_t launchWarp<float>(
    WarpShape const&, float const*, float const*, float const*, float*, cudaStream_t) noexcept;
extern template DFF_KERNEL_API cudaError_t launchWarp<__half>(
    WarpShape const&, __half const*, __half const*, __half const*, __half*, cudaStream_t) noexcept;

} // namespace dff

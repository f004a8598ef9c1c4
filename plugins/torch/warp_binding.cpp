// PyTorch binding of the fused warp kernel (plugins/src/warp_kernel.cu), built by dff/ops/warp_cuda.py: checks
// the tensors, allocates the output and enqueues launchWarp on the current CUDA stream. Inference only.
#include "dff/warp_kernel.h"
#include "dff/warp_thread.h"

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include <optional>

namespace
{

void checkOperand(torch::Tensor const& tensor, char const* name, torch::Tensor const& feat)
{
    TORCH_CHECK(tensor.device() == feat.device(), "warp_cuda: ", name, " must be on feat's device ", feat.device(),
        ", got ", tensor.device());
    TORCH_CHECK(tensor.scalar_type() == feat.scalar_type(), "warp_cuda: ", name, " must have feat's dtype ",
        feat.scalar_type(), ", got ", tensor.scalar_type());
    TORCH_CHECK(tensor.dim() == 4 && tensor.is_contiguous(), "warp_cuda: ", name,
        " must be a contiguous 4-D NCHW tensor, got shape ", tensor.sizes(), " with strides ", tensor.strides());
}

template <typename T, typename Stored>
cudaError_t launch(dff::WarpShape const& shape, torch::Tensor const& feat, torch::Tensor const& flow,
    std::optional<torch::Tensor> const& scale, torch::Tensor& out, cudaStream_t stream)
{
    // at::Half and __half share the IEEE binary16 layout.
    auto const input = [](torch::Tensor const& t) { return reinterpret_cast<T const*>(t.data_ptr<Stored>()); };
    return dff::launchWarp<T>(shape, input(feat), input(flow), scale ? input(*scale) : nullptr,
        reinterpret_cast<T*>(out.data_ptr<Stored>()), stream);
}

torch::Tensor warp(torch::Tensor const& feat, torch::Tensor const& flow, std::optional<torch::Tensor> const& scale)
{
    TORCH_CHECK(feat.is_cuda(), "warp_cuda: feat must be a CUDA tensor, got device ", feat.device());
    TORCH_CHECK(feat.scalar_type() == torch::kFloat || feat.scalar_type() == torch::kHalf,
        "warp_cuda: feat must be float32 or float16, got ", feat.scalar_type());
    checkOperand(feat, "feat", feat);
    checkOperand(flow, "flow", feat);
    TORCH_CHECK(flow.size(0) == feat.size(0) && flow.size(1) == 2, "warp_cuda: flow must be (N, 2, H', W') with N = ",
        feat.size(0), ", got ", flow.sizes());
    std::vector<int64_t> const outSize{feat.size(0), feat.size(1), flow.size(2), flow.size(3)};
    if (scale)
    {
        checkOperand(*scale, "scale", feat);
        TORCH_CHECK(scale->sizes() == torch::IntArrayRef(outSize), "warp_cuda: scale must be ",
            torch::IntArrayRef(outSize), " (N, C of feat; H', W' of flow), got ", scale->sizes());
    }

    c10::cuda::CUDAGuard const deviceGuard(feat.device());
    torch::Tensor out = torch::empty(outSize, feat.options());
    dff::WarpShape const shape{feat.size(0), feat.size(1), feat.size(2), feat.size(3), flow.size(2), flow.size(3)};
    cudaStream_t const stream = c10::cuda::getCurrentCUDAStream();
    cudaError_t const status = feat.scalar_type() == torch::kFloat
        ? launch<float, float>(shape, feat, flow, scale, out, stream)
        : launch<__half, at::Half>(shape, feat, flow, scale, out, stream);
    TORCH_CHECK(status == cudaSuccess, "warp_cuda: kernel launch failed: ", cudaGetErrorString(status));
    return out;
}

// 2 where launchWarp gives each thread a pixel pair (paired loads), 1 where one pixel: lets the GPU tests prove which
// path they ran. The output is a fresh torch.empty tensor, whose allocations are aligned far beyond a pair.
int64_t pixelsPerThread(torch::Tensor const& feat, torch::Tensor const& flow, std::optional<torch::Tensor> const& scale)
{
    dff::WarpShape const shape{feat.size(0), feat.size(1), feat.size(2), feat.size(3), flow.size(2), flow.size(3)};
    return dff::planWarp(shape, flow.data_ptr(), scale ? scale->data_ptr() : nullptr, nullptr, flow.element_size())
        .pixelsPerThread;
}

} // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module)
{
    module.def("warp", &warp, "f_i = W(f_k, M, S): fused bilinear warp times the scale field (Deep Feature Flow Eq. 3)",
        pybind11::arg("feat"), pybind11::arg("flow"), pybind11::arg("scale") = pybind11::none());
    module.def("pixels_per_thread", &pixelsPerThread, "pixels per thread launchWarp picks for these tensors (1 or 2)",
        pybind11::arg("feat"), pybind11::arg("flow"), pybind11::arg("scale") = pybind11::none());
}

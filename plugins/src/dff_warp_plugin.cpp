// DFFWarp: TensorRT IPluginV3 plugin and creator. Shapes and types are checked here; the math lives in the kernel
// (plugins/src/warp_kernel.cu), which enqueue() only dispatches to. Every method that can throw runs inside
// guarded(); the ones that only return a constant or a member's address cannot and are left bare.
#include "dff_warp_plugin.h"

#include "dff/warp_kernel.h"

#include <atomic>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>

namespace dff
{
namespace
{

using nvinfer1::DataType;
using nvinfer1::Dims;
using Severity = nvinfer1::ILogger::Severity;

std::atomic<nvinfer1::ILoggerFinder*> gLoggerFinder{nullptr};

// Runs a noexcept method's body; an exception becomes an error reported to TensorRT and the method's error value.
template <typename Result, typename Body>
Result guarded(char const* method, Result onError, Body&& body) noexcept
{
    try
    {
        return body();
    }
    catch (std::exception const& e)
    {
        try
        {
            reportToTensorRT(Severity::kERROR, (std::string(method) + ": " + e.what()).c_str());
        }
        catch (...)
        {
            reportToTensorRT(Severity::kERROR, e.what());
        }
    }
    catch (...)
    {
        reportToTensorRT(Severity::kERROR, method);
    }
    return onError;
}

// `message` is a callable building the error text, so that a check that passes builds nothing: onShapeChange runs
// these checks on every enqueue.
template <typename Message>
void require(bool condition, Message const& message)
{
    if (!condition)
    {
        throw std::invalid_argument(message());
    }
}

std::string toString(Dims const& dims)
{
    std::string text = "(";
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        text += (i == 0 ? "" : ", ") + std::to_string(dims.d[i]);
    }
    return text + ")";
}

void requireCounts(int32_t nbInputs, int32_t nbOutputs)
{
    require(nbInputs == kNbWarpInputs && nbOutputs == kNbWarpOutputs, [&] {
        return "DFFWarp takes 3 inputs (feat, flow, scale) and gives 1 output; got " + std::to_string(nbInputs)
            + " inputs and " + std::to_string(nbOutputs) + " outputs";
    });
}

// feat (N, C, H, W), flow (N, 2, H', W'), scale (N, C, H', W'). An extent of -1 (not known while building for a
// range of shapes) matches anything.
void requireShapes(Dims const& feat, Dims const& flow, Dims const& scale)
{
    require(feat.nbDims == 4 && flow.nbDims == 4 && scale.nbDims == 4, [&] {
        return "feat, flow and scale must be 4-D NCHW; got " + toString(feat) + ", " + toString(flow) + ", "
            + toString(scale);
    });
    auto const agree = [](int64_t a, int64_t b) { return a < 0 || b < 0 || a == b; };
    require(agree(flow.d[1], 2) && agree(flow.d[0], feat.d[0]), [&] {
        return "flow must be (N, 2, H', W') with feat's N = " + std::to_string(feat.d[0]) + "; got " + toString(flow);
    });
    require(agree(scale.d[0], feat.d[0]) && agree(scale.d[1], feat.d[1]) && agree(scale.d[2], flow.d[2])
            && agree(scale.d[3], flow.d[3]),
        [&] {
            return "scale must be (N, C, H', W') = (" + std::to_string(feat.d[0]) + ", " + std::to_string(feat.d[1])
                + ", " + std::to_string(flow.d[2]) + ", " + std::to_string(flow.d[3]) + "); got " + toString(scale);
        });
}

} // namespace

void useLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    gLoggerFinder.store(finder);
}

void reportToTensorRT(Severity severity, char const* message) noexcept
{
    nvinfer1::ILogger* logger = nullptr;
    try
    {
        nvinfer1::ILoggerFinder* const finder = gLoggerFinder.load();
        logger = finder != nullptr ? finder->findLogger() : nullptr;
    }
    catch (...)
    {
        logger = nullptr;
    }
    if (logger != nullptr)
    {
        logger->log(severity, message);
    }
    else
    {
        std::fprintf(stderr, "[%s::%s] %s\n", kWarpPluginNamespace, kWarpPluginName, message);
    }
}

// ---- IPluginV3 ----

nvinfer1::IPluginCapability* DFFWarpPlugin::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept
{
    return guarded("getCapabilityInterface", static_cast<nvinfer1::IPluginCapability*>(nullptr),
        [&]() -> nvinfer1::IPluginCapability* {
            switch (type)
            {
            case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
            case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
            case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
            }
            throw std::invalid_argument("unknown capability type " + std::to_string(static_cast<int32_t>(type)));
        });
}

nvinfer1::IPluginV3* DFFWarpPlugin::clone() noexcept
{
    return guarded("clone", static_cast<nvinfer1::IPluginV3*>(nullptr),
        [&]() -> nvinfer1::IPluginV3* { return new DFFWarpPlugin(*this); });
}

// ---- IPluginV3OneCore ----

char const* DFFWarpPlugin::getPluginName() const noexcept
{
    return kWarpPluginName;
}

char const* DFFWarpPlugin::getPluginVersion() const noexcept
{
    return kWarpPluginVersion;
}

char const* DFFWarpPlugin::getPluginNamespace() const noexcept
{
    return kWarpPluginNamespace;
}

// ---- IPluginV3OneBuild ----

int32_t DFFWarpPlugin::getNbOutputs() const noexcept
{
    return kNbWarpOutputs;
}

int32_t DFFWarpPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    return guarded("getOutputDataTypes", int32_t{-1}, [&]() -> int32_t {
        requireCounts(nbInputs, nbOutputs);
        outputTypes[0] = inputTypes[kFeatIndex];
        return 0;
    });
}

int32_t DFFWarpPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/, nvinfer1::DimsExprs* outputs,
    int32_t nbOutputs, nvinfer1::IExprBuilder& /*exprBuilder*/) noexcept
{
    return guarded("getOutputShapes", int32_t{-1}, [&]() -> int32_t {
        requireCounts(nbInputs, nbOutputs);
        nvinfer1::DimsExprs const& feat = inputs[kFeatIndex];
        nvinfer1::DimsExprs const& flow = inputs[kFlowIndex];
        require(feat.nbDims == 4 && flow.nbDims == 4, [&] {
            return "feat and flow must be 4-D NCHW; got ranks " + std::to_string(feat.nbDims) + " and "
                + std::to_string(flow.nbDims);
        });
        if (flow.d[1]->isConstant())
        {
            int64_t const channels = flow.d[1]->getConstantValue();
            require(channels == 2,
                [&] { return "flow must have 2 channels (horizontal, vertical); got " + std::to_string(channels); });
        }
        // The output takes the features' N and C and the flow's H and W: the current frame's grid (Eq. 3).
        outputs[0].nbDims = 4;
        outputs[0].d[0] = feat.d[0];
        outputs[0].d[1] = feat.d[1];
        outputs[0].d[2] = flow.d[2];
        outputs[0].d[3] = flow.d[3];
        return 0;
    });
}

bool DFFWarpPlugin::supportsFormatCombination(
    int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    return guarded("supportsFormatCombination", false, [&]() -> bool {
        requireCounts(nbInputs, nbOutputs);
        require(pos >= kFeatIndex && pos <= kOutIndex,
            [&] { return "tensor position " + std::to_string(pos) + " out of [0, 3]"; });
        nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
        if (desc.format != nvinfer1::TensorFormat::kLINEAR)
        {
            return false;
        }
        // TensorRT asks position by position; the first fixes the type all others must share.
        if (pos == kFeatIndex)
        {
            return desc.type == DataType::kFLOAT || desc.type == DataType::kHALF;
        }
        return desc.type == inOut[kFeatIndex].desc.type;
    });
}

int32_t DFFWarpPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    return guarded("configurePlugin", int32_t{-1}, [&]() -> int32_t {
        requireCounts(nbInputs, nbOutputs);
        requireShapes(in[kFeatIndex].desc.dims, in[kFlowIndex].desc.dims, in[kScaleIndex].desc.dims);
        return 0;
    });
}

// ---- IPluginV3OneRuntime ----

int32_t DFFWarpPlugin::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    return guarded("onShapeChange", int32_t{-1}, [&]() -> int32_t {
        requireCounts(nbInputs, nbOutputs);
        requireShapes(in[kFeatIndex].dims, in[kFlowIndex].dims, in[kScaleIndex].dims);
        return 0;
    });
}

int32_t DFFWarpPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* /*outputDesc*/, void const* const* inputs, void* const* outputs,
    void* /*workspace*/, cudaStream_t stream) noexcept
{
    return guarded("enqueue", int32_t{-1}, [&]() -> int32_t {
        Dims const& feat = inputDesc[kFeatIndex].dims;
        Dims const& flow = inputDesc[kFlowIndex].dims;
        WarpShape const shape{feat.d[0], feat.d[1], feat.d[2], feat.d[3], flow.d[2], flow.d[3]};
        cudaError_t status = cudaErrorInvalidValue;
        switch (inputDesc[kFeatIndex].type)
        {
        case DataType::kFLOAT:
            status = launchWarp(shape, static_cast<float const*>(inputs[kFeatIndex]),
                static_cast<float const*>(inputs[kFlowIndex]), static_cast<float const*>(inputs[kScaleIndex]),
                static_cast<float*>(outputs[0]), stream);
            break;
        case DataType::kHALF:
            status = launchWarp(shape, static_cast<__half const*>(inputs[kFeatIndex]),
                static_cast<__half const*>(inputs[kFlowIndex]), static_cast<__half const*>(inputs[kScaleIndex]),
                static_cast<__half*>(outputs[0]), stream);
            break;
        default:
            throw std::invalid_argument("data type " + std::to_string(static_cast<int32_t>(inputDesc[kFeatIndex].type))
                + " is neither float32 nor float16");
        }
        require(status == cudaSuccess, [&] { return std::string("kernel launch failed: ") + cudaGetErrorString(status); });
        return 0;
    });
}

nvinfer1::IPluginV3* DFFWarpPlugin::attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept
{
    return clone();
}

nvinfer1::PluginFieldCollection const* DFFWarpPlugin::getFieldsToSerialize() noexcept
{
    return &mFieldsToSerialize;
}

// ---- DFFWarpPluginCreator ----

nvinfer1::IPluginV3* DFFWarpPluginCreator::createPlugin(
    char const* /*name*/, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase /*phase*/) noexcept
{
    return guarded("createPlugin", static_cast<nvinfer1::IPluginV3*>(nullptr), [&]() -> nvinfer1::IPluginV3* {
        // The node's own attributes (plugin_version, plugin_namespace) select the creator and are not fields.
        for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
        {
            std::string const field = fc->fields[i].name != nullptr ? fc->fields[i].name : "<unnamed>";
            reportToTensorRT(Severity::kWARNING, ("DFFWarp has no fields; ignoring '" + field + "'").c_str());
        }
        return new DFFWarpPlugin();
    });
}

nvinfer1::PluginFieldCollection const* DFFWarpPluginCreator::getFieldNames() noexcept
{
    return &mFieldNames;
}

char const* DFFWarpPluginCreator::getPluginName() const noexcept
{
    return kWarpPluginName;
}

char const* DFFWarpPluginCreator::getPluginVersion() const noexcept
{
    return kWarpPluginVersion;
}

char const* DFFWarpPluginCreator::getPluginNamespace() const noexcept
{
    return kWarpPluginNamespace;
}

} // namespace dff

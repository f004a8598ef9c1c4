// TensorRT plugin for the ONNX node DFFWarp (domain dff): f_i = W(f_k, M, S), Deep Feature Flow Eq. (1)-(3).
// One IPluginV3 class (core, build and runtime capabilities) and its IPluginCreatorV3One, written against the
// v_1_0 plugin interfaces that TensorRT 10.0 through 11.1 declare identically (see plugins/README.md).
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>

namespace dff
{

// The node's identity: op type, attribute plugin_version, attribute plugin_namespace.
constexpr char const* kWarpPluginName{"DFFWarp"};
constexpr char const* kWarpPluginVersion{"1"};
constexpr char const* kWarpPluginNamespace{"dff"};

// Tensor positions as TensorRT numbers them: the inputs, then the output.
constexpr int32_t kFeatIndex{0};
constexpr int32_t kFlowIndex{1};
constexpr int32_t kScaleIndex{2};
constexpr int32_t kOutIndex{3};
constexpr int32_t kNbWarpInputs{3};
constexpr int32_t kNbWarpOutputs{1};

// The warp has no attributes: its identity is all there is to serialise, and any instance can serve any shape,
// so clone() and attachToContext() are plain copies.
class DFFWarpPlugin final : public nvinfer1::IPluginV3,
                            public nvinfer1::IPluginV3OneCore,
                            public nvinfer1::IPluginV3OneBuild,
                            public nvinfer1::IPluginV3OneRuntime
{
public:
    DFFWarpPlugin() = default;
    DFFWarpPlugin(DFFWarpPlugin const&) = default;
    DFFWarpPlugin& operator=(DFFWarpPlugin const&) = delete;
    ~DFFWarpPlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    nvinfer1::PluginFieldCollection mFieldsToSerialize{0, nullptr};
};

class DFFWarpPluginCreator final : public nvinfer1::IPluginCreatorV3One
{
public:
    nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
        nvinfer1::TensorRTPhase phase) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

private:
    nvinfer1::PluginFieldCollection mFieldNames{0, nullptr};
};

// Keeps the logger finder TensorRT hands a library it loads (setLoggerFinder); null until then.
void useLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;

// Reports a message to the logger found through useLoggerFinder(), or to stderr without one.
void reportToTensorRT(nvinfer1::ILogger::Severity severity, char const* message) noexcept;

} // namespace dff

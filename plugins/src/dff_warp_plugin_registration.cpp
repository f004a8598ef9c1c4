// Load-time registration for libdff_warp_plugin_static.so: loading the library (dlopen, ctypes.CDLL, polygraphy
// --plugins, trtexec --staticPlugins, or linking it into an application) registers DFFWarp with TensorRT's global
// plugin registry.
//
// This is REGISTER_TENSORRT_PLUGIN's registrar spelled out with one difference: the macro registers under the
// namespace "" (its PluginRegistrar passes "" to registerCreator, NvInferRuntime.h in 10.0-11.1), while the ONNX node
// and the creator use the namespace "dff", so the registration passes the creator's own namespace.
#include "dff_warp_plugin.h"

namespace
{

class DFFWarpRegistration
{
public:
    DFFWarpRegistration() noexcept
    {
        nvinfer1::IPluginRegistry* const registry = getPluginRegistry();
        if (registry == nullptr || !registry->registerCreator(mCreator, mCreator.getPluginNamespace()))
        {
            dff::reportToTensorRT(nvinfer1::ILogger::Severity::kERROR,
                "could not register the plugin creator dff::DFFWarp version 1 (already registered, or no registry)");
        }
    }

private:
    dff::DFFWarpPluginCreator mCreator;
};

DFFWarpRegistration const gRegistration;

} // namespace

// Entry points of libdff_warp_plugin.so, the library TensorRT loads itself: IPluginRegistry::loadLibrary,
// trtexec --dynamicPlugins, and plugin libraries serialised into an engine (--setPluginsToSerialize). TensorRT
// registers what getCreators() returns; loadLibrary fails if a creator is already registered, so this library
// must not also register itself when loaded (that is libdff_warp_plugin_static.so's job).
#include "dff_warp_plugin.h"

namespace
{

dff::DFFWarpPluginCreator gCreator;
nvinfer1::IPluginCreatorInterface* const gCreators[] = {&gCreator};

} // namespace

extern "C" __attribute__((visibility("default"))) void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    dff::useLoggerFinder(finder);
}

extern "C" __attribute__((visibility("default"))) nvinfer1::IPluginCreatorInterface* const* getCreators(
    int32_t& nbCreators) noexcept
{
    nbCreators = static_cast<int32_t>(sizeof(gCreators) / sizeof(gCreators[0]));
    return gCreators;
}

// TensorRT backend: the engines `dff build` wrote for this GPU, on one CUDA stream; the C++ twin of
// dff/runtime/backends/tensorrt.py, with the same design:
// * before an engine is deserialised its build record (<role>-<digest>.json beside it) must name this GPU, this
//   TensorRT and this export, and the engine file must match its SHA-256, else the error says to run `dff build`;
// * one execution context per engine; handles are device tensors from one pool of cudaMalloc blocks (allocated once
//   per size, reused when a handle is dropped: on one stream, later work runs after the work that read it); the
//   feature engine's output is bound as the warp engine's input, nothing is copied between stages;
// * optionally (cuda_graph=true, the default) the non-key path (flow, warp, task) runs as CUDA graphs, per engine
//   and set of shapes and addresses: one plain enqueue, then a capture, then launches (trtexec's pattern in
//   NVIDIA/TensorRT samples/common/sampleInference.cpp); a failed capture falls back to plain enqueueV3;
// * a detection export's task engine hands back its four padded outputs (boxes, scores, classes, count) in one
//   handle and always runs plainly: its NMS has data-dependent shapes, which a CUDA graph cannot capture
//   (as dff/runtime/backends/tensorrt.py does).
// Written against NVIDIA's headers (NvInferRuntime.h, TensorRT 10.0 to 11.1) and the CUDA runtime API; compiled
// against them by hand, not yet run on a GPU.
#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <list>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "backends.hpp"
#include "detections.hpp"
#include "frames.hpp"
#include "manifest.hpp"

namespace dff::detail {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::vector<std::string> kRoles = {"feature", "flow", "warp", "task"};
const std::vector<std::string> kGraphRoles = {"flow", "warp", "task"};
constexpr std::size_t kGraphsPerEngine = 8;  // pooled handles cycle through a few addresses
constexpr const char* kRecordFormat = "dff-engine-1";

struct EngineError : Error {
  explicit EngineError(const std::string& message) : Error(ErrorCode::backend, message) {}
};

void cuda(cudaError_t status, const char* call) {
  if (status != cudaSuccess) {
    throw EngineError(std::string(call) + " failed: " + cudaGetErrorString(status));
  }
}

//! TensorRT's messages of warning level and above, to stderr.
class Logger final : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* message) noexcept override {
    if (severity <= Severity::kWARNING) std::cerr << "TensorRT: " << message << "\n";
  }
};

std::size_t element_size(nvinfer1::DataType type) {
  switch (type) {
    case nvinfer1::DataType::kFLOAT: case nvinfer1::DataType::kINT32: return 4;
    case nvinfer1::DataType::kHALF: case nvinfer1::DataType::kBF16: return 2;
    case nvinfer1::DataType::kINT64: return 8;
    case nvinfer1::DataType::kUINT8: case nvinfer1::DataType::kINT8: case nvinfer1::DataType::kBOOL: return 1;
    default: throw EngineError("an engine tensor has a data type this backend does not handle");
  }
}

//! cudaMalloc blocks by size; a block returns to its free list when the last handle holding it goes.
class DevicePool : public std::enable_shared_from_this<DevicePool> {
 public:
  ~DevicePool() {
    for (void* pointer : all_) cudaFree(pointer);
  }
  std::shared_ptr<void> take(std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    void* pointer = nullptr;
    auto& free = free_[bytes];
    if (!free.empty()) {
      pointer = free.back();
      free.pop_back();
    } else {
      cuda(cudaMalloc(&pointer, std::max<std::size_t>(bytes, 1)), "cudaMalloc");
      all_.push_back(pointer);
    }
    std::weak_ptr<DevicePool> pool = weak_from_this();
    return std::shared_ptr<void>(pointer, [pool, bytes](void* p) {
      if (auto owner = pool.lock()) {
        std::lock_guard<std::mutex> lock(owner->mutex_);
        owner->free_[bytes].push_back(p);
      }
    });
  }

 private:
  std::mutex mutex_;
  std::map<std::size_t, std::vector<void*>> free_;
  std::vector<void*> all_;
};

struct DeviceTensor final : Handle {
  DeviceTensor(DevicePool& pool, nvinfer1::Dims dims, nvinfer1::DataType type) : dims(dims), type(type) {
    bytes = element_size(type);
    for (int i = 0; i < dims.nbDims; ++i) bytes *= static_cast<std::size_t>(dims.d[i]);
    memory = pool.take(bytes);
  }
  void* data() const { return memory.get(); }
  nvinfer1::Dims dims;
  nvinfer1::DataType type;
  std::size_t bytes = 0;
  std::shared_ptr<void> memory;
};
using Tensor = std::shared_ptr<const DeviceTensor>;

struct Flow final : Handle {
  Tensor flow, scale;
};

//! A detection export's task outputs, in kDetectionOutputs' order: boxes, scores, classes, count.
struct PaddedDetections final : Handle {
  std::vector<Tensor> outputs;
};

//! The data type each detection output must have (dff.export.detection_graph writes them so).
const std::vector<nvinfer1::DataType> kDetectionTypes = {nvinfer1::DataType::kFLOAT, nvinfer1::DataType::kFLOAT,
                                                         nvinfer1::DataType::kINT32, nvinfer1::DataType::kINT32};

bool same_dims(const nvinfer1::Dims& a, const nvinfer1::Dims& b) {
  return a.nbDims == b.nbDims && std::equal(a.d, a.d + a.nbDims, b.d);
}

//! CUDA graphs of one context's enqueue, keyed by the shapes and addresses they were captured with (LRU).
class GraphCache {
 public:
  GraphCache(cudaStream_t stream, std::string role) : stream_(stream), role_(std::move(role)) {}
  ~GraphCache() {
    for (auto& [key, graph] : graphs_) cudaGraphExecDestroy(graph);
  }
  bool launch(const std::string& key) {
    auto found = std::find_if(graphs_.begin(), graphs_.end(), [&](const auto& entry) { return entry.first == key; });
    if (found == graphs_.end()) return false;
    graphs_.splice(graphs_.begin(), graphs_, found);
    cuda(cudaGraphLaunch(found->second, stream_), "cudaGraphLaunch");
    return true;
  }
  //! Captures `enqueue` for `key`, after one plain enqueue with the same bindings (TensorRT's one-time set-up stays
  //! out of the graph, as in trtexec).
  template <typename Enqueue>
  void capture(const std::string& key, Enqueue&& enqueue) {
    if (!enabled_) return;
    cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    if (cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
      return disable("cudaStreamBeginCapture failed");
    }
    const bool captured = enqueue();  // false if an operation is not allowed under capture
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
    if (!captured || ended != cudaSuccess) {
      if (graph != nullptr) cudaGraphDestroy(graph);
      return disable("the engine cannot be captured");
    }
    cudaGraphExec_t exec = nullptr;
    const cudaError_t instantiated = cudaGraphInstantiateWithFlags(&exec, graph, 0);  // CUDA 11.4+ and 12+ alike
    cudaGraphDestroy(graph);  // the executable graph does not need it
    if (instantiated != cudaSuccess) return disable("cudaGraphInstantiate failed");
    graphs_.emplace_front(key, exec);
    if (graphs_.size() > kGraphsPerEngine) {
      cudaGraphExecDestroy(graphs_.back().second);
      graphs_.pop_back();
    }
  }

 private:
  void disable(const char* reason) {
    cudaGetLastError();  // clear the failed capture's error (trtexec's endCaptureOnError)
    enabled_ = false;
    std::cerr << "warning: CUDA graph capture of the " << role_ << " engine failed (" << reason
              << "); running it without graphs\n";
  }
  cudaStream_t stream_;
  std::string role_;
  bool enabled_ = true;
  std::list<std::pair<std::string, cudaGraphExec_t>> graphs_;
};

//! A build record: the parts the runtime checks (dff/engines/records.py).
struct Record {
  fs::path path;
  std::string gpu_name, compute_capability, tensorrt_version, onnx_file, onnx_sha256, built_at, engine_file, engine_sha256;
  std::optional<std::string> plugin_sha256, plugin_library;
  SizeRange profile;
  std::string gpu() const { return gpu_name + " (compute capability " + compute_capability + ")"; }
};

Record read_record(const fs::path& path) {
  try {
    std::ifstream in(path);
    const json root = json::parse(in);
    if (root.at("format").get<std::string>() != kRecordFormat) {
      throw EngineError("build record " + path.string() + " has format '" + root.at("format").get<std::string>() +
                        "', this dff reads '" + kRecordFormat + "': run `dff build` again");
    }
    const json& key = root.at("key");
    const json& profile = key.at("profile");
    Record record{path,
                  key.at("gpu").at("name").get<std::string>(),
                  key.at("gpu").at("compute_capability").get<std::string>(),
                  key.at("tensorrt_version").get<std::string>(),
                  key.at("onnx_file").get<std::string>(),
                  key.at("onnx_sha256").get<std::string>(),
                  root.at("built_at").get<std::string>(),
                  root.at("engine_file").get<std::string>(),
                  root.at("engine_sha256").get<std::string>(),
                  std::nullopt,
                  std::nullopt,
                  {profile.at("min").at("height").get<int>(), profile.at("min").at("width").get<int>(),
                   profile.at("max").at("height").get<int>(), profile.at("max").at("width").get<int>(), 16}};
    if (!key.value("plugin_sha256", json()).is_null()) record.plugin_sha256 = key.at("plugin_sha256").get<std::string>();
    if (!root.value("plugin_library", json()).is_null()) record.plugin_library = root.at("plugin_library").get<std::string>();
    return record;
  } catch (const json::exception& error) {
    throw EngineError("build record " + path.string() + " is unreadable (" + error.what() +
                      "); delete it and run `dff build` again");
  }
}

//! "major.minor.patch" of a version string ("10.2.0.19" and "10.2.0" are the same TensorRT).
std::string release(const std::string& version) {
  std::size_t dots = 0, end = 0;
  while (end < version.size() && !(version[end] == '.' && ++dots == 3)) ++end;
  return version.substr(0, end);
}

//! The newest record in `directory` of a `role` engine for this GPU and TensorRT built from one of `sha256s`.
Record select_record(const fs::path& directory, const std::string& role, const std::vector<std::string>& sha256s,
                     const std::string& gpu_name, const std::string& capability, const std::string& tensorrt) {
  std::vector<Record> records;
  if (fs::is_directory(directory)) {
    for (const auto& entry : fs::directory_iterator(directory)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind(role + "-", 0) == 0 && entry.path().extension() == ".json") records.push_back(read_record(entry.path()));
    }
  }
  if (records.empty()) {
    throw EngineError(directory.string() + " has no " + role + " engine: build the engines with `dff build EXPORT_DIR --out " +
                      directory.string() + "`");
  }
  std::vector<Record> here;
  for (const Record& r : records) {
    if (r.gpu_name == gpu_name && r.compute_capability == capability && release(r.tensorrt_version) == tensorrt) here.push_back(r);
  }
  if (here.empty()) {
    std::vector<std::string> built;
    for (const Record& r : records) built.push_back(r.gpu() + " with TensorRT " + r.tensorrt_version);
    std::sort(built.begin(), built.end());
    built.erase(std::unique(built.begin(), built.end()), built.end());
    std::string list;
    for (const std::string& b : built) list += (list.empty() ? "" : "; ") + b;
    throw EngineError("the " + role + " engine(s) in " + directory.string() + " were built for " + list +
                      ", but this machine has " + gpu_name + " (compute capability " + capability + ") with TensorRT " +
                      tensorrt + ": TensorRT engines only run on the GPU and TensorRT they were built with; run `dff "
                      "build` again on this machine");
  }
  std::vector<Record> current;
  for (const Record& r : here) {
    if (std::find(sha256s.begin(), sha256s.end(), r.onnx_sha256) != sha256s.end()) current.push_back(r);
  }
  if (current.empty()) {
    throw EngineError("the " + role + " engine(s) in " + directory.string() + " were built from another export (" +
                      here[0].onnx_file + " has changed since): run `dff build` again");
  }
  return *std::max_element(current.begin(), current.end(),
                           [](const Record& a, const Record& b) { return a.built_at < b.built_at; });
}

std::vector<char> read_engine(const fs::path& directory, const Record& record) {
  const fs::path path = directory / record.engine_file;
  if (!fs::is_regular_file(path)) {
    throw EngineError("engine file " + path.string() + " is missing (its build record is there): run `dff build` again");
  }
  if (sha256_file(path) != record.engine_sha256) {
    throw EngineError("engine file " + path.string() + " is corrupt: its SHA-256 differs from the one in its build "
                      "record (truncated copy or changed file); delete it and run `dff build` again");
  }
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void load_plugin_library(const Record& record, const fs::path& library) {
  if (!fs::is_regular_file(library)) {
    throw EngineError("the " + kRoles[2] + " engine needs the warp plugin library " + library.string() +
                      ", which does not exist: build it (`make plugins`) or pass its path, then run `dff build "
                      "--plugin-lib PATH` again");
  }
  if (sha256_file(library) != *record.plugin_sha256) {
    throw EngineError("plugin library " + library.string() + " is not the one the warp engine was built against "
                      "(SHA-256 differs): run `dff build --plugin-lib " + library.string() + "` again");
  }
  static std::mutex mutex;
  static std::map<std::string, void*> loaded;  // once per process, as the registry allows
  std::lock_guard<std::mutex> lock(mutex);
  const std::string key = fs::absolute(library).lexically_normal().string();
  if (loaded.count(key)) return;
  void* handle = getPluginRegistry()->loadLibrary(key.c_str());
  if (handle == nullptr) {
    throw EngineError("TensorRT could not load plugin library " + key + ": it is not a TensorRT plugin library, was "
                      "built for another TensorRT, or its plugins are already registered by another library in this process");
  }
  loaded[key] = handle;
}

//! One engine, its context and graphs: device tensors in, device tensors out.
struct EngineRunner {
  std::string role;
  std::unique_ptr<nvinfer1::ICudaEngine> engine;
  std::unique_ptr<nvinfer1::IExecutionContext> context;
  std::vector<std::string> inputs;
  std::vector<std::pair<std::string, nvinfer1::DataType>> outputs;
  std::unique_ptr<GraphCache> graphs;

  std::map<std::string, Tensor> run(DevicePool& pool, cudaStream_t stream, const std::map<std::string, Tensor>& given) {
    std::string key;
    for (const std::string& name : inputs) {
      const DeviceTensor& tensor = *given.at(name);
      if (!context->setInputShape(name.c_str(), tensor.dims)) {
        throw InputSizeError("the " + role + " engine does not take " + name + " of this shape: its profile is narrower");
      }
      context->setTensorAddress(name.c_str(), tensor.data());
      key += name + describe(tensor);
    }
    std::map<std::string, Tensor> results;
    for (const auto& [name, type] : outputs) {
      const nvinfer1::Dims dims = context->getTensorShape(name.c_str());
      if (dims.nbDims < 0 || std::any_of(dims.d, dims.d + dims.nbDims, [](auto d) { return d < 0; })) {
        throw EngineError("the " + role + " engine cannot infer the shape of " + name + " from its inputs");
      }
      auto tensor = std::make_shared<const DeviceTensor>(pool, dims, type);
      context->setTensorAddress(name.c_str(), tensor->data());
      key += name + describe(*tensor);
      results.emplace(name, std::move(tensor));
    }
    if (!graphs || !graphs->launch(key)) {
      if (!context->enqueueV3(stream)) {
        throw EngineError("TensorRT's enqueueV3 failed for the " + role + " engine (see TensorRT's log above)");
      }
      if (graphs) graphs->capture(key, [&] { return context->enqueueV3(stream); });
    }
    return results;
  }

  static std::string describe(const DeviceTensor& tensor) {
    std::string text = "@" + std::to_string(reinterpret_cast<std::uintptr_t>(tensor.data())) + ":";
    for (int i = 0; i < tensor.dims.nbDims; ++i) text += std::to_string(tensor.dims.d[i]) + ",";
    return text;
  }
};

SizeRange intersect(SizeRange a, const SizeRange& b) {
  a.min_height = std::max(a.min_height, b.min_height);
  a.min_width = std::max(a.min_width, b.min_width);
  a.max_height = std::min(a.max_height, b.max_height);
  a.max_width = std::min(a.max_width, b.max_width);
  return a;
}

class TensorRTBackend final : public Backend {
 public:
  TensorRTBackend(const std::string& export_dir, const Options& options) : manifest_(load_manifest(export_dir)) {
    const OptionReader reader("tensorrt", options, {"engines", "plugin_lib", "cuda_graph", "device"});
    const fs::path engines = reader.text("engines", (manifest_.directory / "engines").string());
    const std::string plugin_lib = reader.text("plugin_lib", "");
    const bool cuda_graph = reader.boolean("cuda_graph", true);
    cuda(cudaSetDevice(reader.integer("device").value_or(0)), "cudaSetDevice");
    int device = 0;
    cuda(cudaGetDevice(&device), "cudaGetDevice");
    cudaDeviceProp properties{};
    cuda(cudaGetDeviceProperties(&properties, device), "cudaGetDeviceProperties");
    const std::string capability = std::to_string(properties.major) + "." + std::to_string(properties.minor);
    const int version = getInferLibVersion();  // (major * 100 + minor) * 100 + patch
    const std::string tensorrt = std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) + "." +
                                 std::to_string(version % 100);

    // Everything that can fail on the files is checked before any device memory is taken.
    std::map<std::string, Record> records;
    std::map<std::string, std::vector<char>> plans;
    sizes_ = manifest_.sizes;
    for (const std::string& role : kRoles) {
      const auto files = manifest_.files();
      std::vector<std::string> accepted;
      for (const auto& [name, file] : files) {
        if (name == role || (role == "warp" && name == "warp_plugin")) accepted.push_back(file->sha256);
      }
      Record record = select_record(engines, role, accepted, properties.name, capability, tensorrt);
      if (record.plugin_sha256) {
        if (plugin_lib.empty() && !record.plugin_library) {
          throw EngineError("the " + role + " engine needs the DFFWarp plugin library: pass -O plugin_lib=PATH");
        }
        load_plugin_library(record, plugin_lib.empty() ? fs::path(*record.plugin_library) : fs::path(plugin_lib));
      }
      record.profile.multiple = manifest_.sizes.multiple;
      sizes_ = intersect(sizes_, record.profile);
      plans[role] = read_engine(engines, record);
      records.emplace(role, std::move(record));
    }

    cudaStream_t stream = nullptr;
    cuda(cudaStreamCreate(&stream), "cudaStreamCreate");
    stream_.reset(stream);
    runtime_.reset(nvinfer1::createInferRuntime(logger_));
    if (!runtime_) throw EngineError("TensorRT could not create a runtime (see TensorRT's log above)");
    for (const std::string& role : kRoles) {
      EngineRunner runner;
      runner.role = role;
      runner.engine.reset(runtime_->deserializeCudaEngine(plans[role].data(), plans[role].size()));
      if (!runner.engine) {
        throw EngineError("TensorRT could not deserialise engine " + (engines / records.at(role).engine_file).string() +
                          " (see TensorRT's log above): run `dff build` again");
      }
      runner.context.reset(runner.engine->createExecutionContext());
      if (!runner.context) throw EngineError("TensorRT could not create an execution context for the " + role + " engine");
      for (int i = 0; i < runner.engine->getNbIOTensors(); ++i) {
        const char* name = runner.engine->getIOTensorName(i);
        if (runner.engine->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT) {
          runner.inputs.emplace_back(name);
        } else {
          runner.outputs.emplace_back(name, runner.engine->getTensorDataType(name));
        }
      }
      const bool detection_task = role == "task" && manifest_.task_kind == TaskKind::detection;
      for (std::size_t i = 0; detection_task && i < kDetectionOutputs.size(); ++i) {
        const auto found = std::find_if(runner.outputs.begin(), runner.outputs.end(),
                                        [&](const auto& output) { return output.first == kDetectionOutputs[i]; });
        if (found == runner.outputs.end() || found->second != kDetectionTypes[i]) {
          throw EngineError("the task engine " + (engines / records.at(role).engine_file).string() + " has no " +
                            kDetectionOutputs[i] + " output of the type the detection export gives it: run `dff build` "
                            "again");
        }
      }
      if (cuda_graph && std::count(kGraphRoles.begin(), kGraphRoles.end(), role) && !detection_task) {
        runner.graphs = std::make_unique<GraphCache>(stream_.get(), role);
      }
      runners_.emplace(role, std::move(runner));
    }
  }

  ~TensorRTBackend() override { cudaStreamSynchronize(stream_.get()); }

  const SizeRange& sizes() const override { return sizes_; }
  const std::vector<std::string>& class_names() const override { return manifest_.class_names; }
  TaskKind task_kind() const override { return manifest_.task_kind; }
  int max_detections() const override { return manifest_.max_detections; }

  HandlePtr upload(const ImageView& image) override {
    check_image(image, "upload(image)");
    sizes_.check(image.height, image.width);
    std::lock_guard<std::mutex> lock(mutex_);
    nvinfer1::Dims dims{};
    dims.nbDims = 4;
    dims.d[0] = 1, dims.d[1] = image.height, dims.d[2] = image.width, dims.d[3] = 3;
    auto frame = std::make_shared<const DeviceTensor>(*pool_, dims, nvinfer1::DataType::kUINT8);
    // From pageable memory the copy returns once the source is staged, so the caller may reuse it at once
    // (CUDA Runtime API, "API synchronization behavior").
    const std::size_t row = static_cast<std::size_t>(image.width) * 3;
    cuda(cudaMemcpy2DAsync(frame->data(), row, image.data, image.stride, row, image.height, cudaMemcpyHostToDevice,
                           stream_.get()),
         "cudaMemcpy2DAsync");
    return frame;
  }

  HandlePtr feature(const HandlePtr& frame) override {
    Tensor image = tensor(frame, "feature(frame)");
    std::lock_guard<std::mutex> lock(mutex_);
    return run("feature", {{"frame", image}}).at("feat");
  }

  HandlePtr flow(const HandlePtr& key_frame, const HandlePtr& frame) override {
    Tensor key = tensor(key_frame, "flow(key_frame)"), image = tensor(frame, "flow(frame)");
    if (!same_dims(key->dims, image->dims)) {
      throw InvalidArgument("flow(key_frame, frame): the frames differ in size; a new size needs a key frame");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    auto out = run("flow", {{"key_frame", key}, {"frame", image}});
    auto result = std::make_shared<Flow>();
    result->flow = out.at("flow");
    result->scale = out.at("scale");
    return result;
  }

  HandlePtr warp(const HandlePtr& key_feat, const HandlePtr& flow) override {
    Tensor feat = tensor(key_feat, "warp(key_feat)");
    const Flow& field = handle_as<Flow>(flow, "warp(flow)");
    std::lock_guard<std::mutex> lock(mutex_);
    return run("warp", {{"key_feat", feat}, {"flow", field.flow}, {"scale", field.scale}}).at("feat");
  }

  HandlePtr task(const HandlePtr& feat) override {
    Tensor features = tensor(feat, "task(feat)");
    std::lock_guard<std::mutex> lock(mutex_);
    auto out = run("task", {{"feat", features}});
    if (manifest_.task_kind != TaskKind::detection) return out.at("labels");  // scores and probs go back to the pool
    auto padded = std::make_shared<PaddedDetections>();
    for (const std::string& name : kDetectionOutputs) padded->outputs.push_back(out.at(name));
    return padded;
  }

  Labels download(const HandlePtr& labels) override {
    if (manifest_.task_kind == TaskKind::detection) {
      throw wrong_task("download(labels)", manifest_.task_kind, "call download_detections()");
    }
    Tensor tensor = this->tensor(labels, "download(labels)");
    Labels host{static_cast<int>(tensor->dims.d[1]), static_cast<int>(tensor->dims.d[2]),
                std::vector<std::uint8_t>(tensor->bytes)};
    std::lock_guard<std::mutex> lock(mutex_);
    cuda(cudaMemcpyAsync(host.data.data(), tensor->data(), tensor->bytes, cudaMemcpyDeviceToHost, stream_.get()),
         "cudaMemcpyAsync");
    cuda(cudaStreamSynchronize(stream_.get()), "cudaStreamSynchronize");
    return host;
  }

  std::vector<Detection> download_detections(const HandlePtr& detections) override {
    if (manifest_.task_kind != TaskKind::detection) {
      throw wrong_task("download_detections(detections)", manifest_.task_kind, "call download()");
    }
    const auto& padded = handle_as<PaddedDetections>(detections, "download_detections(detections)").outputs;
    const int rows = static_cast<int>(padded[0]->dims.d[1]);
    std::vector<float> boxes(static_cast<std::size_t>(rows) * 4), scores(rows);
    std::vector<std::int32_t> classes(rows), count(1);
    const std::vector<void*> targets = {boxes.data(), scores.data(), classes.data(), count.data()};
    const std::vector<std::size_t> sizes = {boxes.size() * 4, scores.size() * 4, classes.size() * 4, 4};
    // A few hundred bytes a frame: four copies on the stream, one wait.
    std::lock_guard<std::mutex> lock(mutex_);
    for (std::size_t i = 0; i < padded.size(); ++i) {
      if (padded[i]->bytes != sizes[i]) {
        throw EngineError("the task engine's " + kDetectionOutputs[i] + " output has " + std::to_string(padded[i]->bytes) +
                          " bytes for one frame, not " + std::to_string(sizes[i]) + ": run `dff build` again");
      }
      cuda(cudaMemcpyAsync(targets[i], padded[i]->data(), sizes[i], cudaMemcpyDeviceToHost, stream_.get()),
           "cudaMemcpyAsync");
    }
    cuda(cudaStreamSynchronize(stream_.get()), "cudaStreamSynchronize");
    return from_padded(boxes.data(), scores.data(), classes.data(), count[0], rows);
  }

 private:
  Tensor tensor(const HandlePtr& handle, const char* what) const {
    handle_as<DeviceTensor>(handle, what);
    return std::static_pointer_cast<const DeviceTensor>(handle);
  }

  std::map<std::string, Tensor> run(const std::string& role, const std::map<std::string, Tensor>& inputs) {
    return runners_.at(role).run(*pool_, stream_.get(), inputs);
  }

  struct StreamDeleter {
    void operator()(cudaStream_t stream) const { cudaStreamDestroy(stream); }
  };

  // Destroyed in reverse: contexts and graphs before engines before the runtime (as TensorRT requires), then
  // device memory, then the stream.
  Manifest manifest_;
  SizeRange sizes_;
  Logger logger_;
  std::unique_ptr<CUstream_st, StreamDeleter> stream_;
  std::shared_ptr<DevicePool> pool_ = std::make_shared<DevicePool>();
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::map<std::string, EngineRunner> runners_;
  std::mutex mutex_;  // one stream and one context per engine: calls from several threads take turns
};

}  // namespace

std::shared_ptr<Backend> open_tensorrt(const std::string& export_dir, const Options& options) {
  return std::make_shared<TensorRTBackend>(export_dir, options);
}

}  // namespace dff::detail

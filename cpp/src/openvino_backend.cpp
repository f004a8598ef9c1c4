// OpenVINO backend: the exported ONNX graphs, unchanged, on an OpenVINO device; the C++ twin of
// dff/runtime/backends/openvino.py, with the same choices:
// * one compiled model per network and frame size: each graph is reshaped to (1, H, W) and compiled on the
//   first frame of that size (static shapes run 1.2-1.8x faster than the export's dynamic ones), then kept;
// * precision is asked for, not inherited: ov::hint::inference_precision is set (f32 by default), since the
//   CPU plugin otherwise computes in bf16 on CPUs with native bf16 and its labels then differ;
// * tensors stay in OpenVINO's memory: each output is an ov::Tensor set on the request, taken from those no
//   handle refers to any more (or allocated), so a handle the caller keeps (key frame, key features) is never
//   overwritten;
// * a detection export's task network hands back its four padded outputs (boxes, scores, classes, count) in one
//   handle; download_detections() reads the first `count` rows.
#include <openvino/openvino.hpp>

#include <cstring>
#include <map>
#include <mutex>

#include "backends.hpp"
#include "detections.hpp"
#include "frames.hpp"
#include "manifest.hpp"

namespace dff::detail {
namespace {

const std::vector<std::string> kRoles = {"feature", "flow", "warp", "task"};
//! The outputs each network's handle carries; the task graph's scores and probs stay in the request. A detection
//! export's task network returns kDetectionOutputs instead of the labels.
const std::map<std::string, std::vector<std::string>> kReturned = {
    {"feature", {"feat"}}, {"flow", {"flow", "scale"}}, {"warp", {"feat"}}, {"task", {"labels"}}};
const std::vector<std::string> kVirtualDevices = {"AUTO", "MULTI", "HETERO", "BATCH"};

struct Tensor final : Handle {
  explicit Tensor(ov::Tensor t) : tensor(std::move(t)) {}
  ov::Tensor tensor;
};
using TensorPtr = std::shared_ptr<const Tensor>;

struct Flow final : Handle {
  Flow(TensorPtr f, TensorPtr s) : flow(std::move(f)), scale(std::move(s)) {}
  TensorPtr flow, scale;
};

//! A detection export's task outputs, in kDetectionOutputs' order: boxes, scores, classes, count.
struct PaddedDetections final : Handle {
  explicit PaddedDetections(std::vector<TensorPtr> t) : outputs(std::move(t)) {}
  std::vector<TensorPtr> outputs;
};

//! The element type each detection output must have (dff.export.detection_graph writes them so).
const std::vector<ov::element::Type> kDetectionTypes = {ov::element::f32, ov::element::f32, ov::element::i32,
                                                        ov::element::i32};

//! Tensors of one type and shape, handed out again once no handle refers to them: a request then writes into
//! memory it has seen before (fewer allocations, no rebinding), and a kept handle (key frame, key features) is
//! never written. Used under the backend's lock.
class Recycler {
 public:
  Recycler(ov::element::Type type, ov::Shape shape) : type_(type), shape_(std::move(shape)) {}
  std::shared_ptr<Tensor> take() {
    for (const auto& tensor : kept_) {
      if (tensor.use_count() == 1) return tensor;  // only we hold it; nobody else can take it but us
    }
    auto tensor = std::make_shared<Tensor>(ov::Tensor(type_, shape_));
    if (kept_.size() < kKept) kept_.push_back(tensor);
    return tensor;
  }

 private:
  static constexpr std::size_t kKept = 4;  // a stream holds at most a key handle and a current one per tensor
  ov::element::Type type_;
  ov::Shape shape_;
  std::vector<std::shared_ptr<Tensor>> kept_;
};

//! One network compiled at one frame size: its request and the outputs it returns as handles.
struct Network {
  ov::InferRequest request;
  std::vector<std::pair<std::string, Recycler>> outputs;

  std::vector<TensorPtr> run(const std::vector<std::pair<std::string, const ov::Tensor*>>& inputs) {
    for (const auto& [name, tensor] : inputs) request.set_tensor(name, *tensor);
    std::vector<TensorPtr> results;
    for (auto& [name, recycler] : outputs) {
      results.push_back(recycler.take());
      request.set_tensor(name, results.back()->tensor);  // the request writes into the handle's memory
    }
    request.infer();
    return results;
  }
};

//! Everything compiled for one frame size: the four networks and the frames uploaded at that size.
struct Compiled {
  std::map<std::string, Network> networks;
  Recycler frames;
};

std::string check_device(ov::Core& core, const std::string& device) {
  const std::vector<std::string> available = core.get_available_devices();
  std::string base = device.substr(0, device.find_first_of(":."));
  for (char& c : base) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto listed = [&](const std::vector<std::string>& names, const std::string& name) {
    for (const std::string& n : names) {
      if (n == name || n.substr(0, n.find('.')) == name) return true;
    }
    return false;
  };
  if (!device.empty() && (listed(kVirtualDevices, base) || listed(available, device) || listed(available, base))) {
    return device;
  }
  throw ConfigError("OpenVINO device '" + device + "' is not available here (available: " + python_list(available) +
                    ", or one of " + python_list(kVirtualDevices) + "); install its driver (GPU, NPU) or use "
                    "device='CPU'");
}

class OpenVINOBackend final : public Backend {
 public:
  OpenVINOBackend(const std::string& export_dir, const Options& options)
      : manifest_(load_manifest(export_dir)), returned_(kReturned) {
    if (manifest_.task_kind == TaskKind::detection) returned_["task"] = kDetectionOutputs;
    const OptionReader reader("openvino", options, {"device", "precision", "threads"});
    device_ = check_device(core_, reader.text("device", "CPU"));
    const std::string precision = reader.choice("precision", "f32", {"f32", "bf16", "f16"});
    const std::optional<int> threads = reader.integer("threads");
    if (threads && *threads < 1) {
      throw ConfigError("threads must be an integer >= 1, got " + std::to_string(*threads));
    }
    const std::map<std::string, ov::element::Type> types = {
        {"f32", ov::element::f32}, {"bf16", ov::element::bf16}, {"f16", ov::element::f16}};
    config_ = {ov::hint::inference_precision(types.at(precision)),
               ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY)};
    if (threads) config_.emplace(ov::inference_num_threads(*threads));
    const std::map<std::string, const ModelFile*> files = {
        {"feature", &manifest_.feature}, {"flow", &manifest_.flow}, {"warp", &manifest_.warp}, {"task", &manifest_.task}};
    for (const std::string& role : kRoles) {
      files_[role] = files.at(role);
      models_[role] = core_.read_model(manifest_.path(*files.at(role)).string());  // each size compiles a clone
    }
  }

  const SizeRange& sizes() const override { return manifest_.sizes; }
  const std::vector<std::string>& class_names() const override { return manifest_.class_names; }
  TaskKind task_kind() const override { return manifest_.task_kind; }
  int max_detections() const override { return manifest_.max_detections; }

  HandlePtr upload(const ImageView& image) override {
    check_image(image, "upload(image)");
    std::lock_guard<std::mutex> lock(mutex_);
    // Compiled here, on a new size, so that the stages' timings stay steady.
    std::shared_ptr<Tensor> frame = compiled(image.height, image.width).frames.take();
    const std::size_t row = static_cast<std::size_t>(image.width) * 3;
    auto* target = static_cast<std::uint8_t*>(frame->tensor.data());
    for (int y = 0; y < image.height; ++y) std::memcpy(target + y * row, image.data + y * image.stride, row);
    return frame;
  }

  HandlePtr feature(const HandlePtr& frame) override {
    const ov::Tensor& image = handle_as<Tensor>(frame, "feature(frame)").tensor;
    std::lock_guard<std::mutex> lock(mutex_);
    const ov::Shape shape = image.get_shape();
    return networks(shape[1], shape[2]).at("feature").run({{"frame", &image}})[0];
  }

  HandlePtr flow(const HandlePtr& key_frame, const HandlePtr& frame) override {
    const ov::Tensor& key = handle_as<Tensor>(key_frame, "flow(key_frame)").tensor;
    const ov::Tensor& image = handle_as<Tensor>(frame, "flow(frame)").tensor;
    if (key.get_shape() != image.get_shape()) {
      throw InvalidArgument("flow(key_frame, frame): the frames differ in size; a new size needs a key frame");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    const ov::Shape shape = image.get_shape();
    auto out = networks(shape[1], shape[2]).at("flow").run({{"key_frame", &key}, {"frame", &image}});
    return std::make_shared<Flow>(std::move(out[0]), std::move(out[1]));
  }

  HandlePtr warp(const HandlePtr& key_feat, const HandlePtr& flow) override {
    const ov::Tensor& feat = handle_as<Tensor>(key_feat, "warp(key_feat)").tensor;
    const Flow& field = handle_as<Flow>(flow, "warp(flow)");
    std::lock_guard<std::mutex> lock(mutex_);
    return at_feature_size(field.flow->tensor)
        .at("warp")
        .run({{"key_feat", &feat}, {"flow", &field.flow->tensor}, {"scale", &field.scale->tensor}})[0];
  }

  HandlePtr task(const HandlePtr& feat) override {
    const ov::Tensor& features = handle_as<Tensor>(feat, "task(feat)").tensor;
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<TensorPtr> outputs = at_feature_size(features).at("task").run({{"feat", &features}});
    if (manifest_.task_kind == TaskKind::detection) return std::make_shared<PaddedDetections>(std::move(outputs));
    return outputs[0];
  }

  Labels download(const HandlePtr& labels) override {
    if (manifest_.task_kind == TaskKind::detection) {
      throw wrong_task("download(labels)", manifest_.task_kind, "call download_detections()");
    }
    const ov::Tensor& tensor = handle_as<Tensor>(labels, "download(labels)").tensor;
    const ov::Shape shape = tensor.get_shape();
    Labels host{static_cast<int>(shape[1]), static_cast<int>(shape[2]), {}};
    const auto* data = static_cast<const std::uint8_t*>(tensor.data());
    host.data.assign(data, data + tensor.get_byte_size());
    return host;
  }

  std::vector<Detection> download_detections(const HandlePtr& detections) override {
    if (manifest_.task_kind != TaskKind::detection) {
      throw wrong_task("download_detections(detections)", manifest_.task_kind, "call download()");
    }
    const auto& padded = handle_as<PaddedDetections>(detections, "download_detections(detections)").outputs;
    const ov::Tensor& boxes = padded[0]->tensor;
    return from_padded(boxes.data<const float>(), padded[1]->tensor.data<const float>(),
                       padded[2]->tensor.data<const std::int32_t>(), padded[3]->tensor.data<const std::int32_t>()[0],
                       static_cast<int>(boxes.get_shape()[1]));
  }

 private:
  Compiled& compiled(std::size_t height, std::size_t width) {
    const auto size = std::make_pair(static_cast<int>(height), static_cast<int>(width));
    auto found = compiled_.find(size);
    if (found != compiled_.end()) return found->second;
    manifest_.sizes.check(size.first, size.second);
    Compiled compiled{{}, Recycler(ov::element::u8, {1, height, width, 3})};
    for (const std::string& role : kRoles) compiled.networks.emplace(role, compile(role, size.first, size.second));
    return compiled_.emplace(size, std::move(compiled)).first->second;
  }

  std::map<std::string, Network>& networks(std::size_t height, std::size_t width) {
    return compiled(height, width).networks;
  }

  std::map<std::string, Network>& at_feature_size(const ov::Tensor& feat) {
    const ov::Shape shape = feat.get_shape();
    const std::size_t stride = static_cast<std::size_t>(manifest_.feature_stride);
    return networks(shape[2] * stride, shape[3] * stride);
  }

  Network compile(const std::string& role, int height, int width) {
    std::shared_ptr<ov::Model> model = models_.at(role)->clone();
    std::map<std::string, ov::PartialShape> shapes;
    for (const TensorSpec& input : files_.at(role)->inputs) {
      const std::vector<std::size_t> dims = static_shape(input.shape, height, width);
      shapes[input.name] = ov::PartialShape(ov::Shape(dims));
    }
    model->reshape(shapes);
    ov::CompiledModel compiled = core_.compile_model(model, device_, config_);
    Network network{compiled.create_infer_request(), {}};
    const std::vector<std::string>& returned = returned_.at(role);
    for (std::size_t i = 0; i < returned.size(); ++i) {
      const std::string& name = returned[i];
      const ov::Output<const ov::Node> output = compiled.output(name);
      if (role == "task" && manifest_.task_kind == TaskKind::detection && output.get_element_type() != kDetectionTypes[i]) {
        throw ExportError(manifest_.path(manifest_.task).string() + " (task model) gives " + name + " as " +
                          output.get_element_type().get_type_name() + ", not " + kDetectionTypes[i].get_type_name() +
                          ": run `dff export` again");
      }
      network.outputs.emplace_back(name, Recycler(output.get_element_type(), output.get_shape()));
    }
    return network;
  }

  Manifest manifest_;
  std::map<std::string, std::vector<std::string>> returned_;  // kReturned, with this export's task outputs
  ov::Core core_;
  std::string device_;
  ov::AnyMap config_;
  std::map<std::string, const ModelFile*> files_;
  std::map<std::string, std::shared_ptr<ov::Model>> models_;
  std::map<std::pair<int, int>, Compiled> compiled_;
  std::mutex mutex_;  // infer requests are not thread-safe; streams on several threads take turns
};

//! OpenVINO reports its own failures as ov::Exception; the caller gets them as BackendError.
template <typename Call>
auto guarded(Call&& call) -> decltype(call()) {
  try {
    return call();
  } catch (const Error&) {
    throw;
  } catch (const ov::Exception& error) {
    throw BackendError(std::string("OpenVINO failed: ") + error.what());
  }
}

//! The public backend: every call through guarded(), so no OpenVINO exception type reaches the caller.
class GuardedOpenVINO final : public Backend {
 public:
  GuardedOpenVINO(const std::string& export_dir, const Options& options)
      : inner_(guarded([&] { return std::make_unique<OpenVINOBackend>(export_dir, options); })) {}
  const SizeRange& sizes() const override { return inner_->sizes(); }
  const std::vector<std::string>& class_names() const override { return inner_->class_names(); }
  TaskKind task_kind() const override { return inner_->task_kind(); }
  int max_detections() const override { return inner_->max_detections(); }
  HandlePtr upload(const ImageView& image) override { return guarded([&] { return inner_->upload(image); }); }
  HandlePtr feature(const HandlePtr& frame) override { return guarded([&] { return inner_->feature(frame); }); }
  HandlePtr flow(const HandlePtr& key, const HandlePtr& frame) override {
    return guarded([&] { return inner_->flow(key, frame); });
  }
  HandlePtr warp(const HandlePtr& feat, const HandlePtr& flow) override {
    return guarded([&] { return inner_->warp(feat, flow); });
  }
  HandlePtr task(const HandlePtr& feat) override { return guarded([&] { return inner_->task(feat); }); }
  Labels download(const HandlePtr& labels) override { return guarded([&] { return inner_->download(labels); }); }
  std::vector<Detection> download_detections(const HandlePtr& detections) override {
    return guarded([&] { return inner_->download_detections(detections); });
  }

 private:
  std::unique_ptr<OpenVINOBackend> inner_;
};

}  // namespace

std::shared_ptr<Backend> open_openvino(const std::string& export_dir, const Options& options) {
  return std::make_shared<GuardedOpenVINO>(export_dir, options);
}

}  // namespace dff::detail

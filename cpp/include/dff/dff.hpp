// dff: Deep Feature Flow inference (Zhu et al., CVPR 2017, Algorithm 1) embedded in a C++ application.
//
// Open an export directory written by `dff export` on a backend, make one Runtime per video stream, and
// feed it BGR uint8 frames of any size; it returns per-pixel class ids at the frame's size (a segmentation
// export) or boxes in the frame's pixels (a detection export). N_feat runs on key frames only, the flow
// network F and the warp W propagate the key features to the frames between.
//
//   auto backend = dff::open_backend("openvino", "export/", {{"threads", "2"}});
//   dff::Runtime runtime(backend, std::make_unique<dff::FixedInterval>(10));
//   dff::FrameResult result = runtime({mat.data, mat.rows, mat.cols, mat.step});   // a cv::Mat CV_8UC3
//
// Errors are exceptions derived from dff::Error, with the messages the Python runtime gives.
// No OpenCV, OpenVINO or TensorRT header is needed to include this one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace dff {

//! What went wrong, as the C API reports it (dff_status in dff.h has the same values).
enum class ErrorCode : int {
  export_error = 1,      //!< a missing or corrupt export directory, a hash mismatch
  input_size = 2,        //!< a frame size the networks cannot take
  config = 3,            //!< an unknown backend or option, a bad option value
  backend = 4,           //!< the inference engine failed
  invalid_argument = 5,  //!< a null pointer, a row stride shorter than a row, a negative size
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

struct ExportError : Error {
  explicit ExportError(const std::string& message) : Error(ErrorCode::export_error, message) {}
};
struct InputSizeError : Error {
  explicit InputSizeError(const std::string& message) : Error(ErrorCode::input_size, message) {}
};
struct ConfigError : Error {
  explicit ConfigError(const std::string& message) : Error(ErrorCode::config, message) {}
};
struct BackendError : Error {
  explicit BackendError(const std::string& message) : Error(ErrorCode::backend, message) {}
};
struct InvalidArgument : Error {
  explicit InvalidArgument(const std::string& message) : Error(ErrorCode::invalid_argument, message) {}
};

//! A uint8 BGR image borrowed from the caller: rows of width * 3 bytes, `stride` bytes apart (a cv::Mat's step).
struct ImageView {
  const std::uint8_t* data = nullptr;
  int height = 0;
  int width = 0;
  std::size_t stride = 0;
};

//! Allowed frame sizes: multiples of `multiple` between the bounds (inclusive), from the export's manifest.
struct SizeRange {
  int min_height = 0, min_width = 0, max_height = 0, max_width = 0, multiple = 16;

  //! InputSizeError unless height x width is allowed.
  void check(int height, int width) const;
  //! The allowed size (height, width) closest to height x width: what the runtime resizes frames to.
  std::pair<int, int> nearest(int height, int width) const;
};

//! Per-pixel class ids, row-major, height x width.
struct Labels {
  int height = 0;
  int width = 0;
  std::vector<std::uint8_t> data;
};

//! What an export's N_task outputs (its manifest's model.task).
enum class TaskKind : int {
  segmentation = 0,  //!< per-pixel class ids: FrameResult::labels
  detection = 1,     //!< boxes: FrameResult::detections
};

//! "segmentation" or "detection", as the manifest and the Python runtime spell it.
const char* task_name(TaskKind kind);

//! One detected object: a box x1, y1, x2, y2 in pixels (of the frame given to Runtime; of the network's input for
//! Backend::download_detections), its score, and its class: an index into Backend::class_names(), 1 ... C (0 is
//! the background, never detected).
struct Detection {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  float score = 0;
  int class_id = 0;
};

//! Milliseconds per stage of one frame; a key frame has no flow and warp, a non-key frame no feature.
struct StageTimes {
  double preprocess = 0, feature = 0, flow = 0, warp = 0, task = 0, postprocess = 0;
  double total() const { return preprocess + feature + flow + warp + task + postprocess; }
};

//! One frame's result: labels for a segmentation export, detections (best first) for a detection export; the
//! other stays empty.
struct FrameResult {
  Labels labels;                     //!< at the frame's own size
  std::vector<Detection> detections;  //!< boxes in the frame's own pixels
  bool key = false;
  std::int64_t index = 0;  //!< frames since the stream (re)started
  StageTimes timing;
};

//! A tensor on a backend's device. Opaque: only the backend that made it looks inside. It owns its memory.
class Handle {
 public:
  virtual ~Handle() = default;
};
using HandlePtr = std::shared_ptr<const Handle>;

//! An inference engine for the networks of one export: the operations Algorithm 1 asks of it.
//! Arguments are borrowed; returned handles own their memory, so key frames and key features kept by
//! many runtimes are never overwritten. Every method may be called from several threads.
//! A backend of segmentation exports only need not override task_kind(), max_detections() or
//! download_detections().
class Backend {
 public:
  virtual ~Backend() = default;
  virtual const SizeRange& sizes() const = 0;
  virtual const std::vector<std::string>& class_names() const = 0;
  //! What task() outputs: labels (download) or detections (download_detections).
  virtual TaskKind task_kind() const { return TaskKind::segmentation; }
  //! The most detections a frame can have (the export's padded rows); 0 for a segmentation export.
  virtual int max_detections() const { return 0; }
  //! Copies a frame of an allowed size to the device (the caller's memory may be reused at once).
  virtual HandlePtr upload(const ImageView& image) = 0;
  virtual HandlePtr feature(const HandlePtr& frame) = 0;                          //!< f = N_feat(I)
  virtual HandlePtr flow(const HandlePtr& key_frame, const HandlePtr& frame) = 0;  //!< (M, S) = F(I_k, I)
  virtual HandlePtr warp(const HandlePtr& key_feat, const HandlePtr& flow) = 0;    //!< f = W(f_k, M, S)
  virtual HandlePtr task(const HandlePtr& feat) = 0;                              //!< y = N_task(f)
  //! Waits for the labels and copies them to the host, at the network size (ConfigError on a detection export).
  virtual Labels download(const HandlePtr& labels) = 0;
  //! Waits for a detection export's task output and copies its detections to the host, best first, boxes in
  //! pixels of the network's input (ConfigError on a segmentation export).
  virtual std::vector<Detection> download_detections(const HandlePtr& detections);
};

//! Backend options, as `dff run -O KEY=VALUE` takes them: openvino takes device (CPU, GPU, NPU, AUTO),
//! precision (f32, bf16, f16) and threads; tensorrt takes engines, plugin_lib, cuda_graph and device.
using Options = std::map<std::string, std::string>;

//! The backend `name` ("openvino", "tensorrt") over the export in `export_dir`, every file's SHA-256 checked.
std::shared_ptr<Backend> open_backend(const std::string& name, const std::string& export_dir, const Options& options = {});
//! The backends this build of the library has.
std::vector<std::string> backend_names();

//! Algorithm 1, line 6: which frames are key frames. The first frame, the first after reset() and a frame whose
//! size differs from the one before are always key frames; choose() decides the others.
class KeyFrameScheduler {
 public:
  virtual ~KeyFrameScheduler() = default;
  void reset();
  //! Whether `image`, the stream's next frame, is a key frame. Call once per frame, in order.
  bool is_key(const ImageView& image);
  //! Frames since the last key frame (0 on a key frame).
  int since_key() const { return since_key_; }

 protected:
  virtual bool choose(const ImageView& image) = 0;

 private:
  int height_ = -1, width_ = -1;
  int since_key_ = 0;
};

//! The paper's schedule: a key frame every `interval` frames (l in Eq. 7); 1 is per-frame evaluation.
class FixedInterval final : public KeyFrameScheduler {
 public:
  explicit FixedInterval(int interval);
  int interval() const { return interval_; }

 protected:
  bool choose(const ImageView& image) override;

 private:
  int interval_;
};

//! One video stream through one backend. Several runtimes (streams) may share a backend.
class Runtime {
 public:
  Runtime(std::shared_ptr<Backend> backend, std::unique_ptr<KeyFrameScheduler> scheduler);
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
  Runtime(Runtime&&) noexcept;
  Runtime& operator=(Runtime&&) noexcept;
  ~Runtime();

  //! The labels or detections of the stream's next frame (any size; resized to the nearest allowed size, the
  //! labels resized back and the boxes scaled back to the frame's size).
  FrameResult operator()(const ImageView& image);
  //! Starts a new stream: the next frame is a key frame.
  void reset();
  //! Runs every stage once at the network size for height x width frames; the stream's state is untouched.
  void warmup(int height, int width);
  //! The size (height, width) frames of height x width are resized to before inference.
  std::pair<int, int> network_size(int height, int width) const;
  Backend& backend() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace dff

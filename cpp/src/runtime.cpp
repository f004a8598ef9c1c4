// Algorithm 1 of the paper on one stream, over any backend (the loop of dff/runtime/runtime.py, line by line).
#include <chrono>

#include "detections.hpp"
#include "dff/dff.hpp"
#include "frames.hpp"

namespace dff {

struct Runtime::State {
  std::shared_ptr<Backend> backend;
  std::unique_ptr<KeyFrameScheduler> scheduler;
  HandlePtr key_frame, key_feat;
  std::int64_t frames = 0;
};

namespace {

//! Milliseconds since the previous lap, steady clock.
class Stopwatch {
 public:
  double lap() {
    const auto now = std::chrono::steady_clock::now();
    const double ms = std::chrono::duration<double, std::milli>(now - last_).count();
    last_ = now;
    return ms;
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

}  // namespace

Runtime::Runtime(std::shared_ptr<Backend> backend, std::unique_ptr<KeyFrameScheduler> scheduler)
    : state_(std::make_unique<State>()) {
  if (!backend) throw InvalidArgument("dff::Runtime needs a backend, got a null pointer");
  if (!scheduler) throw InvalidArgument("dff::Runtime needs a key-frame scheduler, got a null pointer");
  state_->backend = std::move(backend);
  state_->scheduler = std::move(scheduler);
}

Runtime::Runtime(Runtime&&) noexcept = default;
Runtime& Runtime::operator=(Runtime&&) noexcept = default;
Runtime::~Runtime() = default;

void Runtime::reset() {
  state_->scheduler->reset();
  state_->key_frame.reset();
  state_->key_feat.reset();
  state_->frames = 0;
}

std::pair<int, int> Runtime::network_size(int height, int width) const {
  return state_->backend->sizes().nearest(height, width);
}

Backend& Runtime::backend() const { return *state_->backend; }

FrameResult Runtime::operator()(const ImageView& image) {
  State& s = *state_;
  const std::string where = "frame " + std::to_string(s.frames);
  detail::check_image(image, where.c_str());
  Backend& backend = *s.backend;
  FrameResult result;
  Stopwatch watch;
  const auto [height, width] = network_size(image.height, image.width);
  HandlePtr frame;
  if (height == image.height && width == image.width) {
    frame = backend.upload(image);
  } else {
    const cv::Mat resized = detail::resize_frame(image, height, width);
    frame = backend.upload({resized.data, resized.rows, resized.cols, resized.step});
  }
  result.timing.preprocess = watch.lap();
  result.key = s.scheduler->is_key(image);  // line 6
  HandlePtr feat;
  if (result.key) {
    s.key_frame = frame;                            // line 7: k = i
    s.key_feat = feat = backend.feature(frame);     // line 8: f_k = N_feat(I_k)
    result.timing.feature = watch.lap();
  } else {
    const HandlePtr flow = backend.flow(s.key_frame, frame);  // line 11: F(I_k, I_i), S(I_k, I_i)
    result.timing.flow = watch.lap();
    feat = backend.warp(s.key_feat, flow);  // line 11: f_i = W(f_k, M, S)
    result.timing.warp = watch.lap();
  }
  const HandlePtr output = backend.task(feat);  // lines 9 and 12: y = N_task(f)
  result.timing.task = watch.lap();
  if (backend.task_kind() == TaskKind::detection) {
    result.detections = detail::rescaled(backend.download_detections(output), {height, width}, {image.height, image.width});
  } else {
    result.labels = detail::restore_labels(backend.download(output), image.height, image.width);
  }
  result.timing.postprocess = watch.lap();
  result.index = s.frames++;
  return result;
}

void Runtime::warmup(int height, int width) {
  Backend& backend = *state_->backend;
  const auto [h, w] = network_size(height, width);
  const std::vector<std::uint8_t> zeros(static_cast<std::size_t>(h) * w * 3);
  const HandlePtr frame = backend.upload({zeros.data(), h, w, static_cast<std::size_t>(w) * 3});
  const HandlePtr output = backend.task(backend.warp(backend.feature(frame), backend.flow(frame, frame)));
  if (backend.task_kind() == TaskKind::detection) {
    backend.download_detections(output);
  } else {
    backend.download(output);
  }
}

}  // namespace dff

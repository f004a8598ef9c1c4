#include "detections.hpp"

namespace dff {

const char* task_name(TaskKind kind) { return kind == TaskKind::detection ? "detection" : "segmentation"; }

std::vector<Detection> Backend::download_detections(const HandlePtr&) {
  if (task_kind() == TaskKind::detection) {  // a subclass that says it detects but reads no boxes
    throw BackendError("download_detections(): this backend reports a detection export but does not override it");
  }
  throw detail::wrong_task("download_detections()", task_kind(), "call download()");
}

namespace detail {

std::vector<Detection> from_padded(const float* boxes, const float* scores, const std::int32_t* classes,
                                   std::int32_t count, int rows) {
  if (count < 0 || count > rows) {
    throw BackendError("the task network returned a detection count of " + std::to_string(count) + ", outside 0.." +
                       std::to_string(rows) + ": the export is damaged; run `dff export` again");
  }
  std::vector<Detection> detections(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < detections.size(); ++i) {
    const float* box = boxes + 4 * i;
    detections[i] = {box[0], box[1], box[2], box[3], scores[i], classes[i]};
  }
  return detections;
}

std::vector<Detection> rescaled(std::vector<Detection> detections, std::pair<int, int> network, std::pair<int, int> frame) {
  if (network == frame) return detections;
  // numpy: frame / network in float64, cast to a float32 array, multiplied with the float32 boxes.
  const float sy = static_cast<float>(static_cast<double>(frame.first) / network.first);
  const float sx = static_cast<float>(static_cast<double>(frame.second) / network.second);
  for (Detection& d : detections) {
    d.x1 *= sx, d.y1 *= sy, d.x2 *= sx, d.y2 *= sy;
  }
  return detections;
}

ConfigError wrong_task(const std::string& where, TaskKind kind, const std::string& fix) {
  const bool detection = kind == TaskKind::detection;
  return ConfigError(where + ": this is a " + task_name(kind) + " export: it gives " +
                     (detection ? "boxes, not per-pixel labels" : "per-pixel labels, not boxes") + "; " + fix);
}

}  // namespace detail
}  // namespace dff

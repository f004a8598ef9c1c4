// Key-frame scheduling, Algorithm 1 line 6 (dff/runtime/scheduler.py).
#include <string>

#include "dff/dff.hpp"

namespace dff {

void KeyFrameScheduler::reset() {
  height_ = width_ = -1;
  since_key_ = 0;
}

bool KeyFrameScheduler::is_key(const ImageView& image) {
  // Features of another size cannot be propagated, so a new size starts a key frame.
  const bool key = image.height != height_ || image.width != width_ || choose(image);
  height_ = image.height;
  width_ = image.width;
  since_key_ = key ? 0 : since_key_ + 1;
  return key;
}

FixedInterval::FixedInterval(int interval) : interval_(interval) {
  if (interval < 1) throw ConfigError("key-frame interval must be an integer >= 1, got " + std::to_string(interval));
}

bool FixedInterval::choose(const ImageView&) { return since_key() + 1 >= interval_; }

}  // namespace dff

#include "frames.hpp"

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <string>

namespace dff {

void SizeRange::check(int height, int width) const {
  if (!(min_height <= height && height <= max_height && min_width <= width && width <= max_width &&
        height % multiple == 0 && width % multiple == 0)) {
    throw InputSizeError("frame size " + std::to_string(height) + "x" + std::to_string(width) +
                         " (HxW) is outside this export's allowed sizes: heights " + std::to_string(min_height) +
                         ".." + std::to_string(max_height) + " and widths " + std::to_string(min_width) + ".." +
                         std::to_string(max_width) + ", multiples of " + std::to_string(multiple) +
                         "; resize the frames (dff::Runtime resizes to the nearest allowed size itself) or export "
                         "again with --height/--width or --min-size/--max-size");
  }
}

std::pair<int, int> SizeRange::nearest(int height, int width) const {
  // Python's round() rounds halves to even; std::nearbyint does too in the default rounding mode.
  auto fit = [this](int side, int low, int high) {
    const int rounded = static_cast<int>(std::nearbyint(static_cast<double>(side) / multiple)) * multiple;
    return std::min(high, std::max(low, rounded));
  };
  return {fit(height, min_height, max_height), fit(width, min_width, max_width)};
}

namespace detail {

void check_image(const ImageView& image, const char* where) {
  if (image.data == nullptr) throw InvalidArgument(std::string(where) + ": the image pointer is null");
  if (image.height <= 0 || image.width <= 0) {
    throw InvalidArgument(std::string(where) + ": expected a uint8 H×W×3 BGR image, got size " +
                          std::to_string(image.height) + "x" + std::to_string(image.width));
  }
  if (image.stride < static_cast<std::size_t>(image.width) * 3) {
    throw InvalidArgument(std::string(where) + ": row stride " + std::to_string(image.stride) +
                          " bytes is shorter than a row of " + std::to_string(image.width) + " BGR pixels (" +
                          std::to_string(image.width * 3) + " bytes)");
  }
}

cv::Mat resize_frame(const ImageView& image, int height, int width) {
  const cv::Mat source(image.height, image.width, CV_8UC3, const_cast<std::uint8_t*>(image.data), image.stride);
  cv::Mat resized;
  cv::resize(source, resized, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
  return resized;
}

Labels restore_labels(Labels labels, int height, int width) {
  if (labels.height == height && labels.width == width) return labels;
  const cv::Mat source(labels.height, labels.width, CV_8UC1, labels.data.data());
  Labels restored{height, width, std::vector<std::uint8_t>(static_cast<std::size_t>(height) * width)};
  cv::Mat target(height, width, CV_8UC1, restored.data.data());
  cv::resize(source, target, target.size(), 0, 0, cv::INTER_NEAREST);
  return restored;
}

}  // namespace detail
}  // namespace dff

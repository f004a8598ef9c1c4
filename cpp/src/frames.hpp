// The host's only preprocessing: resize a frame to an allowed size, and the labels back (dff/runtime/runtime.py).
#pragma once

#include <opencv2/core.hpp>

#include "dff/dff.hpp"

namespace dff::detail {

//! InvalidArgument unless `image` is a readable BGR image (non-null, positive size, stride >= width * 3).
void check_image(const ImageView& image, const char* where);
//! `image` resized to height x width with cv::resize INTER_LINEAR, as the Python runtime does.
cv::Mat resize_frame(const ImageView& image, int height, int width);
//! `labels` resized to height x width with INTER_NEAREST (class ids must not be blended); moved if already so.
Labels restore_labels(Labels labels, int height, int width);

}  // namespace dff::detail

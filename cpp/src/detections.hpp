// A detection export's task outputs on the host: padded rows to Detections, network pixels to frame pixels
// (dff/runtime/detections.py), and the one error for a consumer given the other task's export.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dff/dff.hpp"

namespace dff::detail {

//! The first `count` of `rows` padded rows: boxes (rows, 4), scores (rows,), classes (rows,), as the task graph
//! writes them; BackendError if `count` is outside 0..rows.
std::vector<Detection> from_padded(const float* boxes, const float* scores, const std::int32_t* classes,
                                   std::int32_t count, int rows);

//! Boxes of a frame resized to `network` (height, width) mapped back onto the frame of size `frame`: the float32
//! scale factors and products of Detections.rescaled, so that boxes equal the Python runtime's bit for bit.
std::vector<Detection> rescaled(std::vector<Detection> detections, std::pair<int, int> network, std::pair<int, int> frame);

//! "<where>: this is a <kind> export: it gives <what it gives>, not <what the other gives>; <fix>".
ConfigError wrong_task(const std::string& where, TaskKind kind, const std::string& fix);

}  // namespace dff::detail

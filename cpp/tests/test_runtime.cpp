// The C++ API on a real export (argv[1]): missing and tampered exports, bad options, bad frames and handles are
// clear errors; the schedule, resizing, row strides and streams sharing a backend behave as the Python runtime's.
// On a detection export (argv[2]): detections at the frame's size, and each task's export refused by the other
// task's calls. Exact parity with the Python runtime is tests/test_cpp.py's.
// Built and run under AddressSanitizer and UndefinedBehaviorSanitizer too (cpp/ci.sh).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "dff/dff.hpp"

namespace fs = std::filesystem;

namespace {

int failures = 0;

void check(bool condition, const std::string& what) {
  if (!condition) {
    std::cerr << "FAILED: " << what << "\n";
    ++failures;
  }
}

//! `call` must throw `E` whose message contains `needle`.
template <typename E>
void expect_error(const std::string& what, const std::function<void()>& call, const std::string& needle) {
  try {
    call();
    check(false, what + ": no error");
  } catch (const E& error) {
    check(std::string(error.what()).find(needle) != std::string::npos,
          what + ": message '" + error.what() + "' lacks '" + needle + "'");
  } catch (const std::exception& error) {
    check(false, what + ": wrong exception type: " + error.what());
  }
}

//! A deterministic textured BGR frame that moves with t, `pad` spare bytes at the end of each row.
std::vector<std::uint8_t> frame(int height, int width, int t, std::size_t pad = 0) {
  const std::size_t stride = static_cast<std::size_t>(width) * 3 + pad;
  std::vector<std::uint8_t> data(stride * height, 77);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      std::uint8_t* p = &data[y * stride + x * 3];
      p[0] = static_cast<std::uint8_t>((x + 2 * t) * 5);
      p[1] = static_cast<std::uint8_t>(((x + t) / 8 + y / 8) % 2 ? 220 : 30);
      p[2] = static_cast<std::uint8_t>(y * 3 + t);
    }
  }
  return data;
}

dff::ImageView view(const std::vector<std::uint8_t>& data, int height, int width, std::size_t pad = 0) {
  return {data.data(), height, width, static_cast<std::size_t>(width) * 3 + pad};
}

fs::path copy_export(const fs::path& source, const fs::path& target) {
  fs::remove_all(target);
  fs::copy(source, target, fs::copy_options::recursive);
  return target;
}

void test_exports(const fs::path& export_dir, const fs::path& scratch) {
  expect_error<dff::ExportError>("missing directory", [&] { dff::open_backend("openvino", (scratch / "nowhere").string()); },
                                 "does not exist: create it with `dff export CHECKPOINT --out");
  fs::create_directories(scratch / "empty");
  expect_error<dff::ExportError>("no manifest", [&] { dff::open_backend("openvino", (scratch / "empty").string()); },
                                 "has no manifest.json: it is not a dff export");

  const fs::path tampered = copy_export(export_dir, scratch / "tampered");
  {
    std::fstream task(tampered / "task.onnx", std::ios::in | std::ios::out | std::ios::binary);
    task.seekp(100);
    task.put('\x5a');
  }
  expect_error<dff::ExportError>("tampered file", [&] { dff::open_backend("openvino", tampered.string()); },
                                 "task.onnx (task model) does not match the SHA-256 in manifest.json");
  fs::remove(tampered / "flow.onnx");
  expect_error<dff::ExportError>("missing file", [&] { dff::open_backend("openvino", tampered.string()); },
                                 "flow.onnx (flow model) is missing from the export: run `dff export` again");

  const fs::path corrupt = copy_export(export_dir, scratch / "corrupt");
  fs::resize_file(corrupt / "manifest.json", 40);
  expect_error<dff::ExportError>("truncated manifest", [&] { dff::open_backend("openvino", corrupt.string()); },
                                 "manifest.json is corrupt: ");
}

void test_options(const std::string& export_dir) {
  expect_error<dff::ConfigError>("unknown backend", [&] { dff::open_backend("onnx", export_dir); },
                                 "unknown backend 'onnx'; the backends are ['openvino'");
  expect_error<dff::ConfigError>("unknown option", [&] { dff::open_backend("openvino", export_dir, {{"thread", "1"}}); },
                                 "backend 'openvino' takes no option(s) ['thread']; its options are");
  expect_error<dff::ConfigError>("bad precision",
                                 [&] { dff::open_backend("openvino", export_dir, {{"precision", "int4"}}); },
                                 "option precision expects one of 'f32', 'bf16', 'f16', got 'int4'");
  expect_error<dff::ConfigError>("bad threads", [&] { dff::open_backend("openvino", export_dir, {{"threads", "abc"}}); },
                                 "option threads expects an integer, got 'abc'");
  expect_error<dff::ConfigError>("bad device", [&] { dff::open_backend("openvino", export_dir, {{"device", "XPU"}}); },
                                 "OpenVINO device 'XPU' is not available here");
  expect_error<dff::ConfigError>("interval 0", [] { dff::FixedInterval(0); }, "key-frame interval must be an integer >= 1");
}

void test_runtime(const std::string& export_dir) {
  auto backend = dff::open_backend("openvino", export_dir, {{"threads", "1"}});
  dff::Runtime runtime(backend, std::make_unique<dff::FixedInterval>(3));
  const int h = 100, w = 120;  // not an allowed size: resized to the nearest one (96x128) and back
  std::vector<bool> keys;
  std::vector<std::vector<std::uint8_t>> labels;
  for (int t = 0; t < 5; ++t) {
    const auto data = frame(h, w, t);
    const dff::FrameResult result = runtime(view(data, h, w));
    check(result.labels.height == h && result.labels.width == w, "labels at the frame's size");
    check(result.index == t, "frame index");
    keys.push_back(result.key);
    labels.push_back(result.labels.data);
  }
  check((keys == std::vector<bool>{true, false, false, true, false}), "FixedInterval(3) schedule");
  check(runtime.network_size(h, w) == std::make_pair(96, 128), "nearest allowed size of 100x120 is 96x128");

  // The same frames with padded rows (a cv::Mat ROI's stride) give the same labels; a second stream on the same
  // backend interleaved with the first does not disturb it.
  dff::Runtime padded(backend, std::make_unique<dff::FixedInterval>(3));
  dff::Runtime other(backend, std::make_unique<dff::FixedInterval>(2));
  runtime.reset();
  for (int t = 0; t < 5; ++t) {
    const auto data = frame(h, w, t, 13);
    const auto busy = frame(64, 64, 40 - t);
    other(view(busy, 64, 64));
    const dff::FrameResult result = padded(view(data, h, w, 13));
    check(result.labels.data == labels[t], "padded rows and a shared backend give the labels of frame " + std::to_string(t));
    check(runtime(view(frame(h, w, t), h, w)).labels.data == labels[t], "reset() restarts the stream");
  }
  // Two streams on two threads share the backend: each gets the labels it gets alone.
  std::vector<std::vector<std::uint8_t>> threaded[2];
  std::vector<std::thread> threads;
  for (int s = 0; s < 2; ++s) {
    threads.emplace_back([&, s] {
      try {
        dff::Runtime stream(backend, std::make_unique<dff::FixedInterval>(3));
        for (int t = 0; t < 5; ++t) threaded[s].push_back(stream(view(frame(h, w, t), h, w)).labels.data);
      } catch (const std::exception&) {
        threaded[s].clear();  // reported by the check below, on the main thread
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  check(threaded[0] == labels && threaded[1] == labels, "streams on two threads get their own labels");

  // A handle kept across later calls keeps its values (recycled memory is only memory no handle refers to).
  const auto first = frame(96, 128, 0);
  const dff::HandlePtr kept_frame = backend->upload(view(first, 96, 128));
  const dff::HandlePtr kept_labels = backend->task(backend->feature(kept_frame));
  const dff::Labels before = backend->download(kept_labels);
  for (int t = 1; t < 6; ++t) {
    const auto later = frame(96, 128, 10 * t);
    const dff::HandlePtr other_frame = backend->upload(view(later, 96, 128));
    backend->download(backend->task(backend->warp(backend->feature(other_frame), backend->flow(kept_frame, other_frame))));
  }
  check(backend->download(kept_labels).data == before.data, "a kept labels handle is never overwritten");
  check(backend->download(backend->task(backend->feature(kept_frame))).data == before.data,
        "a kept frame handle is never overwritten");

  // bf16, the fast path on CPUs with native bf16, runs and stays close to f32.
  dff::Runtime fast(dff::open_backend("openvino", export_dir, {{"threads", "1"}, {"precision", "bf16"}}),
                    std::make_unique<dff::FixedInterval>(3));
  std::size_t same = 0, total = 0;
  for (int t = 0; t < 5; ++t) {
    const std::vector<std::uint8_t> got = fast(view(frame(h, w, t), h, w)).labels.data;
    for (std::size_t i = 0; i < got.size(); ++i) same += got[i] == labels[t][i];
    total += got.size();
  }
  check(same >= 0.95 * total, "bf16 labels agree with f32 on " + std::to_string(100.0 * same / total) + "% of pixels");

  const auto big = frame(128, 160, 0);
  check(padded(view(big, 128, 160)).key, "a frame of a new size is a key frame");

  const auto data = frame(h, w, 0);
  expect_error<dff::InvalidArgument>("null frame", [&] { runtime({nullptr, h, w, w * 3u}); }, "the image pointer is null");
  expect_error<dff::InvalidArgument>("short stride", [&] { runtime({data.data(), h, w, w * 3u - 1}); },
                                     "row stride 359 bytes is shorter than a row of 120 BGR pixels (360 bytes)");
  expect_error<dff::InvalidArgument>("empty frame", [&] { runtime({data.data(), 0, w, w * 3u}); }, "got size 0x120");
  expect_error<dff::InputSizeError>("upload of a size not allowed", [&] { backend->upload(view(data, h, w)); },
                                    "frame size 100x120 (HxW) is outside this export's allowed sizes");
  expect_error<dff::InvalidArgument>("null handle", [&] { backend->feature(nullptr); }, "feature(frame): expected a handle");
  expect_error<dff::InvalidArgument>("null backend", [] { dff::Runtime(nullptr, std::make_unique<dff::FixedInterval>(1)); },
                                     "needs a backend");
}

//! `small` with each pixel repeated into a 2 x 2 block: resizing it back by half (bilinear, or the area average
//! OpenCV takes for exact halves) gives `small` exactly.
std::vector<std::uint8_t> doubled(const std::vector<std::uint8_t>& small, int height, int width) {
  std::vector<std::uint8_t> big(static_cast<std::size_t>(height) * width * 12);
  for (int y = 0; y < 2 * height; ++y) {
    for (int x = 0; x < 2 * width; ++x) {
      std::copy_n(&small[((y / 2) * width + x / 2) * 3], 3, &big[(static_cast<std::size_t>(y) * 2 * width + x) * 3]);
    }
  }
  return big;
}

void test_detection(const std::string& segmentation_dir, const std::string& detection_dir, const fs::path& scratch) {
  auto backend = dff::open_backend("openvino", detection_dir, {{"threads", "1"}});
  check(backend->task_kind() == dff::TaskKind::detection, "a detection export's task kind");
  check(std::string(dff::task_name(backend->task_kind())) == "detection", "task_name");
  const int most = backend->max_detections();
  const int classes = static_cast<int>(backend->class_names().size());
  check(most >= 1, "a detection export has a maximum number of detections");
  dff::Runtime runtime(backend, std::make_unique<dff::FixedInterval>(3));
  const int h = 100, w = 120;  // resized to 96x128 inside: the boxes are scaled back onto 100x120
  std::size_t found = 0;
  for (int t = 0; t < 5; ++t) {
    const dff::FrameResult result = runtime(view(frame(h, w, t), h, w));
    check(result.key == (t % 3 == 0), "detection frames follow the schedule");
    check(result.labels.data.empty() && result.labels.height == 0, "a detection export gives no labels");
    check(static_cast<int>(result.detections.size()) <= most, "at most max_detections() detections");
    found += result.detections.size();
    for (std::size_t i = 0; i < result.detections.size(); ++i) {
      const dff::Detection& d = result.detections[i];
      check(1 <= d.class_id && d.class_id < classes, "class ids are 1 ... C (0 is the background)");
      check(0 <= d.x1 && d.x1 <= d.x2 && d.x2 <= w + 1e-3f && 0 <= d.y1 && d.y1 <= d.y2 && d.y2 <= h + 1e-3f,
            "boxes lie in the frame's own pixels");
      check(0 < d.score && d.score <= 1, "scores are probabilities");
      check(i == 0 || result.detections[i - 1].score >= d.score, "detections come best first");
    }
  }
  check(found > 0, "the detector finds boxes");

  // A frame of twice the largest allowed size is halved on the way in: its boxes are the small frame's, doubled.
  const auto small = frame(256, 256, 4);
  const auto big = doubled(small, 256, 256);
  dff::Runtime at_size(backend, std::make_unique<dff::FixedInterval>(1)), twice(backend, std::make_unique<dff::FixedInterval>(1));
  const std::vector<dff::Detection> expected = at_size(view(small, 256, 256)).detections;
  const std::vector<dff::Detection> doubled_boxes = twice(view(big, 512, 512)).detections;
  bool same = expected.size() == doubled_boxes.size() && !expected.empty();
  for (std::size_t i = 0; same && i < expected.size(); ++i) {
    const dff::Detection &a = expected[i], &b = doubled_boxes[i];
    same = b.x1 == 2 * a.x1 && b.y1 == 2 * a.y1 && b.x2 == 2 * a.x2 && b.y2 == 2 * a.y2 && a.score == b.score &&
           a.class_id == b.class_id;
  }
  check(same, "boxes are scaled from the network's size to the frame's");

  // Each task's export refused by the other task's calls, in one line that names the right call.
  const auto data = frame(96, 128, 0);
  const dff::HandlePtr boxes = backend->task(backend->feature(backend->upload(view(data, 96, 128))));
  expect_error<dff::ConfigError>("labels of a detection export", [&] { backend->download(boxes); },
                                 "download(labels): this is a detection export: it gives boxes, not per-pixel labels; "
                                 "call download_detections()");
  auto segmenter = dff::open_backend("openvino", segmentation_dir, {{"threads", "1"}});
  check(segmenter->task_kind() == dff::TaskKind::segmentation && segmenter->max_detections() == 0,
        "a segmentation export's task kind");
  const dff::HandlePtr labels = segmenter->task(segmenter->feature(segmenter->upload(view(data, 96, 128))));
  expect_error<dff::ConfigError>("detections of a segmentation export", [&] { segmenter->download_detections(labels); },
                                 "this is a segmentation export: it gives per-pixel labels, not boxes; call download()");
  expect_error<dff::InvalidArgument>("a labels handle for detections", [&] { backend->download_detections(labels); },
                                     "expected a handle from this backend");
  dff::Runtime segmentation(segmenter, std::make_unique<dff::FixedInterval>(3));
  const dff::FrameResult labelled = segmentation(view(data, 96, 128));
  check(labelled.detections.empty() && labelled.labels.data.size() == 96u * 128u, "a segmentation export gives no boxes");

  // A manifest naming a task this library does not run.
  const fs::path unknown = copy_export(detection_dir, scratch / "unknown-task");
  std::ifstream in(unknown / "manifest.json");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  const std::string task = "\"task\": \"detection\"";
  check(text.find(task) != std::string::npos, "the manifest records the task");
  text.replace(text.find(task), task.size(), "\"task\": \"tracking\"");
  std::ofstream(unknown / "manifest.json") << text;
  expect_error<dff::ExportError>("unknown task", [&] { dff::open_backend("openvino", unknown.string()); },
                                 "has task 'tracking', this dff runs 'segmentation' and 'detection' exports");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: test_runtime EXPORT_DIR DETECTION_EXPORT_DIR\n";
    return 2;
  }
  const fs::path scratch = fs::temp_directory_path() / ("dff-test-runtime-" + std::to_string(::getpid()));
  fs::create_directories(scratch);
  try {
    test_exports(argv[1], scratch);
    test_options(argv[1]);
    test_runtime(argv[1]);
    test_detection(argv[1], argv[2], scratch);
  } catch (const std::exception& error) {
    check(false, std::string("unexpected error: ") + error.what());
  }
  fs::remove_all(scratch);
  std::cout << (failures ? "test_runtime: FAILED " + std::to_string(failures) + " check(s)\n" : "test_runtime: all checks passed\n");
  return failures ? 1 : 0;
}

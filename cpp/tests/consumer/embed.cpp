// The README's example: a video through the deep feature flow runtime, one line per frame: the class of the centre
// pixel (a segmentation export) or the best box (a detection export).
#include <dff/dff.hpp>
#include <opencv2/videoio.hpp>

#include <cstdio>
#include <string>

int main(int argc, char** argv) try {
  if (argc != 3) return std::fprintf(stderr, "usage: embed EXPORT_DIR VIDEO\n"), 2;
  auto backend = dff::open_backend("openvino", argv[1], {{"threads", "2"}});
  dff::Runtime runtime(backend, std::make_unique<dff::FixedInterval>(5));
  const auto& names = backend->class_names();
  cv::VideoCapture video(argv[2]);
  for (cv::Mat frame; video.read(frame);) {
    dff::FrameResult result = runtime({frame.data, frame.rows, frame.cols, frame.step});
    std::string what;
    if (backend->task_kind() == dff::TaskKind::detection) {
      what = std::to_string(result.detections.size()) + " boxes";
      if (!result.detections.empty()) {
        const dff::Detection& best = result.detections.front();
        what += ", the best a " + names[best.class_id] + " (" + std::to_string(best.score) + ") at x " +
                std::to_string(static_cast<int>(best.x1)) + ".." + std::to_string(static_cast<int>(best.x2));
      }
    } else {
      what = "class of the centre pixel: " + names[result.labels.data[result.labels.data.size() / 2]];
    }
    std::printf("frame %lld: %s, %.1f ms, %s\n", static_cast<long long>(result.index), result.key ? "key" : "propagated",
                result.timing.total(), what.c_str());
  }
} catch (const dff::Error& error) {
  std::fprintf(stderr, "error: %s\n", error.what());
  return 1;
}

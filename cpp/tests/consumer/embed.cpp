// The README's example: a video through the deep feature flow runtime, one line per frame.
#include <dff/dff.hpp>
#include <opencv2/videoio.hpp>

#include <cstdio>

int main(int argc, char** argv) try {
  if (argc != 3) return std::fprintf(stderr, "usage: embed EXPORT_DIR VIDEO\n"), 2;
  auto backend = dff::open_backend("openvino", argv[1], {{"threads", "2"}});
  dff::Runtime runtime(backend, std::make_unique<dff::FixedInterval>(5));
  cv::VideoCapture video(argv[2]);
  for (cv::Mat frame; video.read(frame);) {
    dff::FrameResult result = runtime({frame.data, frame.rows, frame.cols, frame.step});
    std::printf("frame %lld: %s, %.1f ms, class of the centre pixel: %s\n", static_cast<long long>(result.index),
                result.key ? "key" : "propagated", result.timing.total(),
                backend->class_names()[result.labels.data[result.labels.data.size() / 2]].c_str());
  }
} catch (const dff::Error& error) {
  std::fprintf(stderr, "error: %s\n", error.what());
  return 1;
}

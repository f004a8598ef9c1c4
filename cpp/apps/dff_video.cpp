// dff_video: a video file or a folder of frames through the C++ runtime; label PNGs (a segmentation export) or
// detections as JSON lines (a detection export), an overlay video and a timing summary out. The C++ counterpart
// of `dff run`, and the example of embedding libdff.
//
//   dff_video EXPORT_DIR INPUT [--backend openvino] [-l 10] [-O KEY=VALUE]... [--labels-dir DIR]
//             [--detections OUT.jsonl] [--overlay OUT.mp4] [--summary OUT.json] [--warmup] [--max-frames N]
//
// Every file is written to a temporary name and renamed when complete; Ctrl-C or SIGTERM removes the unfinished
// ones and keeps those already written (exit 130 / 143).
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

#include "dff/dff.hpp"

namespace fs = std::filesystem;

namespace {

volatile std::sig_atomic_t stop_signal = 0;
void on_signal(int signal) { stop_signal = signal; }

//! A user mistake or an output that cannot be written: printed as one line, exit 1.
struct AppError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Arguments {
  std::string export_dir, input, backend = "openvino";
  int interval = 10;
  long long max_frames = -1;  // all
  dff::Options options;
  std::optional<fs::path> labels_dir, detections, overlay, summary;
  bool warmup = false;
};

constexpr const char* kUsage =
    "usage: dff_video EXPORT_DIR INPUT [--backend openvino] [-l N] [-O KEY=VALUE]... [--labels-dir DIR]\n"
    "                 [--detections OUT.jsonl] [--overlay OUT.mp4] [--summary OUT.json] [--warmup] [--max-frames N]\n";

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << kUsage << "dff_video: error: " << problem << "\n";
  std::exit(2);
}

Arguments parse(int argc, char** argv) {
  Arguments args;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--backend") {
      args.backend = value();
    } else if (arg == "-l" || arg == "--key-interval") {
      const std::string text = value();
      try {
        args.interval = std::stoi(text);
      } catch (const std::logic_error&) {
        usage(arg + " expects an integer, got '" + text + "'");
      }
    } else if (arg == "--max-frames") {
      const std::string text = value();
      try {
        args.max_frames = std::stoll(text);
      } catch (const std::logic_error&) {
        usage(arg + " expects an integer, got '" + text + "'");
      }
    } else if (arg == "-O") {
      const std::string option = value();
      const std::size_t equals = option.find('=');
      if (equals == std::string::npos) usage("-O expects KEY=VALUE, got '" + option + "'");
      args.options[option.substr(0, equals)] = option.substr(equals + 1);
    } else if (arg == "--labels-dir") {
      args.labels_dir = value();
    } else if (arg == "--detections") {
      args.detections = value();
    } else if (arg == "--overlay") {
      args.overlay = value();
    } else if (arg == "--summary") {
      args.summary = value();
    } else if (arg == "--warmup") {
      args.warmup = true;
    } else if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      std::exit(0);
    } else if (!arg.empty() && arg[0] == '-') {
      usage("unknown option " + arg);
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) usage("expected EXPORT_DIR and INPUT");
  args.export_dir = positional[0];
  args.input = positional[1];
  return args;
}

//! Digit runs compared as numbers, the rest case-insensitively: frame2 < frame10 (dff.sources.natural_key).
bool natural_less(const std::string& a, const std::string& b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const bool da = std::isdigit(static_cast<unsigned char>(a[i])), db = std::isdigit(static_cast<unsigned char>(b[j]));
    if (da != db) return da;  // a number sorts before text
    std::size_t ei = i, ej = j;
    if (da) {
      while (ei < a.size() && std::isdigit(static_cast<unsigned char>(a[ei]))) ++ei;
      while (ej < b.size() && std::isdigit(static_cast<unsigned char>(b[ej]))) ++ej;
      const unsigned long long na = std::stoull(a.substr(i, ei - i)), nb = std::stoull(b.substr(j, ej - j));
      if (na != nb) return na < nb;
    } else {
      while (ei < a.size() && !std::isdigit(static_cast<unsigned char>(a[ei]))) ++ei;
      while (ej < b.size() && !std::isdigit(static_cast<unsigned char>(b[ej]))) ++ej;
      std::string ta = a.substr(i, ei - i), tb = b.substr(j, ej - j);
      for (auto* t : {&ta, &tb}) std::transform(t->begin(), t->end(), t->begin(), [](unsigned char c) { return std::tolower(c); });
      if (ta != tb) return ta < tb;
    }
    i = ei;
    j = ej;
  }
  return a.size() - i < b.size() - j;
}

//! Frames from a folder of images (jpg, jpeg, png, bmp, in natural order) or from a video file.
class FrameSource {
 public:
  explicit FrameSource(const fs::path& input) {
    if (fs::is_directory(input)) {
      for (const auto& entry : fs::directory_iterator(input)) {
        std::string ext = entry.path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
        if (entry.is_regular_file() && (ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp")) {
          files_.push_back(entry.path());
        }
      }
      std::sort(files_.begin(), files_.end(),
                [](const fs::path& a, const fs::path& b) { return natural_less(a.filename(), b.filename()); });
      if (files_.empty()) throw AppError("frame folder " + input.string() + " holds no images (.jpg, .jpeg, .png, .bmp, any case)");
      folder_ = true;
    } else if (!fs::exists(input)) {
      throw AppError("input " + input.string() + " does not exist: give a video file or a folder of frames");
    } else if (!capture_.open(input.string())) {
      throw AppError("cannot open video " + input.string() + " (OpenCV has no decoder for it?)");
    }
  }

  double fps() { return folder_ ? 10.0 : std::max(1.0, capture_.get(cv::CAP_PROP_FPS)); }

  //! The next frame, false at the end; a folder's unreadable image is an error naming the file.
  bool next(cv::Mat& image) {
    if (!folder_) return capture_.read(image);
    if (index_ >= files_.size()) return false;
    const fs::path& file = files_[index_++];
    image = cv::imread(file.string(), cv::IMREAD_COLOR);
    if (image.empty()) throw AppError("cannot decode image " + file.string());
    return true;
  }

 private:
  bool folder_ = false;
  std::vector<fs::path> files_;
  std::size_t index_ = 0;
  cv::VideoCapture capture_;
};

//! A file written under a temporary name in its folder and renamed into place by commit(); removed otherwise.
class AtomicFile {
 public:
  explicit AtomicFile(fs::path target)
      : target_(std::move(target)),
        temporary_(target_.parent_path() / ("." + target_.filename().string() + ".tmp-" + std::to_string(getpid()) +
                                            target_.extension().string())) {}
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() {
    if (!committed_) {
      std::error_code ignored;
      fs::remove(temporary_, ignored);
    }
  }
  const fs::path& temporary() const { return temporary_; }
  void commit() {
    std::error_code error;
    fs::rename(temporary_, target_, error);
    if (error) throw AppError("cannot write " + target_.string() + ": " + error.message());
    committed_ = true;
  }

 private:
  fs::path target_, temporary_;
  bool committed_ = false;
};

void write_png(const fs::path& path, const cv::Mat& image) {
  std::vector<unsigned char> encoded;
  if (!cv::imencode(".png", image, encoded)) throw AppError("cannot encode " + path.string() + " as PNG");
  AtomicFile file(path);
  std::ofstream out(file.temporary(), std::ios::binary);
  out.write(reinterpret_cast<const char*>(encoded.data()), static_cast<std::streamsize>(encoded.size()));
  out.close();
  if (!out) throw AppError("cannot write " + path.string() + " (disk full or no permission?)");
  file.commit();
}

//! uint8 BGR colours: golden-ratio steps around the hue circle for the classes, black for other ids
//! (dff/runtime/overlay.py's palette).
cv::Mat palette(int num_classes) {
  cv::Mat hsv(256, 1, CV_8UC3, cv::Scalar(0, 0, 0));
  for (int id = 0; id < std::min(num_classes, 256); ++id) {
    const double turn = std::fmod(id * 0.618033988749895, 1.0);
    hsv.at<cv::Vec3b>(id) = cv::Vec3b(static_cast<unsigned char>(turn * 180), 220, 255);
  }
  cv::Mat bgr;
  cv::cvtColor(hsv, bgr, cv::COLOR_HSV2BGR);
  return bgr;
}

//! `image` with each box in its class colour, labelled "name score" (dff/runtime/detection_overlay.py).
cv::Mat draw_detections(const cv::Mat& image, const std::vector<dff::Detection>& detections,
                        const std::vector<std::string>& class_names, const cv::Mat& colours) {
  cv::Mat out = image.clone();
  auto pixel = [](float v) { return static_cast<int>(std::nearbyint(v)); };  // Python's round: halves to even
  for (const dff::Detection& d : detections) {
    const cv::Vec3b c = colours.at<cv::Vec3b>(((d.class_id % 256) + 256) % 256);
    const cv::Scalar colour(c[0], c[1], c[2]);
    const cv::Point top_left(pixel(d.x1), pixel(d.y1)), bottom_right(pixel(d.x2), pixel(d.y2));
    cv::rectangle(out, top_left, bottom_right, colour, 2);
    const bool named = d.class_id >= 0 && static_cast<std::size_t>(d.class_id) < class_names.size();
    char score[16];
    std::snprintf(score, sizeof score, " %.2f", d.score);
    const std::string name = named ? class_names[d.class_id] : "class" + std::to_string(d.class_id);
    cv::putText(out, name + score, cv::Point(top_left.x, std::max(top_left.y - 3, 10)), cv::FONT_HERSHEY_SIMPLEX, 0.4,
                colour, 1);
  }
  return out;
}

//! One frame's JSON line as `dff run --detections` writes it (Detections.to_json): boxes rounded to 0.01 pixel,
//! scores to 1e-5, as numpy rounds (scaled, rounded half to even, scaled back).
std::string detections_line(const dff::FrameResult& result) {
  auto round_to = [](float value, double scale) { return std::nearbyint(static_cast<double>(value) * scale) / scale; };
  nlohmann::ordered_json boxes = nlohmann::ordered_json::array(), scores = nlohmann::ordered_json::array(),
                         classes = nlohmann::ordered_json::array();
  for (const dff::Detection& d : result.detections) {
    boxes.push_back({round_to(d.x1, 1e2), round_to(d.y1, 1e2), round_to(d.x2, 1e2), round_to(d.y2, 1e2)});
    scores.push_back(round_to(d.score, 1e5));
    classes.push_back(d.class_id);
  }
  const nlohmann::ordered_json line = {
      {"frame", result.index}, {"key", result.key}, {"boxes", boxes}, {"scores", scores}, {"classes", classes}};
  return line.dump();
}

cv::Mat overlay(const cv::Mat& image, const cv::Mat& labels, const cv::Mat& colours) {
  cv::Mat painted(image.size(), CV_8UC3);
  for (int y = 0; y < labels.rows; ++y) {
    for (int x = 0; x < labels.cols; ++x) painted.at<cv::Vec3b>(y, x) = colours.at<cv::Vec3b>(labels.at<uchar>(y, x));
  }
  cv::Mat blended;
  cv::addWeighted(image, 0.5, painted, 0.5, 0.0, blended);
  return blended;
}

struct Totals {
  int frames = 0;
  double ms = 0;
  dff::StageTimes stages;
  void add(const dff::StageTimes& t) {
    ++frames;
    ms += t.total();
    stages.preprocess += t.preprocess, stages.feature += t.feature, stages.flow += t.flow, stages.warp += t.warp;
    stages.task += t.task, stages.postprocess += t.postprocess;
  }
  nlohmann::json mean() const {
    const double n = std::max(frames, 1);
    return {{"frames", frames},          {"total_ms", ms / n},          {"preprocess_ms", stages.preprocess / n},
            {"feature_ms", stages.feature / n}, {"flow_ms", stages.flow / n}, {"warp_ms", stages.warp / n},
            {"task_ms", stages.task / n}, {"postprocess_ms", stages.postprocess / n}};
  }
};

int run(const Arguments& args) {
  auto backend = dff::open_backend(args.backend, args.export_dir, args.options);
  dff::Runtime runtime(backend, std::make_unique<dff::FixedInterval>(args.interval));
  FrameSource source(args.input);
  const bool detection = backend->task_kind() == dff::TaskKind::detection;
  if (detection && args.labels_dir) {
    throw AppError(args.export_dir + " is a detection export: it gives boxes, not per-pixel labels for --labels-dir; "
                   "use --detections FILE (and --overlay for the overlay)");
  }
  if (!detection && args.detections) {
    throw AppError(args.export_dir + " is a segmentation export: it gives per-pixel labels, not boxes for --detections; "
                   "use --labels-dir, or export a detection checkpoint (`dff init --task detection`)");
  }
  if (args.labels_dir && !fs::is_directory(*args.labels_dir)) {
    std::error_code error;
    fs::create_directories(*args.labels_dir, error);
    if (error) throw AppError("cannot create the labels folder " + args.labels_dir->string() + ": " + error.message());
  }
  // Output folders are checked before the first frame, not after minutes of work.
  for (const auto& file : {args.detections, args.overlay, args.summary}) {
    const fs::path folder = file ? fs::absolute(*file).parent_path() : fs::path();
    if (file && !fs::is_directory(folder)) {
      throw AppError("cannot write " + file->string() + ": folder " + folder.string() + " does not exist");
    }
  }
  const cv::Mat colours = palette(static_cast<int>(backend->class_names().size()));
  std::optional<AtomicFile> overlay_file, detections_file;
  std::ofstream detections_out;
  if (args.detections) {
    detections_file.emplace(*args.detections);
    detections_out.open(detections_file->temporary());
    if (!detections_out) throw AppError("cannot write " + args.detections->string() + " (no permission?)");
  }
  cv::VideoWriter writer;
  Totals all, key, non_key;
  nlohmann::json per_frame = nlohmann::json::array();
  cv::Mat image;
  while (!stop_signal && all.frames != args.max_frames && source.next(image)) {
    if (args.warmup && all.frames == 0) runtime.warmup(image.rows, image.cols);
    const dff::FrameResult result = runtime({image.data, image.rows, image.cols, image.step});
    all.add(result.timing);
    (result.key ? key : non_key).add(result.timing);
    const cv::Mat labels(result.labels.height, result.labels.width, CV_8UC1,
                         const_cast<std::uint8_t*>(result.labels.data.data()));
    if (detections_out.is_open()) {
      detections_out << detections_line(result) << "\n";
      if (!detections_out) throw AppError("cannot write " + args.detections->string() + " (disk full?)");
    }
    if (args.labels_dir) {
      char name[32];
      std::snprintf(name, sizeof name, "%06lld.png", static_cast<long long>(result.index));
      write_png(*args.labels_dir / name, labels);
    }
    if (args.overlay) {
      if (!overlay_file) {
        overlay_file.emplace(*args.overlay);
        if (!writer.open(overlay_file->temporary().string(), cv::VideoWriter::fourcc('m', 'p', '4', 'v'), source.fps(),
                         image.size())) {
          throw AppError("cannot write the overlay video " + args.overlay->string() + " (no mp4v encoder or no permission?)");
        }
      }
      writer.write(detection ? draw_detections(image, result.detections, backend->class_names(), colours)
                             : overlay(image, labels, colours));
    }
    const dff::StageTimes& t = result.timing;
    per_frame.push_back({{"index", result.index}, {"key", result.key}, {"preprocess_ms", t.preprocess},
                         {"feature_ms", t.feature}, {"flow_ms", t.flow}, {"warp_ms", t.warp}, {"task_ms", t.task},
                         {"postprocess_ms", t.postprocess}});
    if (detection) per_frame.back()["detections"] = result.detections.size();
  }
  if (stop_signal) {
    std::cerr << "dff_video: interrupted after " << all.frames << " frames; unfinished files removed\n";
    return 128 + stop_signal;
  }
  if (overlay_file) {
    writer.release();
    overlay_file->commit();
  }
  if (detections_file) {
    detections_out.close();
    if (!detections_out) throw AppError("cannot write " + args.detections->string() + " (disk full or no permission?)");
    detections_file->commit();
  }
  const double mean_ms = all.ms / std::max(all.frames, 1);
  const nlohmann::json summary = {{"frames", all.frames},     {"key_interval", args.interval},
                                  {"fps", 1000.0 / mean_ms},   {"all", all.mean()},
                                  {"key", key.mean()},         {"non_key", non_key.mean()},
                                  {"per_frame", per_frame}};
  if (args.summary) {
    AtomicFile file(*args.summary);
    std::ofstream out(file.temporary());
    out << summary.dump(2) << "\n";
    out.close();
    if (!out) throw AppError("cannot write " + args.summary->string() + " (disk full or no permission?)");
    file.commit();
  }
  std::printf("%d frames (%d key, l = %d): %.2f ms per frame (%.1f fps); key %.2f ms, non-key %.2f ms\n", all.frames,
              key.frames, args.interval, mean_ms, 1000.0 / mean_ms, key.ms / std::max(key.frames, 1),
              non_key.ms / std::max(non_key.frames, 1));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Arguments args = parse(argc, argv);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  try {
    return run(args);
  } catch (const dff::Error& error) {
    std::cerr << "dff_video: error: " << error.what() << "\n";
  } catch (const AppError& error) {
    std::cerr << "dff_video: error: " << error.what() << "\n";
  } catch (const std::exception& error) {
    std::cerr << "dff_video: error: " << error.what() << "\n";
  }
  return 1;
}

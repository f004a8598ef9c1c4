// The C API: exceptions become status codes and a per-thread message at this boundary.
#include "dff/dff.h"

#include <cstring>
#include <new>
#include <string>

#include "detections.hpp"
#include "dff/dff.hpp"

struct dff_backend {
  std::shared_ptr<dff::Backend> backend;
};

struct dff_runtime {
  dff::Runtime runtime;
};

namespace {

thread_local std::string last_error;

dff_status fail(dff_status status, std::string message) {
  last_error = std::move(message);
  return status;
}

template <typename Call>
dff_status guarded(Call&& call) {
  try {
    last_error.clear();
    call();
    return DFF_OK;
  } catch (const dff::Error& error) {
    return fail(static_cast<dff_status>(error.code()), error.what());
  } catch (const std::bad_alloc&) {
    return fail(DFF_ERROR_INTERNAL, "out of memory");
  } catch (const std::exception& error) {
    return fail(DFF_ERROR_INTERNAL, error.what());
  } catch (...) {
    return fail(DFF_ERROR_INTERNAL, "unknown error");
  }
}

void require(const void* pointer, const char* function, const char* argument) {
  if (pointer == nullptr) {
    throw dff::InvalidArgument(std::string(function) + ": " + argument + " is a null pointer");
  }
}

//! A scheduler that asks the C caller's function.
class CallbackScheduler final : public dff::KeyFrameScheduler {
 public:
  CallbackScheduler(dff_choose_key_fn choose, void* user_data) : choose_(choose), user_data_(user_data) {}

 protected:
  bool choose(const dff::ImageView& image) override {
    return choose_(user_data_, since_key(), image.data, image.height, image.width, image.stride) != 0;
  }

 private:
  dff_choose_key_fn choose_;
  void* user_data_;
};

dff_status create(dff_backend* backend, std::unique_ptr<dff::KeyFrameScheduler> (*make)(int, dff_choose_key_fn, void*),
                  int interval, dff_choose_key_fn choose, void* user_data, dff_runtime** runtime, const char* function) {
  return guarded([&] {
    require(runtime, function, "runtime");
    *runtime = nullptr;
    require(backend, function, "backend");
    *runtime = new dff_runtime{dff::Runtime(backend->backend, make(interval, choose, user_data))};
  });
}

}  // namespace

extern "C" {

const char* dff_last_error(void) { return last_error.c_str(); }

dff_status dff_backend_open(const char* name, const char* export_dir, const char* const* options, size_t num_options,
                            dff_backend** backend) {
  return guarded([&] {
    require(backend, "dff_backend_open", "backend");
    *backend = nullptr;
    require(name, "dff_backend_open", "name");
    require(export_dir, "dff_backend_open", "export_dir");
    if (num_options > 0) require(options, "dff_backend_open", "options");
    dff::Options parsed;
    for (size_t i = 0; i < num_options; ++i) {
      require(options[i], "dff_backend_open", "an option");
      const char* equals = std::strchr(options[i], '=');
      if (equals == nullptr) {
        throw dff::ConfigError(std::string("option '") + options[i] + "' is not KEY=VALUE");
      }
      parsed[std::string(options[i], equals)] = equals + 1;
    }
    *backend = new dff_backend{dff::open_backend(name, export_dir, parsed)};
  });
}

dff_status dff_backend_num_classes(const dff_backend* backend, int* num_classes) {
  return guarded([&] {
    require(backend, "dff_backend_num_classes", "backend");
    require(num_classes, "dff_backend_num_classes", "num_classes");
    *num_classes = static_cast<int>(backend->backend->class_names().size());
  });
}

dff_status dff_backend_class_name(const dff_backend* backend, int index, const char** name) {
  return guarded([&] {
    require(backend, "dff_backend_class_name", "backend");
    require(name, "dff_backend_class_name", "name");
    const auto& names = backend->backend->class_names();
    if (index < 0 || static_cast<size_t>(index) >= names.size()) {
      throw dff::InvalidArgument("dff_backend_class_name: class " + std::to_string(index) + " does not exist (" +
                                 std::to_string(names.size()) + " classes)");
    }
    *name = names[static_cast<size_t>(index)].c_str();
  });
}

dff_status dff_backend_task(const dff_backend* backend, dff_task* task) {
  return guarded([&] {
    require(backend, "dff_backend_task", "backend");
    require(task, "dff_backend_task", "task");
    *task = backend->backend->task_kind() == dff::TaskKind::detection ? DFF_TASK_DETECTION : DFF_TASK_SEGMENTATION;
  });
}

dff_status dff_backend_max_detections(const dff_backend* backend, int* max_detections) {
  return guarded([&] {
    require(backend, "dff_backend_max_detections", "backend");
    require(max_detections, "dff_backend_max_detections", "max_detections");
    *max_detections = backend->backend->max_detections();
  });
}

void dff_backend_close(dff_backend* backend) { delete backend; }

dff_status dff_runtime_create(dff_backend* backend, int key_interval, dff_runtime** runtime) {
  auto make = [](int interval, dff_choose_key_fn, void*) -> std::unique_ptr<dff::KeyFrameScheduler> {
    return std::make_unique<dff::FixedInterval>(interval);
  };
  return create(backend, make, key_interval, nullptr, nullptr, runtime, "dff_runtime_create");
}

dff_status dff_runtime_create_with_scheduler(dff_backend* backend, dff_choose_key_fn choose, void* user_data,
                                             dff_runtime** runtime) {
  if (choose == nullptr) {
    if (runtime != nullptr) *runtime = nullptr;
    return fail(DFF_ERROR_INVALID_ARGUMENT, "dff_runtime_create_with_scheduler: choose is a null pointer");
  }
  auto make = [](int, dff_choose_key_fn function, void* data) -> std::unique_ptr<dff::KeyFrameScheduler> {
    return std::make_unique<CallbackScheduler>(function, data);
  };
  return create(backend, make, 0, choose, user_data, runtime, "dff_runtime_create_with_scheduler");
}

void dff_runtime_destroy(dff_runtime* runtime) { delete runtime; }

dff_status dff_runtime_reset(dff_runtime* runtime) {
  return guarded([&] {
    require(runtime, "dff_runtime_reset", "runtime");
    runtime->runtime.reset();
  });
}

dff_status dff_runtime_process(dff_runtime* runtime, const uint8_t* bgr, int height, int width, size_t stride,
                               uint8_t* labels, size_t labels_stride, int* is_key, double* milliseconds) {
  return guarded([&] {
    require(runtime, "dff_runtime_process", "runtime");
    require(bgr, "dff_runtime_process", "bgr");
    require(labels, "dff_runtime_process", "labels");
    const dff::TaskKind kind = runtime->runtime.backend().task_kind();
    if (kind != dff::TaskKind::segmentation) {
      throw dff::detail::wrong_task("dff_runtime_process", kind, "call dff_runtime_process_detections");
    }
    if (width > 0 && labels_stride < static_cast<size_t>(width)) {
      throw dff::InvalidArgument("dff_runtime_process: labels_stride " + std::to_string(labels_stride) +
                                 " is shorter than a row of " + std::to_string(width) + " labels");
    }
    const dff::FrameResult result = runtime->runtime({bgr, height, width, stride});
    for (int y = 0; y < height; ++y) {
      std::memcpy(labels + static_cast<size_t>(y) * labels_stride,
                  result.labels.data.data() + static_cast<size_t>(y) * width, static_cast<size_t>(width));
    }
    if (is_key != nullptr) *is_key = result.key ? 1 : 0;
    if (milliseconds != nullptr) *milliseconds = result.timing.total();
  });
}

dff_status dff_runtime_process_detections(dff_runtime* runtime, const uint8_t* bgr, int height, int width,
                                          size_t stride, dff_detection* detections, size_t capacity, size_t* count,
                                          int* is_key, double* milliseconds) {
  return guarded([&] {
    require(runtime, "dff_runtime_process_detections", "runtime");
    require(bgr, "dff_runtime_process_detections", "bgr");
    require(detections, "dff_runtime_process_detections", "detections");
    require(count, "dff_runtime_process_detections", "count");
    const dff::Backend& backend = runtime->runtime.backend();
    if (backend.task_kind() != dff::TaskKind::detection) {
      throw dff::detail::wrong_task("dff_runtime_process_detections", backend.task_kind(), "call dff_runtime_process");
    }
    const size_t needed = static_cast<size_t>(backend.max_detections());
    if (capacity < needed) {
      throw dff::InvalidArgument("dff_runtime_process_detections: capacity " + std::to_string(capacity) +
                                 " is less than this export's maximum of " + std::to_string(needed) +
                                 " detections per frame; give a buffer of dff_backend_max_detections entries");
    }
    const dff::FrameResult result = runtime->runtime({bgr, height, width, stride});
    if (result.detections.size() > capacity) {  // a backend whose task network outgrew its manifest
      throw dff::BackendError("dff_runtime_process_detections: the frame has " + std::to_string(result.detections.size()) +
                              " detections, more than the export's maximum of " + std::to_string(needed));
    }
    for (size_t i = 0; i < result.detections.size(); ++i) {
      const dff::Detection& d = result.detections[i];
      detections[i] = {d.x1, d.y1, d.x2, d.y2, d.score, d.class_id};
    }
    *count = result.detections.size();
    if (is_key != nullptr) *is_key = result.key ? 1 : 0;
    if (milliseconds != nullptr) *milliseconds = result.timing.total();
  });
}

}  // extern "C"

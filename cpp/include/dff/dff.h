/* dff C API: the C++ runtime (dff.hpp) behind opaque handles and status codes, for C, Rust, Go, C#, ...
 *
 *   dff_backend* backend = NULL;
 *   if (dff_backend_open("openvino", "export/", NULL, 0, &backend) != DFF_OK) puts(dff_last_error());
 *   dff_runtime* runtime = NULL;
 *   dff_runtime_create(backend, 10, &runtime);                  // a key frame every 10 frames
 *   dff_runtime_process(runtime, bgr, h, w, stride, labels, w, &key);   // labels: h rows of w class ids
 *   dff_runtime_destroy(runtime); dff_backend_close(backend);
 *
 * A detection export (dff_backend_task gives DFF_TASK_DETECTION) is run with dff_runtime_process_detections
 * instead, into a buffer of dff_backend_max_detections entries:
 *
 *   int max = 0; dff_backend_max_detections(backend, &max);
 *   dff_detection* boxes = malloc(max * sizeof *boxes); size_t count = 0;
 *   dff_runtime_process_detections(runtime, bgr, h, w, stride, boxes, max, &count, &key, NULL);
 *
 * Every function returns DFF_OK or an error code; the message of the calling thread's last error is
 * dff_last_error(). Nothing throws across this boundary. A backend may be shared by many runtimes and must
 * outlive them; a runtime is one stream, used by one thread at a time. */
#ifndef DFF_DFF_H
#define DFF_DFF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dff_status {
  DFF_OK = 0,
  DFF_ERROR_EXPORT = 1,           /* a missing or corrupt export, a hash mismatch */
  DFF_ERROR_INPUT_SIZE = 2,       /* a frame size the networks cannot take */
  DFF_ERROR_CONFIG = 3,           /* an unknown backend or option, a bad option value or interval */
  DFF_ERROR_BACKEND = 4,          /* the inference engine failed */
  DFF_ERROR_INVALID_ARGUMENT = 5, /* a null pointer, a stride shorter than a row, a buffer too small */
  DFF_ERROR_INTERNAL = 6          /* anything else (out of memory, ...) */
} dff_status;

/* What an export's task network outputs (its manifest's model.task). */
typedef enum dff_task {
  DFF_TASK_SEGMENTATION = 0, /* per-pixel class ids: dff_runtime_process */
  DFF_TASK_DETECTION = 1     /* boxes: dff_runtime_process_detections */
} dff_task;

/* One detected object: box corners in the frame's own pixels, its score and its class, an index 1 ... C into the
 * backend's class names (0, the background, is never detected). */
typedef struct dff_detection {
  float x1, y1, x2, y2;
  float score;
  int32_t class_id;
} dff_detection;

typedef struct dff_backend dff_backend;
typedef struct dff_runtime dff_runtime;

/* Decides the frames the fixed rules leave open (the first frame, the first after a reset and a frame of a new
 * size are key frames anyway): non-zero for a key frame. `since_key` counts the frames since the last one. */
typedef int (*dff_choose_key_fn)(void* user_data, int since_key, const uint8_t* bgr, int height, int width,
                                 size_t stride);

/* The message of this thread's last error ("" if none); valid until this thread's next dff call. */
const char* dff_last_error(void);

/* `options`: `num_options` strings "KEY=VALUE" (as `dff run -O`), e.g. "threads=2", "precision=bf16". */
dff_status dff_backend_open(const char* name, const char* export_dir, const char* const* options, size_t num_options,
                            dff_backend** backend);
/* Class count and the name of class `index` (owned by the backend). */
dff_status dff_backend_num_classes(const dff_backend* backend, int* num_classes);
dff_status dff_backend_class_name(const dff_backend* backend, int index, const char** name);
/* The export's task, and the most detections one frame can have (0 for a segmentation export). */
dff_status dff_backend_task(const dff_backend* backend, dff_task* task);
dff_status dff_backend_max_detections(const dff_backend* backend, int* max_detections);
void dff_backend_close(dff_backend* backend); /* NULL is ignored */

/* A stream with the paper's fixed key-frame interval (1: every frame is a key frame). */
dff_status dff_runtime_create(dff_backend* backend, int key_interval, dff_runtime** runtime);
/* A stream whose key frames `choose` picks (called on the caller's thread, once per frame). */
dff_status dff_runtime_create_with_scheduler(dff_backend* backend, dff_choose_key_fn choose, void* user_data,
                                             dff_runtime** runtime);
void dff_runtime_destroy(dff_runtime* runtime); /* NULL is ignored */
dff_status dff_runtime_reset(dff_runtime* runtime);

/* The labels of the stream's next frame: `bgr` is `height` rows of `width` BGR pixels, `stride` bytes apart;
 * `labels` receives `height` rows of `width` class ids, `labels_stride` bytes apart. `is_key` (may be NULL)
 * is set to 1 on a key frame. `milliseconds` (may be NULL) receives the frame's total time. */
dff_status dff_runtime_process(dff_runtime* runtime, const uint8_t* bgr, int height, int width, size_t stride,
                               uint8_t* labels, size_t labels_stride, int* is_key, double* milliseconds);

/* The detections of the stream's next frame (a detection export): `detections` receives them best first and
 * `count` how many there are. `capacity`, the entries `detections` holds, must be at least
 * dff_backend_max_detections (so that every frame fits); that, the task and the pointers are checked before the
 * frame runs, so an error never consumes a frame. `is_key` and `milliseconds` as for dff_runtime_process. */
dff_status dff_runtime_process_detections(dff_runtime* runtime, const uint8_t* bgr, int height, int width,
                                          size_t stride, dff_detection* detections, size_t capacity, size_t* count,
                                          int* is_key, double* milliseconds);

#ifdef __cplusplus
}
#endif

#endif /* DFF_DFF_H */

/* The C API, compiled as C: null pointers, bad exports, options and strides are status codes with a message, never a
 * crash; a real run through it follows the schedule (fixed interval and a caller's scheduler). argv[1]: a
 * segmentation export, argv[2]: a detection export (detections into a caller's buffer; each task's export refused by
 * the other task's call, before the frame runs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dff/dff.h"

static int failures = 0;

static void check(int condition, const char* what) {
  if (!condition) {
    fprintf(stderr, "FAILED: %s (last error: %s)\n", what, dff_last_error());
    ++failures;
  }
}

static void expect(dff_status got, dff_status expected, const char* needle, const char* what) {
  check(got == expected, what);
  check(strstr(dff_last_error(), needle) != NULL, what);
}

/* A key frame whenever the caller says so: here every second frame after the first. */
static int every_second(void* user_data, int since_key, const uint8_t* bgr, int height, int width, size_t stride) {
  (void)bgr, (void)height, (void)width, (void)stride;
  ++*(int*)user_data;
  return since_key + 1 >= 2;
}

/* argv[2]'s detector through dff_runtime_process_detections; `segmenter` (argv[1]'s backend) refuses the call. */
static void test_detection(const char* detection_dir, dff_backend* segmenter, const uint8_t* image, int height, int width,
                           size_t stride) {
  dff_task task = DFF_TASK_DETECTION;
  int most = -1;
  check(dff_backend_task(segmenter, &task) == DFF_OK && task == DFF_TASK_SEGMENTATION, "segmentation task");
  check(dff_backend_max_detections(segmenter, &most) == DFF_OK && most == 0, "no detections from a segmenter");
  expect(dff_backend_task(NULL, &task), DFF_ERROR_INVALID_ARGUMENT, "dff_backend_task: backend is a null pointer",
         "task of NULL");
  expect(dff_backend_max_detections(segmenter, NULL), DFF_ERROR_INVALID_ARGUMENT, "max_detections is a null pointer",
         "max detections into NULL");
  dff_runtime* runtime = NULL;
  dff_detection one[1];
  size_t count = 99;
  check(dff_runtime_create(segmenter, 3, &runtime) == DFF_OK, "create on the segmenter");
  expect(dff_runtime_process_detections(runtime, image, height, width, stride, one, 1, &count, NULL, NULL),
         DFF_ERROR_CONFIG,
         "dff_runtime_process_detections: this is a segmentation export: it gives per-pixel labels, not boxes; call "
         "dff_runtime_process",
         "detections of a segmentation export");
  dff_runtime_destroy(runtime);

  const char* options[] = {"threads=1"};
  dff_backend* backend = NULL;
  check(dff_backend_open("openvino", detection_dir, options, 1, &backend) == DFF_OK, "open the detector");
  int classes = 0;
  check(dff_backend_task(backend, &task) == DFF_OK && task == DFF_TASK_DETECTION, "detection task");
  check(dff_backend_max_detections(backend, &most) == DFF_OK && most >= 1, "max detections");
  check(dff_backend_num_classes(backend, &classes) == DFF_OK && classes >= 2, "detector classes");
  check(dff_runtime_create(backend, 3, &runtime) == DFF_OK, "create on the detector");
  dff_detection* boxes = malloc((size_t)most * sizeof *boxes);
  uint8_t* labels = malloc((size_t)height * width);
  int key = -1;
  /* Refused before the frame runs: none of these consumes a frame, so the schedule below starts afresh. */
  expect(dff_runtime_process(runtime, image, height, width, stride, labels, width, &key, NULL), DFF_ERROR_CONFIG,
         "dff_runtime_process: this is a detection export: it gives boxes, not per-pixel labels; call "
         "dff_runtime_process_detections",
         "labels of a detection export");
  expect(dff_runtime_process_detections(runtime, image, height, width, stride, boxes, (size_t)most - 1, &count, NULL,
                                        NULL),
         DFF_ERROR_INVALID_ARGUMENT, "detections per frame; give a buffer of dff_backend_max_detections entries",
         "a buffer too small");
  expect(dff_runtime_process_detections(runtime, image, height, width, stride, NULL, (size_t)most, &count, NULL, NULL),
         DFF_ERROR_INVALID_ARGUMENT, "detections is a null pointer", "null detections");
  expect(dff_runtime_process_detections(runtime, image, height, width, stride, boxes, (size_t)most, NULL, NULL, NULL),
         DFF_ERROR_INVALID_ARGUMENT, "count is a null pointer", "null count");
  expect(dff_runtime_process_detections(runtime, image, height, width, 3, boxes, (size_t)most, &count, NULL, NULL),
         DFF_ERROR_INVALID_ARGUMENT, "is shorter than a row", "short stride");
  int keys[4] = {0};
  size_t found = 0;
  double ms = 0;
  for (int t = 0; t < 4; ++t) {
    count = (size_t)-1;
    check(dff_runtime_process_detections(runtime, image, height, width, stride, boxes, (size_t)most, &count, &keys[t],
                                         &ms) == DFF_OK,
          "process detections");
    check(count <= (size_t)most, "count within the maximum");
    found += count;
    for (size_t i = 0; i < count && i <= (size_t)most; ++i) {
      check(boxes[i].class_id >= 1 && boxes[i].class_id < classes, "class ids 1 ... C");
      check(boxes[i].x1 >= 0 && boxes[i].x1 <= boxes[i].x2 && boxes[i].x2 <= width + 1e-3f && boxes[i].y1 >= 0 &&
                boxes[i].y1 <= boxes[i].y2 && boxes[i].y2 <= height + 1e-3f,
            "boxes in the frame's pixels");
      check(boxes[i].score > 0 && boxes[i].score <= 1 && (i == 0 || boxes[i - 1].score >= boxes[i].score),
            "scores best first");
    }
  }
  check(found > 0, "the detector finds boxes");
  check(ms > 0, "detection frame time");
  check(keys[0] == 1 && keys[1] == 0 && keys[2] == 0 && keys[3] == 1, "refused calls consumed no frame");
  dff_runtime_destroy(runtime);
  dff_backend_close(backend);
  free(boxes);
  free(labels);
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: test_c_api EXPORT_DIR DETECTION_EXPORT_DIR\n");
    return 2;
  }
  const char* export_dir = argv[1];
  dff_backend* backend = (dff_backend*)1;
  dff_runtime* runtime = (dff_runtime*)1;

  expect(dff_backend_open("openvino", export_dir, NULL, 0, NULL), DFF_ERROR_INVALID_ARGUMENT,
         "dff_backend_open: backend is a null pointer", "null out pointer");
  expect(dff_backend_open(NULL, export_dir, NULL, 0, &backend), DFF_ERROR_INVALID_ARGUMENT, "name is a null pointer",
         "null name");
  check(backend == NULL, "a failed open leaves NULL");
  expect(dff_backend_open("openvino", NULL, NULL, 0, &backend), DFF_ERROR_INVALID_ARGUMENT,
         "export_dir is a null pointer", "null export_dir");
  expect(dff_backend_open("openvino", "/nonexistent/export", NULL, 0, &backend), DFF_ERROR_EXPORT,
         "export directory /nonexistent/export does not exist", "missing export");
  expect(dff_backend_open("openvino", export_dir, NULL, 1, &backend), DFF_ERROR_INVALID_ARGUMENT,
         "options is a null pointer", "null options");
  const char* bad_option[] = {"threads"};
  expect(dff_backend_open("openvino", export_dir, bad_option, 1, &backend), DFF_ERROR_CONFIG, "is not KEY=VALUE",
         "option without =");
  const char* bad_value[] = {"precision=int4"};
  expect(dff_backend_open("openvino", export_dir, bad_value, 1, &backend), DFF_ERROR_CONFIG,
         "option precision expects one of", "bad precision");
  expect(dff_runtime_create(NULL, 3, &runtime), DFF_ERROR_INVALID_ARGUMENT, "backend is a null pointer", "null backend");
  check(runtime == NULL, "a failed create leaves NULL");
  expect(dff_runtime_reset(NULL), DFF_ERROR_INVALID_ARGUMENT, "runtime is a null pointer", "reset NULL");
  expect(dff_runtime_process(NULL, NULL, 0, 0, 0, NULL, 0, NULL, NULL), DFF_ERROR_INVALID_ARGUMENT,
         "runtime is a null pointer", "process NULL");
  dff_backend_close(NULL);
  dff_runtime_destroy(NULL);

  const char* options[] = {"threads=1", "precision=f32"};
  check(dff_backend_open("openvino", export_dir, options, 2, &backend) == DFF_OK, "open");
  check(strcmp(dff_last_error(), "") == 0, "no error after success");
  int classes = 0;
  const char* name = NULL;
  check(dff_backend_num_classes(backend, &classes) == DFF_OK && classes >= 2, "class count");
  check(dff_backend_class_name(backend, 0, &name) == DFF_OK && name != NULL && name[0] != '\0', "class name");
  expect(dff_backend_class_name(backend, classes, &name), DFF_ERROR_INVALID_ARGUMENT, "does not exist", "class out of range");
  expect(dff_runtime_create(backend, 0, &runtime), DFF_ERROR_CONFIG, "key-frame interval must be an integer >= 1",
         "interval 0");
  check(dff_runtime_create(backend, 3, &runtime) == DFF_OK, "create");

  enum { H = 72, W = 90, STRIDE = W * 3 + 6 };
  uint8_t* image = malloc((size_t)H * STRIDE);
  uint8_t* labels = malloc((size_t)H * W);
  for (int i = 0; i < H * STRIDE; ++i) image[i] = (uint8_t)(i * 7 % 251);
  int keys[5] = {0};
  double ms = 0;
  for (int t = 0; t < 5; ++t) {
    check(dff_runtime_process(runtime, image, H, W, STRIDE, labels, W, &keys[t], &ms) == DFF_OK, "process");
  }
  check(keys[0] == 1 && keys[1] == 0 && keys[2] == 0 && keys[3] == 1 && keys[4] == 0, "fixed interval 3");
  check(ms > 0, "frame time");
  int counted = 0;
  for (int i = 0; i < H * W; ++i) counted += labels[i] < classes;
  check(counted == H * W, "labels are class ids");
  check(dff_runtime_reset(runtime) == DFF_OK, "reset");
  check(dff_runtime_process(runtime, image, H, W, STRIDE, labels, W, &keys[0], NULL) == DFF_OK && keys[0] == 1,
        "a key frame after reset");

  expect(dff_runtime_process(runtime, NULL, H, W, STRIDE, labels, W, NULL, NULL), DFF_ERROR_INVALID_ARGUMENT,
         "bgr is a null pointer", "null frame");
  expect(dff_runtime_process(runtime, image, H, W, STRIDE, NULL, W, NULL, NULL), DFF_ERROR_INVALID_ARGUMENT,
         "labels is a null pointer", "null labels");
  expect(dff_runtime_process(runtime, image, H, W, W * 3 - 1, labels, W, NULL, NULL), DFF_ERROR_INVALID_ARGUMENT,
         "is shorter than a row of 90 BGR pixels", "short stride");
  expect(dff_runtime_process(runtime, image, H, W, STRIDE, labels, W - 1, NULL, NULL), DFF_ERROR_INVALID_ARGUMENT,
         "labels_stride 89 is shorter than a row of 90 labels", "short labels stride");
  expect(dff_runtime_process(runtime, image, -4, W, STRIDE, labels, W, NULL, NULL), DFF_ERROR_INVALID_ARGUMENT,
         "expected a uint8", "negative height");
  dff_runtime_destroy(runtime);

  int calls = 0;
  expect(dff_runtime_create_with_scheduler(backend, NULL, NULL, &runtime), DFF_ERROR_INVALID_ARGUMENT,
         "choose is a null pointer", "null scheduler");
  check(dff_runtime_create_with_scheduler(backend, every_second, &calls, &runtime) == DFF_OK, "create with scheduler");
  for (int t = 0; t < 5; ++t) dff_runtime_process(runtime, image, H, W, STRIDE, labels, W, &keys[t], NULL);
  check(keys[0] == 1 && keys[1] == 0 && keys[2] == 1 && keys[3] == 0 && keys[4] == 1, "caller's scheduler");
  check(calls == 4, "the scheduler is asked for every frame but the first");
  dff_runtime_destroy(runtime);
  test_detection(argv[2], backend, image, H, W, STRIDE);
  dff_backend_close(backend);
  free(image);
  free(labels);
  printf(failures ? "test_c_api: FAILED %d check(s)\n" : "test_c_api: all checks passed\n", failures);
  return failures ? 1 : 0;
}

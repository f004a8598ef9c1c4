// The export manifest (manifest.json, format "dff-export-1"): the contract written by `dff export` and read by
// dff/manifest.py. Only what the C++ runtime needs is read; every file's SHA-256 is checked on load.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "dff/dff.hpp"

namespace dff::detail {

//! A detection export's task outputs, in the order backends hand them back (dff/manifest.py's names).
inline const std::vector<std::string> kDetectionOutputs = {"boxes", "detection_scores", "classes", "count"};

//! One tensor of a model; a dimension is a number or a name ("N", "H", "W", "H/16", "W/16").
struct TensorSpec {
  std::string name;
  std::string dtype;
  std::vector<std::string> shape;
};

struct ModelFile {
  std::string file;
  std::string sha256;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

struct Manifest {
  std::filesystem::path directory;
  std::string dtype;
  int feature_stride = 16;
  std::vector<std::string> class_names;
  TaskKind task_kind = TaskKind::segmentation;  //!< model.task
  int max_detections = 0;                       //!< a detection export's padded rows (its boxes' second dimension)
  SizeRange sizes;
  ModelFile feature, flow, task, warp, warp_plugin;

  //! The models by role, in the order the Python runtime checks them.
  std::vector<std::pair<std::string, const ModelFile*>> files() const;
  std::filesystem::path path(const ModelFile& model) const { return directory / model.file; }
};

//! Reads `directory`/manifest.json; ExportError (the Python runtime's messages) if it is missing or corrupt, or,
//! with `verify`, if a file is missing or differs from its SHA-256.
Manifest load_manifest(const std::filesystem::path& directory, bool verify = true);

//! Lower-case hex SHA-256 of a file's bytes (OpenSSL EVP).
std::string sha256_file(const std::filesystem::path& path);

//! A manifest shape with its named dimensions fixed for one frame of height x width (batch 1).
std::vector<std::size_t> static_shape(const std::vector<std::string>& shape, int height, int width);

}  // namespace dff::detail

// manifest.json with nlohmann-json, file hashes with OpenSSL; messages as dff/manifest.py words them.
#include "manifest.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

namespace dff::detail {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kManifestName = "manifest.json";
constexpr const char* kFormat = "dff-export-1";

// Python prints Path objects without a trailing separator; so do we, so that messages read the same.
std::string display(const fs::path& path) {
  std::string text = path.lexically_normal().string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  return text;
}

std::string dimension(const json& value) {
  if (value.is_number_integer()) return std::to_string(value.get<long long>());
  return value.get<std::string>();
}

std::vector<TensorSpec> tensors(const json& list) {
  std::vector<TensorSpec> specs;
  for (const json& item : list) {
    TensorSpec spec{item.at("name").get<std::string>(), item.at("dtype").get<std::string>(), {}};
    for (const json& dim : item.at("shape")) spec.shape.push_back(dimension(dim));
    specs.push_back(std::move(spec));
  }
  return specs;
}

ModelFile model_file(const json& entry) {
  return {entry.at("file").get<std::string>(), entry.at("sha256").get<std::string>(), tensors(entry.at("inputs")),
          tensors(entry.at("outputs"))};
}

//! model.task (exports before detection have none: segmentation) and, for a detection export, its padded rows.
void read_task(const json& root, Manifest& manifest, const std::string& where) {
  const std::string task = root.at("model").value("task", "segmentation");
  if (task == "detection") {
    manifest.task_kind = TaskKind::detection;
  } else if (task != "segmentation") {
    throw ExportError(where + " has task '" + task + "', this dff runs 'segmentation' and 'detection' exports: run "
                      "`dff export` again with this dff");
  }
  if (manifest.task_kind != TaskKind::detection) return;
  const std::vector<TensorSpec>& outputs = manifest.task.outputs;
  for (const std::string& name : kDetectionOutputs) {
    if (std::none_of(outputs.begin(), outputs.end(), [&](const TensorSpec& spec) { return spec.name == name; })) {
      throw ExportError(where + " is a detection export whose task model has no output '" + name +
                        "': run `dff export` again");
    }
  }
  const TensorSpec& boxes =
      *std::find_if(outputs.begin(), outputs.end(), [](const TensorSpec& spec) { return spec.name == kDetectionOutputs[0]; });
  const std::string rows = boxes.shape.size() == 3 ? boxes.shape[1] : "";
  if (rows.empty() || rows.size() > 6 || rows.find_first_not_of("0123456789") != std::string::npos || std::stoi(rows) < 1) {
    throw ExportError(where + " gives the detection boxes a shape other than (N, M, 4) with a fixed M: run `dff "
                      "export` again");
  }
  manifest.max_detections = std::stoi(rows);
}

Manifest parse(const json& root, const fs::path& directory, const std::string& where) {
  Manifest manifest;
  manifest.directory = directory;
  manifest.dtype = root.at("dtype").get<std::string>();
  manifest.feature_stride = root.at("feature_stride").get<int>();
  manifest.class_names = root.at("class_names").get<std::vector<std::string>>();
  const json& sizes = root.at("sizes");
  manifest.sizes = {sizes.at("min_height").get<int>(), sizes.at("min_width").get<int>(),
                    sizes.at("max_height").get<int>(), sizes.at("max_width").get<int>(),
                    sizes.at("multiple").get<int>()};
  const json& models = root.at("models");
  manifest.feature = model_file(models.at("feature"));
  manifest.flow = model_file(models.at("flow"));
  manifest.task = model_file(models.at("task"));
  manifest.warp = model_file(models.at("warp"));
  manifest.warp_plugin = model_file(models.at("warp_plugin"));
  read_task(root, manifest, where);
  return manifest;
}

}  // namespace

std::vector<std::pair<std::string, const ModelFile*>> Manifest::files() const {
  return {{"feature", &feature}, {"flow", &flow}, {"task", &task}, {"warp", &warp}, {"warp_plugin", &warp_plugin}};
}

std::string sha256_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ExportError("cannot read " + display(path) + ": check its permissions, or run `dff export` again");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!context || EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr) != 1) {
    throw BackendError("OpenSSL could not start a SHA-256 digest");
  }
  std::vector<char> block(1 << 20);
  while (in) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(context.get(), block.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) throw ExportError("reading " + display(path) + " failed: run `dff export` again");
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  EVP_DigestFinal_ex(context.get(), digest.data(), &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

Manifest load_manifest(const fs::path& directory, bool verify) {
  const fs::path path = directory / kManifestName;
  const std::string dir = display(directory), where = display(path);
  if (!fs::is_directory(directory)) {
    throw ExportError("export directory " + dir + " does not exist: create it with `dff export CHECKPOINT --out " +
                      dir + "`");
  }
  if (!fs::is_regular_file(path)) {
    throw ExportError(dir + " has no " + kManifestName + ": it is not a dff export (run `dff export` again)");
  }
  Manifest manifest;
  try {
    std::ifstream in(path);
    const json root = json::parse(in);
    const std::string format = root.at("format").get<std::string>();
    if (format != kFormat) {
      throw ExportError(where + " has format '" + format + "', this dff reads '" + kFormat +
                        "': run `dff export` again");
    }
    manifest = parse(root, directory, where);
  } catch (const json::exception& error) {
    throw ExportError(where + " is corrupt: " + error.what() + "; run `dff export` again");
  }
  if (!verify) return manifest;
  for (const auto& [role, entry] : manifest.files()) {
    const fs::path file = manifest.path(*entry);
    if (!fs::is_regular_file(file)) {
      throw ExportError(display(file) + " (" + role + " model) is missing from the export: run `dff export` again");
    }
    if (sha256_file(file) != entry->sha256) {
      throw ExportError(display(file) + " (" + role + " model) does not match the SHA-256 in " + kManifestName +
                        ": the file was changed or corrupted after export; run `dff export` again");
    }
  }
  return manifest;
}

std::vector<std::size_t> static_shape(const std::vector<std::string>& shape, int height, int width) {
  std::vector<std::size_t> dims;
  for (const std::string& dim : shape) {
    const std::size_t slash = dim.find('/');
    const std::string name = dim.substr(0, slash);
    const int divisor = slash == std::string::npos ? 1 : std::stoi(dim.substr(slash + 1));
    if (name == "N") {
      dims.push_back(1);
    } else if (name == "H" || name == "W") {
      dims.push_back(static_cast<std::size_t>((name == "H" ? height : width) / divisor));
    } else if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos) {
      dims.push_back(std::stoul(name));
    } else {
      throw ConfigError("the manifest names a dimension '" + dim +
                        "' this backend does not know; run `dff export` again");
    }
  }
  return dims;
}

}  // namespace dff::detail

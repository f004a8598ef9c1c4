#include "backends.hpp"

#include <algorithm>
#include <cctype>

namespace dff {
namespace detail {

std::string python_list(const std::vector<std::string>& items) {
  std::string text = "[";
  for (std::size_t i = 0; i < items.size(); ++i) text += (i ? ", '" : "'") + items[i] + "'";
  return text + "]";
}

OptionReader::OptionReader(std::string backend, const Options& options, const std::vector<std::string>& known)
    : backend_(std::move(backend)), options_(options) {
  std::vector<std::string> unknown;
  for (const auto& [key, value] : options) {
    if (std::find(known.begin(), known.end(), key) == known.end()) unknown.push_back(key);
  }
  if (!unknown.empty()) {
    throw ConfigError("backend '" + backend_ + "' takes no option(s) " + python_list(unknown) +
                      "; its options are " + python_list(known));
  }
}

void OptionReader::mismatch(const std::string& key, const std::string& expected) const {
  throw ConfigError("backend '" + backend_ + "': option " + key + " expects " + expected + ", got '" +
                    options_.at(key) + "'");
}

std::string OptionReader::text(const std::string& key, const std::string& fallback) const {
  const auto found = options_.find(key);
  return found == options_.end() ? fallback : found->second;
}

std::string OptionReader::choice(const std::string& key, const std::string& fallback,
                                 const std::vector<std::string>& choices) const {
  const std::string value = text(key, fallback);
  if (std::find(choices.begin(), choices.end(), value) == choices.end()) {
    std::string expected = "one of ";
    for (std::size_t i = 0; i < choices.size(); ++i) expected += (i ? ", '" : "'") + choices[i] + "'";
    mismatch(key, expected);
  }
  return value;
}

std::optional<int> OptionReader::integer(const std::string& key) const {
  const auto found = options_.find(key);
  if (found == options_.end()) return std::nullopt;
  try {
    std::size_t used = 0;
    const int value = std::stoi(found->second, &used);
    if (found->second.find_first_not_of(" \t", used) == std::string::npos) return value;
  } catch (const std::logic_error&) {
  }
  mismatch(key, "an integer");
}

bool OptionReader::boolean(const std::string& key, bool fallback) const {
  const auto found = options_.find(key);
  if (found == options_.end()) return fallback;
  std::string value = found->second;
  std::transform(value.begin(), value.end(), value.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* yes : {"true", "yes", "on", "1"}) {
    if (value == yes) return true;
  }
  for (const char* no : {"false", "no", "off", "0"}) {
    if (value == no) return false;
  }
  mismatch(key, "true or false");
}

}  // namespace detail

std::vector<std::string> backend_names() {
#ifdef DFF_WITH_TENSORRT
  return {"openvino", "tensorrt"};
#else
  return {"openvino"};
#endif
}

std::shared_ptr<Backend> open_backend(const std::string& name, const std::string& export_dir, const Options& options) {
  if (name == "openvino") return detail::open_openvino(export_dir, options);
#ifdef DFF_WITH_TENSORRT
  if (name == "tensorrt") return detail::open_tensorrt(export_dir, options);
#endif
  std::string message = "unknown backend '" + name + "'; the backends are " + detail::python_list(backend_names());
  if (name == "tensorrt") message += " (this build of libdff has no TensorRT: configure it with -DDFF_WITH_TENSORRT=ON)";
  throw ConfigError(message);
}

}  // namespace dff

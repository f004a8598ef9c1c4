// The backends this library was built with, and the -O KEY=VALUE options they take (dff/runtime/backends/).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dff/dff.hpp"

namespace dff::detail {

//! A backend's options, checked against the names it knows before it runs; values read as dff run reads them.
class OptionReader {
 public:
  OptionReader(std::string backend, const Options& options, const std::vector<std::string>& known);
  std::string text(const std::string& key, const std::string& fallback) const;
  std::string choice(const std::string& key, const std::string& fallback, const std::vector<std::string>& choices) const;
  std::optional<int> integer(const std::string& key) const;
  bool boolean(const std::string& key, bool fallback) const;

 private:
  [[noreturn]] void mismatch(const std::string& key, const std::string& expected) const;
  std::string backend_;
  Options options_;
};

//! Python's repr of a list of strings, as the Python runtime's messages print lists: ['a', 'b'].
std::string python_list(const std::vector<std::string>& items);

std::shared_ptr<Backend> open_openvino(const std::string& export_dir, const Options& options);
#ifdef DFF_WITH_TENSORRT
std::shared_ptr<Backend> open_tensorrt(const std::string& export_dir, const Options& options);
#endif

//! `handle` as the backend's own type; InvalidArgument for a null handle or one from another backend.
template <typename T>
const T& handle_as(const HandlePtr& handle, const char* what) {
  const T* typed = dynamic_cast<const T*>(handle.get());
  if (typed == nullptr) {
    throw InvalidArgument(std::string(what) + ": expected a handle from this backend, got " +
                          (handle ? "one from another backend" : "a null handle"));
  }
  return *typed;
}

}  // namespace dff::detail

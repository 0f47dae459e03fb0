// A read-only POSIX memory map of one whole file, unmapped when the object dies.
//
// Used by the safetensors loader and the training corpus reader (data.h) so that multi-GB checkpoints
// and tokenized corpora are paged in on demand instead of copied. Not for: writing, or files that
// other processes truncate while mapped (that is SIGBUS).
//
// Example:
//   hrm::MappedFile f = hrm::MappedFile::open("model.safetensors");
//   std::span<const std::byte> bytes = f.bytes();
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>

namespace hrm {

class MappedFile {
 public:
  // Throws hrm::Error naming the path when it cannot be opened or mapped. An empty file maps to
  // an empty span (mmap refuses zero-length maps).
  static MappedFile open(const std::filesystem::path& path);
  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {static_cast<const std::byte*>(addr_), size_}; }

 private:
  void* addr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace hrm

// Test helper: writes small .npy files (format 1.0, as numpy does) and tokenized corpus dirs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace hrm::ngram::testing_util {

// numpy pads the header so the data starts at a multiple of 64 bytes.
constexpr size_t kNpyAlign = 64;

inline std::vector<uint8_t> npy_bytes(int major, const std::string& dict, const void* data = nullptr, size_t data_len = 0) {
  std::string header = dict;
  const size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + header.size() + 1) % kNpyAlign != 0) header += ' ';
  header += '\n';
  std::vector<uint8_t> b = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<uint8_t>(major), 0};
  const size_t len = header.size();
  b.push_back(static_cast<uint8_t>(len & 0xFF));
  b.push_back(static_cast<uint8_t>(len >> 8));
  if (major != 1) {
    b.push_back(0);
    b.push_back(0);
  }
  b.insert(b.end(), header.begin(), header.end());
  const auto* d = static_cast<const uint8_t*>(data);
  if (d) b.insert(b.end(), d, d + data_len);
  return b;
}

template <class T>
void write_npy(const std::filesystem::path& path, const std::string& descr, const std::vector<T>& v) {
  const auto b = npy_bytes(1, "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + std::to_string(v.size()) + ",), }",
                           v.data(), v.size() * sizeof(T));
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

struct Pairs {
  std::vector<int64_t> is, il, rs, rl;
};

inline void write_tokenized_dir(const std::filesystem::path& d, const std::vector<uint32_t>& tokens, const Pairs& p,
                                const std::string& descr = "<u4") {
  write_npy(d / "tokens.npy", descr, tokens);
  write_npy(d / "inst_start.npy", "<i8", p.is);
  write_npy(d / "inst_len.npy", "<i8", p.il);
  write_npy(d / "resp_start.npy", "<i8", p.rs);
  write_npy(d / "resp_len.npy", "<i8", p.rl);
}

}  // namespace hrm::ngram::testing_util

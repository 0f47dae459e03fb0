// doc_id list files (see task.h: read_doc_id_file).
#include <fstream>
#include <string>

#include "common/error.h"
#include "tasks/task.h"

namespace hrm::tasks {

std::set<std::int64_t> read_doc_id_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(cat(path.string(), ": cannot open doc_id list"));
  std::set<std::int64_t> ids;
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    try {
      std::size_t used = 0;
      const long long v = std::stoll(line, &used);
      if (used != line.size() || v < 0) throw std::invalid_argument(line);
      ids.insert(v);
    } catch (const std::exception&) {
      throw Error(cat(path.string(), ":", n, ": expected one doc_id (a non-negative integer) per line, got '", line, "'"));
    }
  }
  return ids;
}

}  // namespace hrm::tasks

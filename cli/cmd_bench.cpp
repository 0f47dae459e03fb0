// Placeholder until the suite-replay benchmark lands: registers nothing.
#include "cli/commands.h"

namespace hrm::cli {
void add_bench_commands(CLI::App&) {}
}  // namespace hrm::cli

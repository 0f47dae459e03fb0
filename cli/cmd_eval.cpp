// Placeholder until the eval commands land: registers nothing.
#include "cli/commands.h"

namespace hrm::cli {
void add_eval_commands(CLI::App&) {}
}  // namespace hrm::cli

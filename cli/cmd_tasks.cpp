// Placeholder until the tasks layer lands: registers nothing.
#include "cli/commands.h"

namespace hrm::cli {
void add_tasks_commands(CLI::App&) {}
}  // namespace hrm::cli

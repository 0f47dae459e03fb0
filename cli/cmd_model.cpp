// Placeholder until the runtime lands: registers nothing.
#include "cli/commands.h"

namespace hrm::cli {
void add_model_commands(CLI::App&, CLI::App&) {}
}  // namespace hrm::cli

// Placeholder until the contamination engine lands: registers nothing.
#include "cli/commands.h"

namespace hrm::cli {
void add_contam_commands(CLI::App&, CLI::App&) {}
}  // namespace hrm::cli

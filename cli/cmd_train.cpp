// Placeholder until the train commands land: registers nothing.
#include "cli/commands.h"

namespace hrm::cli {
void add_train_commands(CLI::App&) {}
}  // namespace hrm::cli

// Placeholder until the tokenizer lands: registers nothing.
#include "cli/commands.h"

namespace hrm::cli {
void add_tokenizer_commands(CLI::App&, CLI::App&) {}
}  // namespace hrm::cli

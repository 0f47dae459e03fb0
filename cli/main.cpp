// hrmbench: evaluate, inspect and decontaminate HRM-Text models from one binary.
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "common/error.h"

int main(int argc, char** argv) {
  CLI::App app{"hrmbench: evaluation, contamination analysis and training for HRM-Text models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "hrmbench 0.1.0");
  CLI::App& bench = *app.add_subcommand("bench", "Benchmarks (model throughput, contamination scan)");
  bench.require_subcommand(0, 1);
  hrm::cli::add_model_commands(app, bench);
  hrm::cli::add_tokenizer_commands(app, bench);
  hrm::cli::add_tasks_commands(app);
  hrm::cli::add_contam_commands(app, bench);
  hrm::cli::add_eval_commands(app);
  hrm::cli::add_train_commands(app);
  hrm::cli::add_demo_commands(app);
  hrm::cli::add_synth_commands(app);
  hrm::cli::add_bench_commands(bench);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const hrm::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}

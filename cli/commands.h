// Registration of the CLI's subcommands. Each area owns one cmd_<area>.cpp that adds its
// subcommands to the app; main.cpp only wires them and turns hrm::Error into a clean exit.
#pragma once

#include <CLI/CLI.hpp>

namespace hrm::cli {

// info, generate (cmd_model.cpp)
void add_model_commands(CLI::App& app, CLI::App& bench);
// tokenize, bench tokenizer (cmd_tokenizer.cpp)
void add_tokenizer_commands(CLI::App& app, CLI::App& bench);
// tasks list/show, score (cmd_tasks.cpp)
void add_tasks_commands(CLI::App& app);
// contam index/scan/merge/zscore/report, bench contam (cmd_contam.cpp)
void add_contam_commands(CLI::App& app, CLI::App& bench);
// run, merge, compare, report (cmd_eval.cpp)
void add_eval_commands(CLI::App& app);
// train, make-corpus (cmd_train.cpp)
void add_train_commands(CLI::App& app);
// bench replay (cmd_bench.cpp)
void add_bench_commands(CLI::App& bench);
// demo: the whole pipeline on embedded defaults (cmd_demo.cpp)
void add_demo_commands(CLI::App& app);
// make-task: a synthetic task with a held-out test split (cmd_synth.cpp)
void add_synth_commands(CLI::App& app);

}  // namespace hrm::cli

//! The `hacluster` command: a thin layer over the library, one file per subcommand.

mod commands;
mod render;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "hacluster", version, about = "One YAML file to a highly available Kubernetes cluster")]
pub struct Cli {
    /// Output format: text for people, json for machines.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Check a cluster config and report every problem at once.
    Validate(commands::validate::Args),
    /// Show the cluster a config describes and the steps `up` takes.
    Plan(commands::plan::Args),
    /// Print the JSON Schema of the config (for editors).
    Schema,
    /// Print shell completions.
    Completions(commands::completions::Args),
}

/// Exit codes: 0 success, 1 invalid config, 2 usage or I/O error.
pub mod exit {
    pub const OK: u8 = 0;
    pub const INVALID: u8 = 1;
    pub const USAGE: u8 = 2;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match &cli.command {
        Command::Validate(a) => commands::validate::run(a, cli.output),
        Command::Plan(a) => commands::plan::run(a, cli.output),
        Command::Schema => commands::schema::run(),
        Command::Completions(a) => commands::completions::run(a),
    };
    ExitCode::from(code)
}

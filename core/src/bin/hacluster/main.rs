//! The `hacluster` command: a thin layer over the library, one file per subcommand. Each
//! command's `exec` returns a [`error::CliResult`]; its output goes through one [`Shell`], and `main`
//! prints its error once, with the exit code the error carries.

mod commands;
mod diagnostics;
mod error;
mod events;
mod shell;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use shell::Shell;

#[derive(Parser)]
#[command(name = "hacluster", version, about = "One YAML file to a highly available Kubernetes cluster")]
pub struct Cli {
    /// Output format: text for people, json for machines.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// More detail from plugins and steps (-v debug, -vv trace; or RUST_LOG=debug|trace).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
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
    /// Show the cluster a config describes, what the backend would change, and the steps of `up`.
    Plan(commands::plan::Args),
    /// Create (or converge) the infrastructure only, no Kubernetes; writes the cluster's state.
    Provision(commands::provision::Args),
    /// Provision and bootstrap a highly available cluster (resumable).
    Up(commands::up::Args),
    /// Bootstrap Kubernetes on infrastructure already provisioned.
    Bootstrap(commands::bootstrap::Args),
    /// Roll the cluster to the config's kubernetes.version, one node at a time (resumable).
    Upgrade(commands::upgrade::Args),
    /// Replace a control plane that died: its etcd member and Node go (quorum checked), the
    /// backend provisions its machine again, and it joins as a new one (resumable).
    Replace(commands::replace::Args),
    /// Machines, roles, etcd members and endpoint health.
    Status(commands::status::Args),
    /// Check the HA promise; --chaos stops a control plane to show it.
    Verify(commands::verify::Args),
    /// The cluster's certificates (`status` shows when they expire).
    #[command(subcommand)]
    Certs(commands::certs::Command),
    /// Back up the cluster (etcd snapshot and PKI, encrypted with age); `backup inspect` reads one.
    Backup(commands::backup::Args),
    /// A new cluster from a backup, on the machines the backend provisions now (resumable).
    Restore(commands::restore::Args),
    /// Take a control plane out of the API endpoint, and put it back.
    #[command(subcommand)]
    Endpoint(commands::endpoint::Command),
    /// Path of the cluster's admin kubeconfig (optionally merged into another).
    Kubeconfig(commands::kubeconfig::Args),
    /// Remove the cluster's infrastructure through its backend, then its state.
    Down(commands::down::Args),
    /// List and inspect backend plugins.
    #[command(subcommand)]
    Plugins(commands::plugins::Command),
    /// Print the JSON Schema of the config (for editors).
    Schema,
    /// Print shell completions.
    Completions(commands::completions::Args),
}

/// Exit codes: 0 success, 1 invalid config, 2 usage or I/O error, 3 the operation failed.
pub mod exit {
    pub const OK: u8 = 0;
    pub const INVALID: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const FAILED: u8 = 3;
    /// The reader of stdout went away (`| head`): what a shell reports for a tool that SIGPIPE
    /// ended. SIGPIPE itself stays ignored, as Rust sets it: libvirt's client library writes to
    /// its sockets and relies on that.
    pub const CLOSED_PIPE: i32 = 128 + 13;
}

/// `RUST_LOG`, as Rust tools read it, for those who set it rather than `-v`: its most detailed
/// level (`info`, `hacluster=debug,warn`, `trace`) maps to the same verbosity.
fn verbosity_from_env() -> u8 {
    verbosity_of(&std::env::var("RUST_LOG").unwrap_or_default())
}

fn verbosity_of(rust_log: &str) -> u8 {
    let v = rust_log.to_ascii_lowercase();
    if v.contains("trace") {
        2
    } else if v.contains("debug") {
        1
    } else {
        0
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let shell = Shell::new(cli.output, cli.verbose.max(verbosity_from_env()));
    let result = match &cli.command {
        Command::Validate(a) => commands::validate::exec(&shell, a),
        Command::Plan(a) => commands::plan::exec(&shell, a),
        Command::Provision(a) => commands::provision::exec(&shell, a),
        Command::Up(a) => commands::up::exec(&shell, a),
        Command::Bootstrap(a) => commands::bootstrap::exec(&shell, a),
        Command::Upgrade(a) => commands::upgrade::exec(&shell, a),
        Command::Certs(c) => commands::certs::exec(&shell, c),
        Command::Replace(a) => commands::replace::exec(&shell, a),
        Command::Endpoint(c) => commands::endpoint::exec(&shell, c),
        Command::Backup(a) => commands::backup::exec(&shell, a),
        Command::Restore(a) => commands::restore::exec(&shell, a),
        Command::Status(a) => commands::status::exec(&shell, a),
        Command::Verify(a) => commands::verify::exec(&shell, a),
        Command::Kubeconfig(a) => commands::kubeconfig::exec(&shell, a),
        Command::Down(a) => commands::down::exec(&shell, a),
        Command::Plugins(c) => commands::plugins::exec(&shell, c),
        Command::Schema => commands::schema::exec(&shell),
        Command::Completions(a) => commands::completions::exec(&shell, a),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            shell.error(&e);
            ExitCode::from(e.code)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rust_log_maps_to_the_verbosity_of_v_flags() {
        assert_eq!(super::verbosity_of(""), 0);
        assert_eq!(super::verbosity_of("info"), 0);
        assert_eq!(super::verbosity_of("DEBUG"), 1);
        assert_eq!(super::verbosity_of("warn,hacluster=debug"), 1);
        assert_eq!(super::verbosity_of("trace"), 2);
    }
}

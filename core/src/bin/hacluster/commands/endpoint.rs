use std::fmt;

use hacluster::session::{self, MemberChange, MemberRequest};
use serde::Serialize;

use super::open::{self, Backend};
use super::{ConfigArgs, HostArgs};
use crate::error::CliResult;
use crate::shell::Shell;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Take a control plane out of the API endpoint (for work on it): its backend's balancer
    /// is told first when the backend can be (AWS: the NLB target deregistered), then the node
    /// refuses new connections to 6443 from other machines.
    Drain(Args),
    /// Put a control plane back once its API server and etcd answer: the node, then the
    /// backend's balancer (which returns once it finds the member healthy).
    Restore(Args),
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub host: HostArgs,
    /// The control plane's node name (`<cluster>-master-<id>`).
    pub node: String,
    /// Tell the backend's balancer only, without reaching the node (a machine that does not
    /// answer); refused for a backend that cannot be told.
    #[arg(long)]
    pub balancer_only: bool,
}

pub fn exec(shell: &Shell, cmd: &Command) -> CliResult {
    match cmd {
        Command::Drain(args) => member(shell, args, true),
        Command::Restore(args) => member(shell, args, false),
    }
}

fn member(shell: &Shell, args: &Args, drain: bool) -> CliResult {
    let root = args.host.state_root();
    open::with_config(shell, &args.config, &args.host, Backend::Optional, async |cfg| {
        let spec = &cfg.spec;
        if !args.balancer_only {
            open::warn_untold_balancer(shell, &cfg);
        }
        let change = session::endpoint_member(
            spec,
            &root,
            shell.events(),
            session::ssh_settings(spec),
            cfg.plugin.as_ref(),
            MemberRequest { node: &args.node, drain, balancer_only: args.balancer_only },
        )
        .await?;
        shell.print(&Changed {
            cluster: spec.name.as_str(),
            action: if drain { "drained" } else { "restored" },
            change,
        });
        Ok(())
    })
}

#[derive(Serialize)]
struct Changed<'a> {
    cluster: &'a str,
    action: &'static str,
    #[serde(flatten)]
    change: MemberChange,
}

impl fmt::Display for Changed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.change;
        let (verb, prep) = if self.action == "drained" { ("out of", "refuses") } else { ("back in", "accepts") };
        writeln!(f, "Cluster {}: {} {verb} the API endpoint", self.cluster, c.node)?;
        if let Some(b) = &c.balancer {
            writeln!(f, "  balancer: {b}")?;
        }
        if c.on_node {
            writeln!(f, "  node: {prep} new connections to the API server from other machines")?;
        }
        Ok(())
    }
}

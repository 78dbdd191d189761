use clap::CommandFactory;

use crate::error::CliResult;
use crate::shell::Shell;

#[derive(clap::Args)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

pub fn exec(shell: &Shell, args: &Args) -> CliResult {
    let mut cmd = crate::Cli::command();
    // Into memory first: clap_complete panics on a failed write (`completions bash | head`).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "hacluster", &mut script);
    shell.out(&String::from_utf8_lossy(&script));
    Ok(())
}

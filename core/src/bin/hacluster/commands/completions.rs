use clap::CommandFactory;
use clap_complete::Shell;

use crate::exit;

#[derive(clap::Args)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

pub fn run(args: &Args) -> u8 {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "hacluster", &mut std::io::stdout());
    exit::OK
}

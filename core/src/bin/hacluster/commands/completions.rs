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
    // Into memory first: clap_complete panics on a failed write (`completions bash | head`).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "hacluster", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    exit::OK
}

use crate::error::CliResult;
use crate::shell::Shell;

pub fn exec(shell: &Shell) -> CliResult {
    shell.json(hacluster::config::schema());
    Ok(())
}

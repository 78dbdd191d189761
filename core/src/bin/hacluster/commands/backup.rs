use std::fmt;
use std::path::{Path, PathBuf};

use hacluster::backup::archive::{self, Manifest};
use hacluster::session;
use serde::Serialize;

use super::open::{self, Backend};
use super::{ConfigArgs, HostArgs};
use crate::error::{CliError, CliResult};
use crate::exit;
use crate::shell::Shell;

/// `backup -c FILE` takes one; `backup inspect ARCHIVE` reads one.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub take: TakeArgs,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Decrypt a backup with your age identity, check every file against its manifest, and
    /// show the manifest (or write the files out with --extract).
    Inspect(InspectArgs),
}

#[derive(clap::Args)]
pub struct TakeArgs {
    /// Cluster config file (YAML). Optional to clap only because `backup inspect` has none.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub host: HostArgs,
    /// Encrypt to this age recipient (`age1…`, the public key of an identity made by
    /// `age-keygen`); repeat for several. Only its identity can decrypt the backup.
    #[arg(long, value_name = "AGE1…")]
    pub recipient: Vec<String>,
    /// Encrypt to the recipients listed in this file (one per line, as age reads them).
    #[arg(long, value_name = "FILE")]
    pub recipients_file: Vec<PathBuf>,
    /// Where to write the backup (default: `<cluster>-<time>.backup.age` here); never
    /// overwritten.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    /// The backup.
    pub archive: PathBuf,
    /// Your age identity file (`AGE-SECRET-KEY-1…`, mode 0600).
    #[arg(long, value_name = "FILE")]
    pub identity: PathBuf,
    /// Write the checked files into this new directory (0700; files 0600).
    #[arg(long, value_name = "DIR")]
    pub extract: Option<PathBuf>,
}

pub fn exec(shell: &Shell, args: &Args) -> CliResult {
    match (&args.command, &args.take.config) {
        (Some(Command::Inspect(a)), _) => inspect(shell, a),
        (None, Some(config)) => take(shell, config, &args.take),
        (None, None) => Err(CliError::new("give -c FILE to take a backup, or `backup inspect ARCHIVE`", exit::USAGE)),
    }
}

fn take(shell: &Shell, config: &Path, args: &TakeArgs) -> CliResult {
    // Before anything is read from a node: the backup must be able to be encrypted.
    let to = archive::recipients(&args.recipient, &args.recipients_file).map_err(CliError::usage)?;
    let root = args.host.state_root();
    let config =
        ConfigArgs { config: config.to_path_buf(), backend: None, plugin: None, grant_credentials: Vec::new() };
    open::with_config(shell, &config, &args.host, Backend::Provisioned(&root), async |cfg| {
        let spec = &cfg.spec;
        let (manifest, path) =
            session::backup(spec, &root, shell.events(), session::ssh_settings(spec), &to, args.out.as_deref()).await?;
        shell.print(&Taken { path: &path, recipients: to.len(), manifest: &manifest });
        Ok(())
    })
}

fn inspect(shell: &Shell, args: &InspectArgs) -> CliResult {
    let ids = archive::identities(&args.identity).map_err(CliError::usage)?;
    let sealed = std::fs::read(&args.archive)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", args.archive.display())))?;
    let (manifest, files) = archive::open(&args.archive, &sealed, &ids).map_err(CliError::usage)?;
    if let Some(dir) = &args.extract {
        archive::extract(dir, &files).map_err(CliError::usage)?;
    }
    shell.print(&Inspected { archive: &args.archive, extracted: args.extract.as_deref(), manifest: &manifest });
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Taken<'a> {
    path: &'a Path,
    recipients: usize,
    manifest: &'a Manifest,
}

impl fmt::Display for Taken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.manifest;
        writeln!(
            f,
            "Backup of cluster {} ({}) written to {} (0600), encrypted to {} recipient(s)",
            m.cluster,
            m.kubernetes_version,
            self.path.display(),
            self.recipients
        )?;
        summary(f, m)
    }
}

fn summary(f: &mut fmt::Formatter<'_>, m: &Manifest) -> fmt::Result {
    writeln!(
        f,
        "  etcd snapshot from {} at {}: revision {}, {} keys, {} bytes (checked by etcdutl)",
        m.taken_from, m.taken_at, m.etcd.revision, m.etcd.total_key, m.etcd.total_size
    )?;
    for e in &m.files {
        writeln!(f, "  {:<40} {:>10} bytes  sha256 {}", e.path, e.size, &e.sha256[..16])?;
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Inspected<'a> {
    archive: &'a Path,
    extracted: Option<&'a Path>,
    manifest: &'a Manifest,
}

impl fmt::Display for Inspected<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.manifest;
        writeln!(
            f,
            "{}: a backup of cluster {} ({}, endpoint {}); every file matches the manifest",
            self.archive.display(),
            m.cluster,
            m.kubernetes_version,
            m.endpoint
        )?;
        summary(f, m)?;
        if let Some(d) = self.extracted {
            writeln!(f, "Files written to {}", d.display())?;
        }
        Ok(())
    }
}

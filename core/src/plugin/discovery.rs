//! Finding a backend plugin by name: the ones shipped with the build, then the user's plugin
//! directory; or any `.wasm` by path.

use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Shipped with this build of hacluster.
    Builtin,
    /// Installed in the user's plugin directory.
    User,
    /// Named by path (`--plugin`).
    Path,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    pub name: String,
    pub path: PathBuf,
    pub origin: Origin,
}

#[derive(Debug, thiserror::Error)]
#[error("no backend plugin named `{name}`; looked for {} and {}{}", .looked_names.join(" or "), .looked_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "), .hint)]
pub struct NotFound {
    pub name: String,
    pub looked_names: Vec<String>,
    pub looked_dirs: Vec<PathBuf>,
    pub hint: String,
}

/// Directories holding the plugins shipped with this build, in search order.
pub fn builtin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("HACLUSTER_BUILTIN_PLUGINS") {
        dirs.push(PathBuf::from(d));
    }
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        dirs.push(exe_dir.join("plugins"));
        dirs.push(exe_dir.join("../lib/hacluster/plugins"));
        // A cargo build: target/<profile>/hacluster beside target/wasm32-wasip2/release/.
        dirs.push(exe_dir.join("../wasm32-wasip2/release"));
        // Integration tests run from target/<profile>/deps/.
        dirs.push(exe_dir.join("../../wasm32-wasip2/release"));
    }
    dirs
}

/// `$XDG_DATA_HOME/hacluster/plugins` (`~/.local/share/hacluster/plugins`).
pub fn user_dir() -> PathBuf {
    dirs::data_dir()
        .or_else(|| dirs::home_dir().map(|h| h.join(".local/share")))
        .unwrap_or_else(|| ".".into())
        .join("hacluster/plugins")
}

fn file_names(name: &str) -> Vec<String> {
    vec![format!("{name}.wasm"), format!("hacluster_plugin_{}.wasm", name.replace('-', "_"))]
}

pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Resolves `--backend NAME`.
pub fn resolve(name: &str) -> Result<Found, NotFound> {
    let names = file_names(name);
    let builtin = builtin_dirs();
    let user = user_dir();
    if valid_name(name) {
        for (dirs, origin) in [(builtin.clone(), Origin::Builtin), (vec![user.clone()], Origin::User)] {
            for d in dirs {
                for n in &names {
                    let p = d.join(n);
                    if p.is_file() {
                        return Ok(Found { name: name.into(), path: normalize(&p), origin });
                    }
                }
            }
        }
    }
    let mut looked_dirs = builtin;
    looked_dirs.push(user.clone());
    let hint = if matches!(name, "libvirt" | "aws") {
        "; build the shipped plugins with ./scripts/build-plugins".to_string()
    } else {
        format!("; install it by copying NAME.wasm to {}, or pass --plugin PATH", user.display())
    };
    Err(NotFound { name: name.into(), looked_names: names, looked_dirs, hint })
}

/// Every plugin that `--backend` can find, first match per name.
pub fn list() -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    let dirs = builtin_dirs().into_iter().map(|d| (d, Origin::Builtin)).chain([(user_dir(), Origin::User)]);
    for (d, origin) in dirs {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for p in files {
            let Some(file) = p.file_name().and_then(|f| f.to_str()) else { continue };
            let Some(stem) = file.strip_suffix(".wasm") else { continue };
            let name =
                stem.strip_prefix("hacluster_plugin_").map(|s| s.replace('_', "-")).unwrap_or_else(|| stem.to_string());
            // In a cargo target directory only hacluster_plugin_* files are plugins.
            if origin == Origin::Builtin && !stem.starts_with("hacluster_plugin_") && d.ends_with("release") {
                continue;
            }
            if valid_name(&name) && !out.iter().any(|f| f.name == name) {
                out.push(Found { name, path: normalize(&p), origin });
            }
        }
    }
    out
}

pub fn from_path(path: &Path) -> Found {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin")
        .trim_start_matches("hacluster_plugin_")
        .replace('_', "-");
    Found { name, path: normalize(path), origin: Origin::Path }
}

fn normalize(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

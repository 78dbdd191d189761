//! The cache of compiled components: native code, so loaded only from files that can only be
//! our own, and written so that they are.

use std::path::{Path, PathBuf};

use wasmtime::Engine;

/// Where the compiled code of the component `sha256` lives in `dir`: keyed by the component's
/// hash and everything that makes compiled code valid (wasmtime version, target and engine
/// settings).
pub(super) fn path(dir: &Path, engine: &Engine, sha256: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    dir.join(format!("{sha256}-{:016x}.cwasm", h.finish()))
}

/// The compiled component cached at `path`, if it can be trusted as our own: a regular file
/// (not a link) owned by this user and writable by nobody else, in a directory owned by this
/// user that nobody else may change; read through the handle that was checked. Anything else
/// is ignored (and compiled again): the file is loaded as native code.
pub(super) fn read_own(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let me = unsafe { libc::geteuid() };
    let dir = std::fs::symlink_metadata(path.parent()?).ok()?;
    if !dir.is_dir() || dir.uid() != me || dir.mode() & 0o022 != 0 {
        return None;
    }
    let mut f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path).ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.uid() != me || meta.mode() & 0o022 != 0 {
        return None;
    }
    let mut code = Vec::with_capacity(meta.len() as usize);
    f.read_to_end(&mut code).ok()?;
    Some(code)
}

/// Writes a compiled component into the cache: the directory made 0700 (and refused if it is
/// not this user's), the file created new with mode 0600 under a name no one can guess, then
/// renamed into place.
pub(super) fn write_own(path: &Path, code: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let dir = path.parent().expect("cache file has a directory");
    std::fs::create_dir_all(dir)?;
    let me = unsafe { libc::geteuid() };
    if std::fs::symlink_metadata(dir)?.uid() != me {
        return Err(std::io::Error::other("the cache directory belongs to another user"));
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let tmp = dir.join(format!(
        ".{}.{}-{:016x}.tmp",
        std::process::id(),
        path.file_name().unwrap_or_default().to_string_lossy(),
        rand_u64()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(code)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A random number for a temporary file's name.
fn rand_u64() -> u64 {
    use ssh_key::rand_core::{OsRng, RngCore};
    OsRng.next_u64()
}

//! The cloud-init NoCloud seed: which files a plugin may put in it, the ISO genisoimage makes
//! of them, and the copy the host keeps under the state directory.

use std::io::Write;
use std::path::Path;

use super::HvError;

/// The files of a NoCloud seed (cloud-init's datasource reads these names and no others).
pub const FILES: &[&str] = &["meta-data", "user-data", "network-config", "vendor-data"];

/// All of a seed's files together; cloud-init's own documents are a few KiB.
pub const MAX_BYTES: usize = 1 << 20;

/// Only NoCloud's file names, each at most once, 1 MiB in all. A name is what genisoimage
/// gets in its argv and what the copy is written as, so nothing else may pass.
pub fn check_files(files: &[(String, Vec<u8>)]) -> Result<(), HvError> {
    let mut seen: Vec<&str> = Vec::new();
    for (name, _) in files {
        if !FILES.contains(&name.as_str()) {
            return Err(HvError::Denied(format!(
                "seed file `{name}` is not a NoCloud seed file (allowed: {})",
                FILES.join(", ")
            )));
        }
        if seen.contains(&name.as_str()) {
            return Err(HvError::Denied(format!("seed file `{name}` is given twice")));
        }
        seen.push(name);
    }
    let total: usize = files.iter().map(|(_, c)| c.len()).sum();
    if total > MAX_BYTES {
        return Err(HvError::Denied(format!("the seed's files hold {total} bytes, over the limit of 1 MiB")));
    }
    Ok(())
}

/// Writes the seed's files to `dir/<stem>/`, where `stem` is a seed volume's name without
/// `.iso` (checked by the policy: `<node>-seed`). Directories are 0700 and files 0600 (they
/// hold private host keys); every file is created new, so nothing already there (a link
/// included) is followed.
pub fn keep_copy(dir: &Path, stem: &str, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if stem.is_empty() || stem.starts_with('.') || !stem.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(std::io::Error::other(format!("`{stem}` is not a seed's name")));
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let sub = dir.join(stem);
    match std::fs::DirBuilder::new().mode(0o700).create(&sub) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        r => r?,
    }
    if !std::fs::symlink_metadata(&sub)?.is_dir() {
        return Err(std::io::Error::other(format!("{} is not a directory", sub.display())));
    }
    for (name, content) in files {
        let path = sub.join(name);
        // A copy from an earlier attempt at this seed is replaced.
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        f.write_all(content)?;
        f.sync_all()?;
    }
    Ok(())
}

/// The NoCloud ISO from `genisoimage` (Debian's cdrkit), in a private temporary directory.
/// The file names come after `--`: genisoimage takes anything before it that starts with
/// `-` as an option (`-path-list FILE` would pull FILE's list of host files into the ISO).
pub fn make_iso(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, HvError> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |what: &str, e: &dyn std::fmt::Display| HvError::Failed(format!("making the seed ISO: {what}: {e}"));
    // A new directory of an unguessable name, 0700, removed when it goes out of scope.
    let tmp =
        tempfile::Builder::new().prefix("hacluster-seed-").tempdir().map_err(|e| fail("temporary directory", &e))?;
    let dir = tmp.path();
    let result = (|| {
        let mut args: Vec<String> = ["-quiet", "-output", "seed.iso", "-volid", "cidata", "-joliet", "-rock", "--"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for (name, content) in files {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dir.join(name))
                .map_err(|e| fail(name, &e))?;
            f.write_all(content).map_err(|e| fail(name, &e))?;
            args.push(name.clone());
        }
        let out = std::process::Command::new("genisoimage")
            .args(&args)
            .current_dir(dir)
            .output()
            .map_err(|e| fail("running genisoimage (install the `genisoimage` package)", &e))?;
        if !out.status.success() {
            return Err(fail("genisoimage", &String::from_utf8_lossy(&out.stderr).trim()));
        }
        std::fs::read(dir.join("seed.iso")).map_err(|e| fail("reading the ISO", &e))
    })();
    drop(tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// genisoimage takes every argument that starts with `-` as an option: a seed file named
    /// `-path-list` beside a file `list` naming the operator's key put that key into the ISO
    /// (this test failed so before `--`). The host refuses such names anyway (`check_files`);
    /// this is the second wall.
    #[test]
    fn seed_file_names_never_become_genisoimage_options() {
        let dir = tempfile::tempdir().unwrap();
        let canary = dir.path().join("id_ed25519");
        std::fs::write(&canary, "CANARY-PRIVATE-KEY-7f3a").unwrap();
        let files = vec![
            ("-path-list".to_string(), b"ignored".to_vec()),
            ("list".to_string(), format!("{}\n", canary.display()).into_bytes()),
            ("meta-data".to_string(), b"instance-id: x\n".to_vec()),
        ];
        let iso = make_iso(&files).unwrap();
        let found = iso.windows(23).any(|w| w == b"CANARY-PRIVATE-KEY-7f3a");
        assert!(!found, "the ISO holds the content of a file no seed file named");
        assert!(iso.windows(14).any(|w| w == b"instance-id: x"), "the seed's own file is in it");
    }

    #[test]
    fn only_nocloud_files_once_each_within_a_mebibyte() {
        let f = |n: &str, len: usize| (n.to_string(), vec![b'x'; len]);
        assert!(
            check_files(&[f("meta-data", 10), f("user-data", 10), f("network-config", 10), f("vendor-data", 1)])
                .is_ok()
        );
        for (files, says) in [
            (vec![f("-path-list", 1)], "`-path-list` is not a NoCloud seed file"),
            (vec![f("list", 1)], "`list`"),
            (vec![f("../kubeconfig", 1)], "`../kubeconfig`"),
            (vec![f("meta-data", 1), f("meta-data", 1)], "given twice"),
            (vec![f("user-data", MAX_BYTES), f("meta-data", 1)], "over the limit of 1 MiB"),
        ] {
            let e = check_files(&files).unwrap_err();
            assert!(matches!(&e, HvError::Denied(m) if m.contains(says)), "{e}");
        }
    }

    #[test]
    fn the_copy_stays_in_its_directory_and_replaces_links_instead_of_following_them() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let seeds = root.path().join("seeds");
        for stem in ["", ".", "..", "../x", "a/b", ".hidden"] {
            assert!(keep_copy(&seeds, stem, &[]).is_err(), "{stem:?}");
        }
        let outside = root.path().join("outside");
        std::fs::write(&outside, "untouched").unwrap();
        std::fs::create_dir_all(seeds.join("c-master-1-seed")).unwrap();
        std::os::unix::fs::symlink(&outside, seeds.join("c-master-1-seed/user-data")).unwrap();
        keep_copy(&seeds, "c-master-1-seed", &[("user-data".into(), b"new".to_vec())]).unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "untouched");
        let copy = seeds.join("c-master-1-seed/user-data");
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), "new");
        assert_eq!(std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

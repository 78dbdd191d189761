//! The backup archive: a tar of the etcd snapshot, the PKI kubeadm needs to rebuild the
//! cluster and a manifest of versions and checksums, encrypted with age to the operator's
//! recipients. Opening one decrypts it with the operator's identity and checks every file
//! against the manifest before anything is used.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The archive format this hacluster writes and reads.
pub const FORMAT: u32 = 1;
/// Inside the tar.
pub const MANIFEST: &str = "manifest.json";
pub const SNAPSHOT: &str = "etcd/snapshot.db";
/// How large an archive may grow once decrypted (a snapshot is bounded by etcd's quota, 8 GiB
/// at most; more is not a backup of ours).
const MAX_PLAIN: u64 = 10 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(
        "`{0}` is not an age recipient: give the public key of your age identity (`age1…`, from `age-keygen -y KEYFILE`)"
    )]
    BadRecipient(String),
    #[error("no recipient: give --recipient age1… (or --recipients-file FILE) so that the backup can be encrypted")]
    NoRecipient,
    #[error("identity file {path}: {reason}")]
    Identity { path: PathBuf, reason: String },
    #[error(
        "{path}: cannot be decrypted with the identity given ({reason}); use the identity whose public key the backup was made for"
    )]
    WrongKey { path: PathBuf, reason: String },
    #[error("{path}: not a hacluster backup or damaged: {reason}; nothing was changed")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

/// etcd's own account of the snapshot (`etcdutl snapshot status -w json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    pub hash: u64,
    pub revision: i64,
    pub total_key: u64,
    pub total_size: u64,
    #[serde(default)]
    pub version: String,
}

/// One file of the archive and its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// What the archive holds, and from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: u32,
    pub cluster: String,
    /// When the snapshot was taken (UTC, RFC 3339, the node's clock).
    pub taken_at: String,
    /// The control plane whose etcd member gave the snapshot.
    pub taken_from: String,
    pub kubernetes_version: String,
    /// The API endpoint the cluster's kubeconfigs name.
    pub endpoint: String,
    pub etcd: SnapshotStatus,
    pub files: Vec<Entry>,
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The manifest's list of `files` (path → content).
pub fn entries(files: &BTreeMap<String, Vec<u8>>) -> Vec<Entry> {
    files
        .iter()
        .map(|(path, data)| Entry { path: path.clone(), size: data.len() as u64, sha256: sha256_hex(data) })
        .collect()
}

/// Recipients from `--recipient` values and the lines of recipients files (`#` comments and
/// blank lines skipped, as age's own files have them).
pub fn recipients(given: &[String], files: &[PathBuf]) -> Result<Vec<age::x25519::Recipient>, ArchiveError> {
    let mut all: Vec<String> = given.to_vec();
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| ArchiveError::Io { path: f.clone(), reason: format!("cannot read recipients: {e}") })?;
        all.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string));
    }
    if all.is_empty() {
        return Err(ArchiveError::NoRecipient);
    }
    all.iter()
        .map(|r| {
            age::x25519::Recipient::from_str(r).map_err(|_| ArchiveError::BadRecipient(crate::text::bounded(r, 80)))
        })
        .collect()
}

/// The tar of `manifest` and `files`, encrypted to `to`.
pub fn seal(
    manifest: &Manifest,
    files: &BTreeMap<String, Vec<u8>>,
    to: &[age::x25519::Recipient],
) -> Result<Vec<u8>, ArchiveError> {
    let io = |e: std::io::Error| ArchiveError::Io { path: PathBuf::from("(archive)"), reason: e.to_string() };
    let mut tar = tar::Builder::new(Vec::new());
    let json = serde_json::to_vec_pretty(manifest).expect("a manifest serializes");
    for (path, data) in std::iter::once((MANIFEST, &json)).chain(files.iter().map(|(p, d)| (p.as_str(), d))) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, path, &data[..]).map_err(io)?;
    }
    let plain = tar.into_inner().map_err(io)?;
    let encryptor = age::Encryptor::with_recipients(to.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|_| ArchiveError::NoRecipient)?;
    let mut out = Vec::with_capacity(plain.len() + 1024);
    let mut w = encryptor.wrap_output(&mut out).map_err(io)?;
    w.write_all(&plain).map_err(io)?;
    w.finish().map_err(io)?;
    Ok(out)
}

/// An age identity file, refused when others may read it (it decrypts every backup).
pub fn identities(path: &Path) -> Result<Vec<Box<dyn age::Identity>>, ArchiveError> {
    use std::os::unix::fs::MetadataExt;
    let fail = |reason: String| ArchiveError::Identity { path: path.to_path_buf(), reason };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if meta.mode() & 0o077 != 0 {
        return Err(fail(format!(
            "mode {:o} lets others read the key that decrypts every backup; `chmod 600` it",
            meta.mode() & 0o777
        )));
    }
    let file = age::IdentityFile::from_file(path.to_string_lossy().into_owned()).map_err(|e| fail(e.to_string()))?;
    file.into_identities().map_err(|e| fail(e.to_string()))
}

/// Decrypts `sealed` and checks every file against the manifest: the manifest and the files.
pub fn open(
    path: &Path,
    sealed: &[u8],
    with: &[Box<dyn age::Identity>],
) -> Result<(Manifest, BTreeMap<String, Vec<u8>>), ArchiveError> {
    let corrupt = |reason: String| ArchiveError::Corrupt { path: path.to_path_buf(), reason };
    let decryptor = age::Decryptor::new(sealed).map_err(|e| corrupt(format!("not an age file: {e}")))?;
    let mut reader = decryptor.decrypt(with.iter().map(|i| i.as_ref())).map_err(|e| match e {
        age::DecryptError::NoMatchingKeys | age::DecryptError::KeyDecryptionFailed => {
            ArchiveError::WrongKey { path: path.to_path_buf(), reason: e.to_string() }
        }
        e => corrupt(e.to_string()),
    })?;
    let mut plain = Vec::new();
    (&mut reader)
        .take(MAX_PLAIN)
        .read_to_end(&mut plain)
        .map_err(|e| corrupt(format!("decryption failed (the file was changed or cut short): {e}")))?;
    let mut files = BTreeMap::new();
    let mut tar = tar::Archive::new(&plain[..]);
    for entry in tar.entries().map_err(|e| corrupt(e.to_string()))? {
        let mut entry = entry.map_err(|e| corrupt(e.to_string()))?;
        let name = entry.path().map_err(|e| corrupt(e.to_string()))?.to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| corrupt(e.to_string()))?;
        files.insert(name, data);
    }
    let json = files.remove(MANIFEST).ok_or_else(|| corrupt(format!("no {MANIFEST}")))?;
    let manifest: Manifest =
        serde_json::from_slice(&json).map_err(|e| corrupt(format!("{MANIFEST} does not read: {e}")))?;
    if manifest.format != FORMAT {
        return Err(corrupt(format!("archive format {} (this hacluster reads format {FORMAT})", manifest.format)));
    }
    let listed: BTreeMap<&str, &Entry> = manifest.files.iter().map(|e| (e.path.as_str(), e)).collect();
    for (name, data) in &files {
        let Some(e) = listed.get(name.as_str()) else {
            return Err(corrupt(format!("{name} is not in the manifest")));
        };
        if e.size != data.len() as u64 || e.sha256 != sha256_hex(data) {
            return Err(corrupt(format!("{name} does not match its checksum in the manifest")));
        }
    }
    if let Some(missing) = listed.keys().find(|p| !files.contains_key(**p)) {
        return Err(corrupt(format!("{missing} is in the manifest but not in the archive")));
    }
    Ok((manifest, files))
}

/// Writes the files into `dir`, which must not exist yet (0700; files 0600).
pub fn extract(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<(), ArchiveError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |p: &Path, e: std::io::Error| ArchiveError::Io { path: p.to_path_buf(), reason: e.to_string() };
    std::fs::DirBuilder::new().mode(0o700).create(dir).map_err(|e| io(dir, e))?;
    for (name, data) in files {
        // Names come from the manifest-checked tar; still, nothing may leave `dir`.
        if name.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            return Err(ArchiveError::Corrupt { path: dir.to_path_buf(), reason: format!("a file named {name:?}") });
        }
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent).map_err(|e| io(parent, e))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        f.write_all(data).map_err(|e| io(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (age::x25519::Identity, age::x25519::Recipient) {
        let id = age::x25519::Identity::generate();
        let r = id.to_public();
        (id, r)
    }

    fn sample() -> (Manifest, BTreeMap<String, Vec<u8>>) {
        let mut files = BTreeMap::new();
        files.insert(SNAPSHOT.to_string(), b"bbolt bytes /registry/configmaps/t/hello".to_vec());
        files.insert("pki/ca.key".to_string(), b"-----BEGIN PRIVATE KEY-----secret".to_vec());
        let m = Manifest {
            format: FORMAT,
            cluster: "c".into(),
            taken_at: "2026-12-06T18:00:00Z".into(),
            taken_from: "c-master-1".into(),
            kubernetes_version: "v1.37.2".into(),
            endpoint: "10.0.0.1:6443".into(),
            etcd: SnapshotStatus { hash: 1, revision: 2, total_key: 3, total_size: 4, version: "3.6.0".into() },
            files: entries(&files),
        };
        (m, files)
    }

    fn boxed(id: age::x25519::Identity) -> Vec<Box<dyn age::Identity>> {
        vec![Box::new(id)]
    }

    #[test]
    fn sealed_archives_open_with_the_right_key_only_and_hold_no_plaintext() {
        let (id, r) = keys();
        let (m, files) = sample();
        let sealed = seal(&m, &files, &[r]).unwrap();
        assert!(sealed.starts_with(b"age-encryption.org/v1"));
        let text = String::from_utf8_lossy(&sealed);
        assert!(!text.contains("BEGIN PRIVATE KEY") && !text.contains("/registry/"), "plaintext in the archive");
        let (got, got_files) = open(Path::new("b"), &sealed, &boxed(id)).unwrap();
        assert_eq!((got, got_files), (m, files));

        let (other, _) = keys();
        let e = open(Path::new("b"), &sealed, &boxed(other)).unwrap_err();
        assert!(matches!(e, ArchiveError::WrongKey { .. }), "{e}");
        assert!(e.to_string().contains("use the identity whose public key the backup was made for"), "{e}");
    }

    #[test]
    fn a_changed_or_cut_archive_is_refused() {
        let (id, r) = keys();
        let (m, files) = sample();
        let sealed = seal(&m, &files, &[r]).unwrap();
        let ids = boxed(id);
        let mut flipped = sealed.clone();
        let at = flipped.len() - 40;
        flipped[at] ^= 1;
        assert!(matches!(open(Path::new("b"), &flipped, &ids), Err(ArchiveError::Corrupt { .. })));
        let cut = &sealed[..sealed.len() - 20];
        assert!(matches!(open(Path::new("b"), cut, &ids), Err(ArchiveError::Corrupt { .. })));
        assert!(matches!(open(Path::new("b"), b"not age at all", &ids), Err(ArchiveError::Corrupt { .. })));
    }

    #[test]
    fn a_file_that_does_not_match_the_manifest_is_refused_by_name() {
        let (id, r) = keys();
        let (mut m, files) = sample();
        m.files[0].sha256 = sha256_hex(b"something else");
        let sealed = seal(&m, &files, &[r]).unwrap();
        let e = open(Path::new("b"), &sealed, &boxed(id)).unwrap_err().to_string();
        assert!(e.contains("etcd/snapshot.db does not match its checksum"), "{e}");
    }

    #[test]
    fn recipients_are_checked_and_read_from_files() {
        assert!(matches!(recipients(&[], &[]), Err(ArchiveError::NoRecipient)));
        let e = recipients(&["ssh-ed25519 AAAA".into()], &[]).unwrap_err().to_string();
        assert!(e.contains("not an age recipient"), "{e}");
        let (_, r) = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("recipients");
        std::fs::write(&f, format!("# the operators\n\n{r}\n")).unwrap();
        assert_eq!(recipients(&[], &[f]).unwrap().len(), 1);
    }

    #[test]
    fn an_identity_file_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let (id, _) = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key");
        std::fs::write(&f, format!("{}\n", age::secrecy::ExposeSecret::expose_secret(&id.to_string()))).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = identities(&f).err().expect("a readable key refused").to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(identities(&f).unwrap().len(), 1);
    }
}

//! Base images for `import_image`: a file on this machine or an http(s) URL, checked against
//! its SHA-256 (required for URLs: from the config or from the SHA256SUMS file beside the
//! image), handed on as one open file so nothing can be swapped in between check and upload.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{HvError, HvResult};
use crate::plugin::http_client;

/// The image `source` names, opened and checked: downloaded (into a file with no name) or
/// read from this machine.
pub(super) async fn open(source: &str, sha256: Option<String>, max: u64) -> HvResult<File> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let want = match sha256 {
            Some(s) => s,
            // A SHA256SUMS beside the image comes over the same channel: over TLS it vouches
            // for the image, over plain http an attacker on the path rewrites both.
            None if source.starts_with("http://") => {
                return Err(HvError::Denied(format!(
                    "`{source}` is plain http, so a SHA256SUMS beside it proves nothing; set `image.sha256` (or use https)"
                )));
            }
            None => sums_file_entry(source).await?,
        };
        return download(source, &want, max).await;
    }
    let p = PathBuf::from(source.strip_prefix("file://").unwrap_or(source));
    let f = File::open(&p).map_err(|e| HvError::Failed(format!("image {}: {e}", p.display())))?;
    let Some(want) = sha256 else {
        return Ok(f);
    };
    let (f, got) = tokio::task::spawn_blocking(move || {
        let mut f = f;
        file_sha256(&mut f).map(|h| (f, h))
    })
    .await
    .map_err(|e| HvError::Failed(e.to_string()))?
    .map_err(|e| HvError::Failed(format!("reading image {}: {e}", p.display())))?;
    if !got.eq_ignore_ascii_case(&want) {
        return Err(HvError::Failed(format!("image {} has SHA-256 {got}, the config expects {want}", p.display())));
    }
    Ok(f)
}

/// The image's format for libvirt (qcow2 by its magic, else raw) and its size, with `f`
/// rewound for the upload.
pub(super) fn format_and_size(f: &mut File) -> HvResult<(&'static str, u64)> {
    let io = |e: std::io::Error| HvError::Failed(format!("reading the image: {e}"));
    let len = f.metadata().map_err(io)?.len();
    let mut magic = [0u8; 4];
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    let format = if f.read_exact(&mut magic).is_ok() && &magic == b"QFI\xfb" { "qcow2" } else { "raw" };
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok((format, len))
}

/// The largest base image the host downloads: cloud images are a few hundred MiB; a server
/// that never stops sending must not fill the disk.
pub const MAX_IMAGE_BYTES: u64 = 32 << 30;

/// SHA-256 of what is left to read in `f`.
fn file_sha256(f: &mut File) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The image's line in the SHA256SUMS file beside it (as cloud-images.ubuntu.com and
/// cloud.debian.org publish them).
async fn sums_file_entry(url: &str) -> HvResult<String> {
    let (dir, file) = url.rsplit_once('/').ok_or_else(|| HvError::Failed(format!("`{url}` has no file name")))?;
    let sums_url = format!("{dir}/SHA256SUMS");
    let mut body = Vec::new();
    http_client::get(&sums_url, &mut |chunk| {
        body.extend_from_slice(chunk);
        if body.len() > 4 << 20 {
            return Err("SHA256SUMS is over 4 MiB".into());
        }
        Ok(())
    })
    .await
    .map_err(|e| {
        HvError::Failed(format!("no sha256 in the config and {sums_url} could not be read ({e}); set `image.sha256`"))
    })?;
    sums_entry(&String::from_utf8_lossy(&body), file)
        .ok_or_else(|| HvError::Failed(format!("{sums_url} has no line for `{file}`; set `image.sha256`")))
}

/// The hash `sha256sum` wrote for `file` (`<hex>  <file>`, or `<hex> *<file>` in binary mode).
fn sums_entry(text: &str, file: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once(char::is_whitespace))
        .find(|(h, f)| f.trim().trim_start_matches('*') == file && h.len() == 64)
        .map(|(h, _)| h.to_string())
}

/// Downloads `url` into a file that has no name (it goes when it is closed, and nobody can put
/// a link or another file in its place), at most `max` bytes, checking the SHA-256 as it
/// streams; nothing is kept on a mismatch.
async fn download(url: &str, want: &str, max: u64) -> HvResult<File> {
    let mut file = tempfile::tempfile().map_err(|e| HvError::Failed(format!("a temporary file for {url}: {e}")))?;
    let mut h = Sha256::new();
    let mut size = 0u64;
    http_client::get(url, &mut |chunk| {
        size += chunk.len() as u64;
        if size > max {
            return Err(format!("the image is over the limit of {max} bytes"));
        }
        h.update(chunk);
        file.write_all(chunk).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| HvError::Failed(format!("downloading {url}: {e}")))?;
    let got = hex(&h.finalize());
    if !got.eq_ignore_ascii_case(want) {
        return Err(HvError::Failed(format!("{url} has SHA-256 {got}, expected {want}; the download was discarded")));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256sums_lines_in_text_and_binary_mode() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let text = format!("{a}  noble-server-cloudimg-amd64.img\n{b} *noble.qcow2\nshort  x.img\n");
        assert_eq!(sums_entry(&text, "noble-server-cloudimg-amd64.img"), Some(a));
        assert_eq!(sums_entry(&text, "noble.qcow2"), Some(b));
        assert_eq!(sums_entry(&text, "x.img"), None, "not a SHA-256");
        assert_eq!(sums_entry(&text, "noble"), None, "whole names only");
    }
}

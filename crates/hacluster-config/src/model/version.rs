//! Kubernetes versions this hacluster knows, with their support windows.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A released Kubernetes version, `v1.MINOR.PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for KubeVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a Kubernetes version of the form v1.MINOR.PATCH (for example v1.31.4)")]
pub struct BadVersion(pub String);

impl FromStr for KubeVersion {
    type Err = BadVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadVersion(s.to_string());
        let body = s.strip_prefix('v').unwrap_or(s);
        let mut parts = body.split('.');
        let mut next = || -> Result<u32, BadVersion> {
            let p = parts.next().ok_or_else(bad)?;
            // No signs, no leading zeros, no pre-release suffixes: kubeadm packages are released
            // versions only.
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || (p.len() > 1 && p.starts_with('0')) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        let v = KubeVersion { major: next()?, minor: next()?, patch: next()? };
        if parts.next().is_some() || v.major != 1 {
            return Err(bad());
        }
        Ok(v)
    }
}

/// A minor release line and its end of life (end of patch support), as published at
/// kubernetes.io/releases. Lines after 1.35 follow the project's fixed cadence (a release every
/// four months, 14 months of patches); update this table with each hacluster release.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseLine {
    pub minor: u32,
    pub end_of_life: &'static str,
}

pub const RELEASE_LINES: &[ReleaseLine] = &[
    ReleaseLine { minor: 22, end_of_life: "2022-10-28" },
    ReleaseLine { minor: 23, end_of_life: "2023-02-28" },
    ReleaseLine { minor: 24, end_of_life: "2023-07-28" },
    ReleaseLine { minor: 25, end_of_life: "2023-10-28" },
    ReleaseLine { minor: 26, end_of_life: "2024-02-28" },
    ReleaseLine { minor: 27, end_of_life: "2024-06-28" },
    ReleaseLine { minor: 28, end_of_life: "2024-10-28" },
    ReleaseLine { minor: 29, end_of_life: "2025-02-28" },
    ReleaseLine { minor: 30, end_of_life: "2025-06-28" },
    ReleaseLine { minor: 31, end_of_life: "2025-10-28" },
    ReleaseLine { minor: 32, end_of_life: "2026-02-28" },
    ReleaseLine { minor: 33, end_of_life: "2026-06-28" },
    ReleaseLine { minor: 34, end_of_life: "2026-10-27" },
    ReleaseLine { minor: 35, end_of_life: "2027-02-28" },
    ReleaseLine { minor: 36, end_of_life: "2027-06-28" },
    ReleaseLine { minor: 37, end_of_life: "2027-10-28" },
];

/// The version used when the config names none: the newest patch of the newest minor whose
/// real kubeadm, built from the Kubernetes Go modules, judges what hacluster renders (the
/// `default` line of tests/k8s/versions; a test keeps the two equal).
pub const DEFAULT_VERSION: KubeVersion = KubeVersion { major: 1, minor: 37, patch: 2 };

/// The first minor published on pkgs.k8s.io; older packages lived only on the legacy
/// apt.kubernetes.io / yum.kubernetes.io repositories, which were shut down in March 2024.
pub const FIRST_PKGS_K8S_IO_MINOR: u32 = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Support {
    Supported { end_of_life: &'static str },
    EndOfLife { end_of_life: &'static str },
    TooOld { oldest_minor: u32 },
    TooNew { newest_minor: u32 },
}

impl KubeVersion {
    pub fn line(self) -> Option<&'static ReleaseLine> {
        RELEASE_LINES.iter().find(|l| l.minor == self.minor)
    }

    /// Support status on `today` (an ISO date, `YYYY-MM-DD`; ISO dates compare as strings).
    pub fn support(self, today: &str) -> Support {
        let oldest = RELEASE_LINES[0].minor;
        let newest = RELEASE_LINES[RELEASE_LINES.len() - 1].minor;
        match self.line() {
            Some(l) if l.end_of_life < today => Support::EndOfLife { end_of_life: l.end_of_life },
            Some(l) => Support::Supported { end_of_life: l.end_of_life },
            None if self.minor < oldest => Support::TooOld { oldest_minor: oldest },
            None => Support::TooNew { newest_minor: newest },
        }
    }

    /// The kubeadm configuration API the bootstrap renders for this version: v1beta4 from
    /// 1.31 (where v1beta3 was deprecated), v1beta3 before.
    pub fn kubeadm_api(self) -> &'static str {
        if self.minor >= 31 { "kubeadm.k8s.io/v1beta4" } else { "kubeadm.k8s.io/v1beta3" }
    }

    pub fn on_pkgs_k8s_io(self) -> bool {
        self.minor >= FIRST_PKGS_K8S_IO_MINOR
    }
}

/// Today's date (UTC) as `YYYY-MM-DD`, from the system clock.
pub fn today_utc() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    civil_from_days((secs / 86_400) as i64)
}

/// Days since 1970-01-01 → `YYYY-MM-DD` (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> String {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!("v1.23.7".parse::<KubeVersion>().unwrap().to_string(), "v1.23.7");
        assert_eq!("1.31.0".parse::<KubeVersion>().unwrap().minor, 31);
        for bad in ["v1.23", "v2.0.0", "v1.23.7-rc.1", "latest", "v1.023.1", "v1.23.7.1", ""] {
            assert!(bad.parse::<KubeVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn support_windows() {
        let v: KubeVersion = "v1.23.7".parse().unwrap();
        assert!(matches!(v.support("2026-11-22"), Support::EndOfLife { end_of_life: "2023-02-28" }));
        assert!(matches!(v.support("2023-01-01"), Support::Supported { .. }));
        assert!(!v.on_pkgs_k8s_io());
        let v: KubeVersion = "v1.99.0".parse().unwrap();
        assert!(matches!(v.support("2026-11-22"), Support::TooNew { newest_minor: 37 }));
        assert_eq!("v1.31.1".parse::<KubeVersion>().unwrap().kubeadm_api(), "kubeadm.k8s.io/v1beta4");
        assert_eq!("v1.30.1".parse::<KubeVersion>().unwrap().kubeadm_api(), "kubeadm.k8s.io/v1beta3");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), "1970-01-01");
        assert_eq!(civil_from_days(20_414), "2025-11-22");
        assert_eq!(civil_from_days(11_016), "2000-02-29");
    }
}

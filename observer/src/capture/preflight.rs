//! Checks made before loading anything, each failing with an error that names the fix.
//!
//! Every question to the host goes through the [`Host`] trait, so the decisions are tested with
//! a fake host, and the real one ([`LinuxHost`]) is a thin layer of reads and one mount.

use std::path::Path;

/// Capabilities the observer needs (numbers from linux/capability.h).
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_SYS_PTRACE: u32 = 19;
pub const CAP_DAC_READ_SEARCH: u32 = 2;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

pub const TRACEFS: &str = observer_common::TRACEFS;
pub const BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "missing capabilities: {}. Run as root (`sudo observer ...`) or grant them (e.g. `setcap cap_bpf,cap_perfmon,cap_sys_ptrace,cap_dac_read_search+ep observer`)",
        .0.join(", ")
    )]
    MissingCapabilities(Vec<&'static str>),
    #[error(
        "no kernel BTF at {BTF}: this kernel was built without CONFIG_DEBUG_INFO_BTF; use a kernel with BTF (most distribution kernels since 2020 have it)"
    )]
    NoBtf,
    #[error(
        "tracefs is not mounted at {TRACEFS} and mounting it failed ({0}); mount it with `sudo mount -t tracefs nodev {TRACEFS}` (in Kubernetes, mount the host's /sys/kernel/tracing into the pod)"
    )]
    Tracefs(String),
    #[error("kernel {0} has no BPF ring buffer (needs Linux 5.8 or later); upgrade the kernel")]
    NoRingBuffer(String),
    #[error(
        "no process with pid {0} (is it running? in a container, is the host pid namespace shared?)"
    )]
    NoSuchPid(u32),
}

/// What the preflight asks the host.
pub trait Host {
    /// Effective capability bits of this process; `None` if they cannot be read.
    fn effective_caps(&self) -> Option<u64>;
    fn exists(&self, path: &Path) -> bool;
    fn mount_tracefs(&self) -> Result<(), String>;
    /// `uname -r`.
    fn kernel_release(&self) -> String;
    fn pid_exists(&self, pid: u32) -> bool;
}

/// The real host.
pub struct LinuxHost;

impl Host for LinuxHost {
    fn effective_caps(&self) -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
        u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn mount_tracefs(&self) -> Result<(), String> {
        let status = std::process::Command::new("mount")
            .args(["-t", "tracefs", "nodev", TRACEFS])
            .stderr(std::process::Stdio::piped())
            .output()
            .map_err(|e| e.to_string())?;
        if status.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&status.stderr).trim().to_owned())
        }
    }

    fn kernel_release(&self) -> String {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }

    fn pid_exists(&self, pid: u32) -> bool {
        Path::new("/proc").join(pid.to_string()).is_dir()
    }
}

fn has(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

/// Capabilities missing for loading and attaching the probes and reading other processes' /proc.
pub fn missing_capabilities(caps: u64) -> Vec<&'static str> {
    let mut missing = Vec::new();
    // CAP_SYS_ADMIN covers BPF and PERFMON on every kernel.
    if !has(caps, CAP_SYS_ADMIN) {
        if !has(caps, CAP_BPF) {
            missing.push("CAP_BPF");
        }
        if !has(caps, CAP_PERFMON) {
            missing.push("CAP_PERFMON");
        }
    }
    if !has(caps, CAP_SYS_PTRACE) {
        missing.push("CAP_SYS_PTRACE");
    }
    if !has(caps, CAP_DAC_READ_SEARCH) && !has(caps, CAP_SYS_ADMIN) {
        missing.push("CAP_DAC_READ_SEARCH");
    }
    missing
}

/// (major, minor) of a release string like `6.18.44-fc`.
fn version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Runs every check; mounts tracefs when it is missing and we may.
pub fn check(host: &dyn Host, pids: &[u32]) -> Result<(), PreflightError> {
    if let Some(caps) = host.effective_caps() {
        let missing = missing_capabilities(caps);
        if !missing.is_empty() {
            return Err(PreflightError::MissingCapabilities(missing));
        }
    }
    if !host.exists(Path::new(BTF)) {
        return Err(PreflightError::NoBtf);
    }
    let release = host.kernel_release();
    if version(&release).is_some_and(|v| v < (5, 8)) {
        return Err(PreflightError::NoRingBuffer(release));
    }
    for &pid in pids {
        if !host.pid_exists(pid) {
            return Err(PreflightError::NoSuchPid(pid));
        }
    }
    if !host.exists(&Path::new(TRACEFS).join("events/syscalls")) {
        host.mount_tracefs().map_err(PreflightError::Tracefs)?;
        if !host.exists(&Path::new(TRACEFS).join("events/syscalls")) {
            return Err(PreflightError::Tracefs(
                "mounted, but events/syscalls is absent (CONFIG_FTRACE_SYSCALLS off?)".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct Fake {
        caps: Option<u64>,
        btf: bool,
        tracefs: Cell<bool>,
        can_mount: bool,
        release: &'static str,
        pids: Vec<u32>,
    }

    impl Default for Fake {
        fn default() -> Self {
            Fake {
                caps: Some(u64::MAX),
                btf: true,
                tracefs: Cell::new(true),
                can_mount: true,
                release: "6.18.1",
                pids: vec![1],
            }
        }
    }

    impl Host for Fake {
        fn effective_caps(&self) -> Option<u64> {
            self.caps
        }
        fn exists(&self, path: &Path) -> bool {
            if path == Path::new(BTF) {
                self.btf
            } else {
                self.tracefs.get()
            }
        }
        fn mount_tracefs(&self) -> Result<(), String> {
            if self.can_mount {
                self.tracefs.set(true);
                Ok(())
            } else {
                Err("permission denied".into())
            }
        }
        fn kernel_release(&self) -> String {
            self.release.into()
        }
        fn pid_exists(&self, pid: u32) -> bool {
            self.pids.contains(&pid)
        }
    }

    fn caps(list: &[u32]) -> u64 {
        list.iter().fold(0, |acc, c| acc | (1 << c))
    }

    #[test]
    fn all_good() {
        check(&Fake::default(), &[1]).unwrap();
    }

    #[test]
    fn unprivileged_names_each_missing_capability() {
        let f = Fake {
            caps: Some(0),
            ..Fake::default()
        };
        let e = check(&f, &[1]).unwrap_err();
        let msg = e.to_string();
        for cap in [
            "CAP_BPF",
            "CAP_PERFMON",
            "CAP_SYS_PTRACE",
            "CAP_DAC_READ_SEARCH",
            "sudo",
        ] {
            assert!(msg.contains(cap), "{msg}");
        }
    }

    #[test]
    fn least_privilege_set_is_enough_and_each_is_needed() {
        let set = [CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH];
        assert!(missing_capabilities(caps(&set)).is_empty());
        let names = [
            "CAP_BPF",
            "CAP_PERFMON",
            "CAP_SYS_PTRACE",
            "CAP_DAC_READ_SEARCH",
        ];
        for (i, name) in names.iter().enumerate() {
            let without: Vec<u32> = set
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, c)| *c)
                .collect();
            assert_eq!(missing_capabilities(caps(&without)), vec![*name]);
        }
    }

    #[test]
    fn no_btf() {
        let f = Fake {
            btf: false,
            ..Fake::default()
        };
        assert!(matches!(check(&f, &[1]), Err(PreflightError::NoBtf)));
    }

    #[test]
    fn old_kernel_has_no_ring_buffer() {
        let f = Fake {
            release: "5.4.0-150-generic",
            ..Fake::default()
        };
        let e = check(&f, &[1]).unwrap_err();
        assert!(e.to_string().contains("5.8"), "{e}");
        let f = Fake {
            release: "5.8.0",
            ..Fake::default()
        };
        check(&f, &[1]).unwrap();
    }

    #[test]
    fn missing_pid() {
        let e = check(&Fake::default(), &[1, 999]).unwrap_err();
        assert!(matches!(e, PreflightError::NoSuchPid(999)));
    }

    #[test]
    fn tracefs_mounted_when_missing_or_explained() {
        let f = Fake {
            tracefs: Cell::new(false),
            ..Fake::default()
        };
        check(&f, &[1]).unwrap();
        assert!(f.tracefs.get());
        let f = Fake {
            tracefs: Cell::new(false),
            can_mount: false,
            ..Fake::default()
        };
        let msg = check(&f, &[1]).unwrap_err().to_string();
        assert!(
            msg.contains("mount -t tracefs nodev /sys/kernel/tracing"),
            "{msg}"
        );
    }
}

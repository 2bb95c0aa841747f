//! What the observer reads from `/proc`: process names, descendants of a pid, and the socket
//! behind an fd that existed before the observer attached (inode -> /proc/PID/net/tcp{,6}).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::sync::Arc;

use procfs::process::{FDTarget, Process};

use crate::http::tracker::{FdKind, SocketLookup};
use crate::k8s::{K8sMeta, SharedIndex};
use crate::pipeline::ProcView;
use crate::record::ProcessMeta;
use crate::runtime::{self, Runtime};
use crate::text::SharedStr;

/// `/proc` (or a host's `/proc` mounted elsewhere), and with `--kubernetes` the pods of the node.
#[derive(Debug, Clone)]
pub struct Procfs {
    root: PathBuf,
    pods: Option<SharedIndex>,
    /// The runtime of each executable file read so far, by (device, inode): a node runs many
    /// processes of few programs.
    runtimes: HashMap<(u64, u64), Runtime>,
}

/// Executables whose runtime is remembered at most (the cache starts over when full).
const RUNTIMES_KEPT: usize = 1024;

impl Default for Procfs {
    fn default() -> Self {
        Procfs::new("/proc")
    }
}

impl Procfs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Procfs {
            root: root.into(),
            pods: None,
            runtimes: HashMap::new(),
        }
    }

    /// Processes in a pod of `pods` get its metadata, and their `service` by the Kubernetes rule.
    pub fn with_pods(mut self, pods: SharedIndex) -> Self {
        self.pods = Some(pods);
        self
    }

    fn pod_of(&self, pod_uid: Option<&str>, container_id: Option<&str>) -> Option<K8sMeta> {
        self.pods.as_ref()?.lookup(pod_uid, container_id)
    }

    /// The Kubernetes `service.name`, else the process name.
    fn service_of(&mut self, pid: u32, k8s: Option<&K8sMeta>) -> String {
        k8s.and_then(K8sMeta::service_name)
            .unwrap_or_else(|| self.service_name(pid))
    }

    fn handle(&self, pid: u32) -> Option<Process> {
        Process::new_with_root(self.root.join(pid.to_string())).ok()
    }

    /// The language runtime of the process's executable; `Other` when it cannot be read (the
    /// process is gone, or its file is not ELF), said at debug level.
    pub fn runtime_of(&mut self, pid: u32) -> Runtime {
        let exe = self.root.join(pid.to_string()).join("exe");
        let key = match std::fs::metadata(&exe) {
            Ok(m) => (m.dev(), m.ino()),
            Err(e) => {
                tracing::debug!(pid, error = %e, "executable not readable; runtime unknown");
                return Runtime::Other;
            }
        };
        if let Some(r) = self.runtimes.get(&key) {
            return r.clone();
        }
        let r = runtime::of_file(&exe).unwrap_or_else(|e| {
            tracing::debug!(pid, error = %e, "runtime unknown");
            Runtime::Other
        });
        if self.runtimes.len() >= RUNTIMES_KEPT {
            self.runtimes.clear();
        }
        self.runtimes.insert(key, r.clone());
        r
    }

    pub fn exists(&self, pid: u32) -> bool {
        self.root.join(pid.to_string()).is_dir()
    }

    /// `pid` and every process below it in the parent tree, as they are now.
    pub fn with_descendants(&self, pid: u32) -> Vec<u32> {
        let mut parent_of = Vec::new();
        if let Ok(all) = procfs::process::all_processes_with_root(&self.root) {
            for p in all.flatten() {
                if let Ok(stat) = p.stat() {
                    parent_of.push((stat.pid as u32, stat.ppid as u32));
                }
            }
        }
        let mut found: HashSet<u32> = HashSet::from([pid]);
        // Parent links form a tree; iterate to a fixed point.
        loop {
            let before = found.len();
            for &(child, parent) in &parent_of {
                if found.contains(&parent) {
                    found.insert(child);
                }
            }
            if found.len() == before {
                break;
            }
        }
        let mut v: Vec<u32> = found.into_iter().collect();
        v.sort_unstable();
        v
    }

    fn peer_of_inode(&self, proc: &Process, inode: u64) -> Option<SocketAddr> {
        let v4 = proc.tcp().unwrap_or_default();
        let v6 = proc.tcp6().unwrap_or_default();
        v4.into_iter()
            .chain(v6)
            .find(|e| e.inode == inode)
            .map(|e| e.remote_address)
    }
}

impl SocketLookup for Procfs {
    fn lookup(&mut self, pid: u32, fd: i32) -> FdKind {
        let Some(proc) = self.handle(pid) else {
            return FdKind::Unknown;
        };
        let Ok(fd) = u32::try_from(fd) else {
            return FdKind::NotSocket;
        };
        let Ok(info) = proc.fd_from_fd(fd as i32) else {
            return FdKind::Unknown;
        };
        match info.target {
            FDTarget::Socket(inode) => FdKind::Socket {
                peer: self.peer_of_inode(&proc, inode),
            },
            _ => FdKind::NotSocket,
        }
    }
}

impl ProcView for Procfs {
    fn process(&mut self, pid: u32) -> ProcessMeta {
        let dir = self.root.join(pid.to_string());
        let executable = std::fs::read_link(dir.join("exe"))
            .ok()
            .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()));
        let command = std::fs::read(dir.join("cmdline"))
            .ok()
            .and_then(|c| {
                c.split(|&b| b == 0)
                    .next()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
            })
            .filter(|c| !c.is_empty());
        let cg = std::fs::read_to_string(dir.join("cgroup"))
            .ok()
            .map(|c| crate::cgroup::parse(&c));
        let cg = cg.unwrap_or_default();
        let k8s = self.pod_of(cg.pod_uid.as_deref(), cg.container_id.as_deref());
        let runtime = self.runtime_of(pid);
        ProcessMeta {
            pid,
            service: self.service_of(pid, k8s.as_ref()),
            executable,
            command,
            cgroup: (!cg.path.is_empty()).then(|| SharedStr::from(cg.path)),
            container_id: cg.container_id.map(SharedStr::from),
            pod_uid: cg.pod_uid,
            k8s: k8s.map(Arc::new),
            runtime,
        }
    }

    /// A process whose pod was not known yet (or has changed) gets the pod's metadata; one whose
    /// pod is gone keeps what it had.
    fn refresh(&mut self, meta: &ProcessMeta) -> Option<ProcessMeta> {
        let k8s = self.pod_of(meta.pod_uid.as_deref(), meta.container_id.as_deref())?;
        if meta.k8s.as_deref() == Some(&k8s) {
            return None;
        }
        Some(ProcessMeta {
            service: self.service_of(meta.pid, Some(&k8s)),
            k8s: Some(Arc::new(k8s)),
            ..meta.clone()
        })
    }

    fn service_name(&mut self, pid: u32) -> String {
        std::fs::read_to_string(self.root.join(pid.to_string()).join("comm"))
            .map(|s| s.trim().to_owned())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("pid-{pid}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_found_with_its_children() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let procs = Procfs::default();
        let found = procs.with_descendants(me);
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&me));
        assert!(
            found.contains(&child.id()),
            "child {} not in {found:?}",
            child.id()
        );
        assert!(!found.contains(&1) || me == 1);
    }

    #[test]
    fn socket_fd_is_told_from_a_file_and_peer_is_read() {
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let mut p = Procfs::default();
        let me = std::process::id();
        assert_eq!(
            p.lookup(me, client.as_raw_fd()),
            FdKind::Socket { peer: Some(addr) }
        );
        assert_eq!(p.lookup(me, file.as_raw_fd()), FdKind::NotSocket);
        assert_eq!(p.lookup(me, 100_000), FdKind::Unknown);
        assert!(!p.service_name(me).is_empty());
    }
}

//! Container identity from `/proc/PID/cgroup` (pure).
//!
//! Lines are `hierarchy-id:controllers:path`. cgroup v2 has one line `0::/path`; v1 has one per
//! hierarchy (on hybrid hosts both, with the v2 path often `/`). The container id is the 64-hex
//! id in the last path segment that carries one, in any of the runtimes' forms:
//!
//! | runtime, cgroup driver | segment |
//! | --- | --- |
//! | docker, cgroupfs | `/docker/<id>` |
//! | docker, systemd | `docker-<id>.scope` |
//! | containerd (Kubernetes), cgroupfs | `/kubepods/<qos>/pod<uid>/<id>` |
//! | containerd, systemd | `cri-containerd-<id>.scope` |
//! | CRI-O | `crio-<id>.scope` or `/crio-<id>` (`crio-conmon-<id>` is the monitor, not the container) |
//! | podman | `libpod-<id>.scope` |
//!
//! The Kubernetes pod uid comes from a `pod<uid>` segment (`_` stands for `-` under systemd).

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupInfo {
    /// The cgroup v2 path, else the first v1 path that names a container, else the first path.
    pub path: String,
    pub container_id: Option<String>,
    pub runtime: Option<&'static str>,
    pub pod_uid: Option<String>,
}

const PREFIXES: [(&str, &str); 5] = [
    ("cri-containerd-", "containerd"),
    ("docker-", "docker"),
    ("crio-", "cri-o"),
    ("libpod-", "podman"),
    ("containerd-", "containerd"),
];

fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// (container id, runtime) of one path segment.
fn segment_id(seg: &str, parent: Option<&str>) -> Option<(String, Option<&'static str>)> {
    let seg = seg.strip_suffix(".scope").unwrap_or(seg);
    if seg.starts_with("crio-conmon-") {
        return None;
    }
    for (prefix, runtime) in PREFIXES {
        if let Some(id) = seg.strip_prefix(prefix)
            && is_id(id)
        {
            return Some((id.to_ascii_lowercase(), Some(runtime)));
        }
    }
    if is_id(seg) {
        let runtime = match parent {
            Some("docker") => Some("docker"),
            Some(p) if p.starts_with("pod") => Some("containerd"),
            _ => None,
        };
        return Some((seg.to_ascii_lowercase(), runtime));
    }
    None
}

fn pod_uid(path: &str) -> Option<String> {
    path.split('/').rev().find_map(|seg| {
        let seg = seg.strip_suffix(".slice").unwrap_or(seg);
        // systemd: kubepods-besteffort-pod<uid with _>; cgroupfs: pod<uid>
        let at = seg.rfind("pod")?;
        let uid = &seg[at + 3..];
        let uid = uid.replace('_', "-");
        (uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')).then_some(uid)
    })
}

fn container_in(path: &str) -> Option<(String, Option<&'static str>)> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    (0..segs.len())
        .rev()
        .find_map(|i| segment_id(segs[i], i.checked_sub(1).map(|p| segs[p])))
}

/// Parses the contents of `/proc/PID/cgroup`.
pub fn parse(contents: &str) -> CgroupInfo {
    let mut v2 = None;
    let mut v1 = Vec::new();
    for line in contents.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(_controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" {
            v2 = Some(path.to_owned());
        } else {
            v1.push(path.to_owned());
        }
    }
    let candidates = v2.iter().chain(v1.iter());
    for path in candidates.clone() {
        if let Some((id, runtime)) = container_in(path) {
            return CgroupInfo {
                path: path.clone(),
                container_id: Some(id),
                runtime,
                pod_uid: pod_uid(path),
            };
        }
    }
    let path = v2
        .filter(|p| p != "/")
        .or_else(|| v1.into_iter().find(|p| p != "/"))
        .unwrap_or_else(|| "/".into());
    CgroupInfo {
        pod_uid: pod_uid(&path),
        path,
        container_id: None,
        runtime: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4bfa1e9d1c07d2b4d7a5e81c0f5e2ab8ad93e5ff0c1d9e4f1a2b3c4d5e6f70";
    const UID: &str = "0b7f6c3e-1a2b-4c5d-8e9f-0a1b2c3d4e5f";

    fn check(contents: &str, runtime: Option<&str>, pod: Option<&str>) {
        let info = parse(contents);
        assert_eq!(info.container_id.as_deref(), Some(ID), "{contents}");
        assert_eq!(info.runtime, runtime, "{contents}");
        assert_eq!(info.pod_uid.as_deref(), pod, "{contents}");
    }

    #[test]
    fn docker_cgroupfs_v1() {
        let c = format!(
            "12:memory:/docker/{ID}\n11:cpu,cpuacct:/docker/{ID}\n1:name=systemd:/docker/{ID}\n"
        );
        check(&c, Some("docker"), None);
        assert_eq!(parse(&c).path, format!("/docker/{ID}"));
    }

    #[test]
    fn docker_systemd_v2() {
        check(
            &format!("0::/system.slice/docker-{ID}.scope\n"),
            Some("docker"),
            None,
        );
    }

    #[test]
    fn kubernetes_containerd_systemd_v2() {
        let uid = UID.replace('-', "_");
        let c = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice/cri-containerd-{ID}.scope\n"
        );
        check(&c, Some("containerd"), Some(UID));
    }

    /// Read from inside a container with its own cgroup namespace (the DaemonSet's case): other
    /// pods' paths are relative to the observer's own cgroup.
    #[test]
    fn kubernetes_seen_from_a_cgroup_namespace() {
        let uid = UID.replace('-', "_");
        let c = format!("0::/../../kubepods-burstable-pod{uid}.slice/cri-containerd-{ID}.scope\n");
        check(&c, Some("containerd"), Some(UID));
    }

    #[test]
    fn kubernetes_containerd_cgroupfs_v1() {
        let c = format!(
            "5:memory:/kubepods/burstable/pod{UID}/{ID}\n4:pids:/kubepods/burstable/pod{UID}/{ID}\n"
        );
        check(&c, Some("containerd"), Some(UID));
    }

    #[test]
    fn crio_and_not_its_conmon() {
        let uid = UID.replace('-', "_");
        check(
            &format!("0::/kubepods.slice/kubepods-pod{uid}.slice/crio-{ID}.scope\n"),
            Some("cri-o"),
            Some(UID),
        );
        let conmon = parse(&format!(
            "0::/kubepods.slice/kubepods-pod{uid}.slice/crio-conmon-{ID}.scope\n"
        ));
        assert_eq!(conmon.container_id, None);
        assert_eq!(conmon.pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn podman() {
        check(
            &format!(
                "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container\n"
            ),
            Some("podman"),
            None,
        );
    }

    #[test]
    fn hybrid_host_with_v2_root_uses_v1_paths() {
        let c = format!("9:name=systemd:/\n4:memory:/docker/{ID}\n0::/\n");
        check(&c, Some("docker"), None);
    }

    #[test]
    fn host_processes_have_no_container() {
        for c in [
            "0::/init.scope\n",
            "0::/user.slice/user-0.slice/session-3.scope\n",
            "4:memory:/process_api/3aef5e42cdfc316aef71d1e9df522745\n0::/\n",
            "",
        ] {
            let info = parse(c);
            assert_eq!(info.container_id, None, "{c}");
            assert_eq!(info.pod_uid, None, "{c}");
        }
        assert_eq!(parse("0::/init.scope\n").path, "/init.scope");
        assert_eq!(
            parse("4:memory:/process_api/x\n0::/\n").path,
            "/process_api/x"
        );
        assert_eq!(parse("").path, "/");
    }

    #[test]
    fn malformed_lines_never_panic() {
        for c in [
            "garbage",
            ":::",
            "0:",
            "0::",
            "\u{0}\u{ff}",
            "1:x:/docker/zz",
            &"9:a:/".repeat(1000),
        ] {
            let _ = parse(c);
        }
        assert_eq!(parse("1:x:/docker/short").container_id, None);
    }
}

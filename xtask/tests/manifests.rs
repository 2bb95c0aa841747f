//! Offline checks of the packaging: the Kubernetes manifests of deploy/ against the API schemas
//! (kubernetes-validate, installed by `cargo xtask setup` into target/k8s-venv) and against the
//! observer's least-privilege contract, and the shape of the Dockerfile.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Kubernetes versions the manifests are validated against: the oldest they support
/// (`securityContext.appArmorProfile` is 1.30+) and the newest the kubernetes-validate release bundles.
const KUBERNETES_VERSIONS: &[&str] = &["1.30.0", "1.37.0"];

/// Exactly the capabilities the observer checks for at start (observer/src/capture/preflight.rs).
const CAPABILITIES: &[&str] = &["BPF", "PERFMON", "SYS_PTRACE", "DAC_READ_SEARCH"];

const TRACEFS: &str = "/sys/kernel/tracing";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

/// The manifests of deploy/ that are Kubernetes resources (all YAML files but the kustomization).
fn resource_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy())
        .expect("deploy/")
        .map(|e| e.expect("deploy/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| p.file_stem().is_some_and(|s| s != "kustomization"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in deploy/");
    files
}

/// The one YAML document of a file of deploy/.
fn load(name: &str) -> Value {
    let path = deploy().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    assert_eq!(docs.len(), 1, "{}: one document per file", path.display());
    docs.remove(0)
}

/// The value at a JSON pointer, or a failure naming what is missing.
fn at<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer)
        .unwrap_or_else(|| panic!("{pointer} is missing"))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    at(v, pointer)
        .as_str()
        .unwrap_or_else(|| panic!("{pointer} is not a string"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("not a string: {s}")))
        .collect()
}

fn daemonset() -> Value {
    let ds = load("daemonset.yaml");
    assert_eq!(str_at(&ds, "/kind"), "DaemonSet");
    ds
}

/// The observer container of the DaemonSet (the only one).
fn container(ds: &Value) -> &Value {
    let containers = at(ds, "/spec/template/spec/containers")
        .as_array()
        .expect("containers is a list");
    assert_eq!(containers.len(), 1, "one container: {containers:?}");
    &containers[0]
}

/// Every (key, value) pair of a document, at any depth.
fn walk<'a>(v: &'a Value, out: &mut Vec<(&'a str, &'a Value)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                out.push((k, child));
                walk(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
        _ => {}
    }
}

#[test]
fn manifests_pass_kubernetes_validate_strict() {
    let tool = root().join("target/k8s-venv/bin/kubernetes-validate");
    if !tool.is_file() {
        let why = format!(
            "{} is missing: `cargo xtask setup` installs it",
            tool.display()
        );
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipped: {why}");
        return;
    }
    let files = resource_files();
    let mut cmd = Command::new(&tool);
    cmd.arg("--strict");
    for v in KUBERNETES_VERSIONS {
        cmd.args(["--kubernetes-version", v]);
    }
    let out = cmd
        .args(&files)
        .output()
        .expect("running kubernetes-validate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "kubernetes-validate failed: {stdout}{stderr}"
    );
    // A kind it has no schema for is only a WARN with exit 0: that is a failure here.
    assert!(
        stdout
            .lines()
            .all(|l| !l.starts_with("WARN") && !l.starts_with("ERROR")),
        "{stdout}"
    );
    for file in &files {
        for v in KUBERNETES_VERSIONS {
            let minor = v.rsplit_once('.').expect("x.y.z").0;
            assert!(
                stdout.lines().any(|l| l.starts_with("INFO")
                    && l.contains(&*file.to_string_lossy())
                    && l.contains(" passed ")
                    && l.ends_with(&format!("against version {minor}"))),
                "{} not validated against {v}: {stdout}",
                file.display()
            );
        }
    }
}

#[test]
fn kustomization_lists_every_manifest_and_each_exists() {
    let k = load("kustomization.yaml");
    assert_eq!(str_at(&k, "/kind"), "Kustomization");
    let listed = strings(at(&k, "/resources"));
    for name in &listed {
        assert!(
            deploy().join(name).is_file(),
            "{name} is listed but missing"
        );
    }
    for file in resource_files() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            listed.contains(&name.as_str()),
            "{name} is in deploy/ but not in kustomization.yaml"
        );
    }
    // The image the DaemonSet names is the one kustomize rewrites.
    let images = at(&k, "/images").as_array().expect("images is a list");
    let ds = daemonset();
    let image = str_at(container(&ds), "/image");
    assert!(
        images.iter().any(|i| str_at(i, "/name") == image),
        "kustomization.yaml does not set the image {image}"
    );
    // Rendering needs kustomize (kubectl's); it is not installed by setup, so only where present.
    match Command::new("kubectl")
        .args(["kustomize"])
        .arg(deploy())
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "kubectl kustomize deploy/: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => eprintln!("kubectl not found: the kustomize rendering is not checked"),
    }
}

#[test]
fn nothing_is_privileged_and_the_host_network_is_not_shared() {
    for file in resource_files() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let doc = load(&name);
        let mut pairs = Vec::new();
        walk(&doc, &mut pairs);
        for (key, value) in pairs {
            for forbidden in ["privileged", "hostNetwork", "hostIPC"] {
                assert!(
                    !(key == forbidden && value == &Value::Bool(true)),
                    "{name}: {key}: true"
                );
            }
        }
    }
}

#[test]
fn daemonset_has_least_privilege_security_context() {
    let ds = daemonset();
    assert_eq!(at(&ds, "/spec/template/spec/hostPID"), &Value::Bool(true));
    let sc = at(container(&ds), "/securityContext");
    assert_eq!(
        strings(at(sc, "/capabilities/drop")),
        ["ALL"],
        "drop exactly ALL"
    );
    let mut added = strings(at(sc, "/capabilities/add"));
    added.sort_unstable();
    let mut wanted = CAPABILITIES.to_vec();
    wanted.sort_unstable();
    assert_eq!(added, wanted, "add exactly {CAPABILITIES:?}");
    assert_eq!(at(sc, "/readOnlyRootFilesystem"), &Value::Bool(true));
    assert_eq!(at(sc, "/allowPrivilegeEscalation"), &Value::Bool(false));
    // The capabilities are root's: the container must not be made to run as another user.
    assert_eq!(at(sc, "/runAsUser"), &Value::from(0));
    // No pod-level user or capabilities that would override the container's.
    let pod_sc = ds.pointer("/spec/template/spec/securityContext");
    assert!(
        pod_sc.is_none_or(|p| p.get("runAsUser").is_none() && p.get("runAsNonRoot").is_none()),
        "pod securityContext overrides the user: {pod_sc:?}"
    );
}

#[test]
fn clusterrole_only_reads_pods() {
    let role = load("clusterrole.yaml");
    assert_eq!(str_at(&role, "/kind"), "ClusterRole");
    let rules = at(&role, "/rules").as_array().expect("rules is a list");
    assert!(!rules.is_empty(), "no rules");
    for rule in rules {
        assert_eq!(
            strings(at(rule, "/apiGroups")),
            [""],
            "core group only: {rule}"
        );
        assert_eq!(
            strings(at(rule, "/resources")),
            ["pods"],
            "pods only: {rule}"
        );
        for verb in strings(at(rule, "/verbs")) {
            assert!(
                ["get", "list", "watch"].contains(&verb),
                "verb {verb} is more than reading: {rule}"
            );
        }
        assert!(rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none());
    }
}

#[test]
fn binding_grants_the_role_to_the_daemonsets_service_account() {
    let ds = daemonset();
    let sa = load("serviceaccount.yaml");
    let role = load("clusterrole.yaml");
    let binding = load("clusterrolebinding.yaml");
    let ns = str_at(&ds, "/metadata/namespace");
    let account = str_at(&ds, "/spec/template/spec/serviceAccountName");
    assert_eq!(str_at(&sa, "/kind"), "ServiceAccount");
    assert_eq!(str_at(&sa, "/metadata/name"), account);
    assert_eq!(str_at(&sa, "/metadata/namespace"), ns);
    assert_eq!(str_at(&binding, "/kind"), "ClusterRoleBinding");
    assert_eq!(str_at(&binding, "/roleRef/kind"), "ClusterRole");
    assert_eq!(
        str_at(&binding, "/roleRef/name"),
        str_at(&role, "/metadata/name")
    );
    let subjects = at(&binding, "/subjects").as_array().expect("subjects");
    assert_eq!(subjects.len(), 1, "one subject: {subjects:?}");
    assert_eq!(str_at(&subjects[0], "/kind"), "ServiceAccount");
    assert_eq!(str_at(&subjects[0], "/name"), account);
    assert_eq!(str_at(&subjects[0], "/namespace"), ns);
    if deploy().join("namespace.yaml").is_file() {
        assert_eq!(str_at(&load("namespace.yaml"), "/metadata/name"), ns);
    }
}

/// The value following a flag in the container's args.
fn arg_value<'a>(c: &'a Value, flag: &str) -> &'a str {
    let args = strings(at(c, "/args"));
    let i = args
        .iter()
        .position(|a| *a == flag)
        .unwrap_or_else(|| panic!("no {flag} in {args:?}"));
    args.get(i + 1)
        .unwrap_or_else(|| panic!("{flag} has no value"))
}

#[test]
fn probes_use_the_port_the_observer_listens_on() {
    let ds = daemonset();
    let c = container(&ds);
    let args = strings(at(c, "/args"));
    assert!(args.contains(&"--all"), "node-wide: {args:?}");
    let listen = arg_value(c, "--listen");
    let port: u64 = listen
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("--listen {listen} has no port"));
    let ports = at(c, "/ports").as_array().expect("ports");
    let resolve = |p: &Value| -> u64 {
        match p {
            Value::Number(n) => n.as_u64().expect("port number"),
            Value::String(name) => ports
                .iter()
                .find(|q| q.get("name") == Some(&Value::from(name.as_str())))
                .and_then(|q| q.get("containerPort")?.as_u64())
                .unwrap_or_else(|| panic!("no container port named {name}")),
            other => panic!("port {other}"),
        }
    };
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = at(c, &format!("/{probe}/httpGet"));
        assert_eq!(str_at(get, "/path"), path, "{probe}");
        assert_eq!(resolve(at(get, "/port")), port, "{probe} port");
    }
    if let Some(get) = c.pointer("/startupProbe/httpGet") {
        assert_eq!(resolve(at(get, "/port")), port, "startupProbe port");
    }
}

#[test]
fn node_name_and_otlp_settings_come_from_the_environment() {
    let ds = daemonset();
    let c = container(&ds);
    let env = at(c, "/env").as_array().expect("env is a list");
    let names: Vec<&str> = env.iter().map(|e| str_at(e, "/name")).collect();
    let node = env
        .iter()
        .find(|e| str_at(e, "/name") == "NODE_NAME")
        .expect("NODE_NAME in env");
    assert_eq!(
        str_at(node, "/valueFrom/fieldRef/fieldPath"),
        "spec.nodeName"
    );
    assert!(strings(at(c, "/args")).contains(&"--kubernetes"));
    assert_eq!(arg_value(c, "--node-name"), "$(NODE_NAME)");
    let endpoint = env
        .iter()
        .find(|e| str_at(e, "/name") == "OTEL_EXPORTER_OTLP_ENDPOINT")
        .expect("OTEL_EXPORTER_OTLP_ENDPOINT in env");
    assert!(str_at(endpoint, "/value").starts_with("http://"));
    if let Some(p) = env
        .iter()
        .find(|e| str_at(e, "/name") == "OTEL_EXPORTER_OTLP_PROTOCOL")
    {
        assert!(["http/protobuf", "grpc"].contains(&str_at(p, "/value")));
    }
    // Kubernetes leaves `$(VAR)` as it is unless VAR is defined earlier in env: check each use.
    for (i, e) in env.iter().enumerate() {
        let value = e.get("value").and_then(Value::as_str).unwrap_or("");
        for var in value.split("$(").skip(1).filter_map(|s| s.split_once(')')) {
            assert!(
                names[..i].contains(&var.0),
                "{} uses $({}) before it is defined",
                names[i],
                var.0
            );
        }
    }
}

#[test]
fn tracefs_of_the_host_is_mounted_read_only() {
    let ds = daemonset();
    let c = container(&ds);
    let mounts = at(c, "/volumeMounts").as_array().expect("volumeMounts");
    let mount = mounts
        .iter()
        .find(|m| str_at(m, "/mountPath") == TRACEFS)
        .unwrap_or_else(|| panic!("nothing mounted at {TRACEFS}"));
    assert_eq!(at(mount, "/readOnly"), &Value::Bool(true));
    let name = str_at(mount, "/name");
    let volumes = at(&ds, "/spec/template/spec/volumes")
        .as_array()
        .expect("volumes");
    let volume = volumes
        .iter()
        .find(|v| str_at(v, "/name") == name)
        .unwrap_or_else(|| panic!("no volume {name}"));
    assert_eq!(str_at(volume, "/hostPath/path"), TRACEFS);
    // The only host directory the pod sees, and every mount read-only.
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert!(
        mounts
            .iter()
            .all(|m| m.get("readOnly") == Some(&Value::Bool(true)))
    );
}

#[test]
fn resources_have_requests_and_limits() {
    let ds = daemonset();
    let r = at(container(&ds), "/resources");
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            let v = at(r, &format!("/{kind}/{resource}"));
            assert!(
                v.as_str().is_some_and(|s| !s.is_empty()) || v.is_number(),
                "{kind}.{resource}: {v}"
            );
        }
    }
}

#[test]
fn dockerfile_is_multi_stage_and_ships_only_the_binary() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    // Instructions, with continuation lines joined and comments left out.
    let joined = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let instructions: Vec<(String, &str)> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (op, rest) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            (op.to_ascii_uppercase(), rest.trim())
        })
        .collect();
    let stages: Vec<usize> = (0..instructions.len())
        .filter(|&i| instructions[i].0 == "FROM")
        .collect();
    assert!(stages.len() >= 2, "a builder and a runtime stage");
    let named: Vec<&str> = stages
        .iter()
        .filter_map(|&i| {
            let words: Vec<&str> = instructions[i].1.split_whitespace().collect();
            match words.as_slice() {
                [.., as_, name] if as_.eq_ignore_ascii_case("as") => Some(*name),
                _ => None,
            }
        })
        .collect();
    assert_eq!(
        named.len(),
        stages.len(),
        "every stage is named (FROM ... AS)"
    );
    let last = &instructions[*stages.last().unwrap() + 1..];
    let copies: Vec<&str> = last
        .iter()
        .filter(|(op, _)| op == "COPY" || op == "ADD")
        .map(|(op, rest)| {
            assert_eq!(op, "COPY", "no ADD in the runtime stage");
            *rest
        })
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "the runtime stage copies one thing: {copies:?}"
    );
    let words: Vec<&str> = copies[0].split_whitespace().collect();
    let from = words
        .iter()
        .find_map(|w| w.strip_prefix("--from="))
        .expect("COPY --from=<builder stage>");
    assert!(
        named[..named.len() - 1].contains(&from),
        "{from} is an earlier stage"
    );
    let paths: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| !w.starts_with("--"))
        .collect();
    assert_eq!(paths.len(), 2, "one file, one destination: {words:?}");
    assert!(paths[0].ends_with("/observer"), "{words:?}");
    assert_eq!(paths[1], "/usr/local/bin/observer");
    let entrypoint = last
        .iter()
        .rev()
        .find(|(op, _)| op == "ENTRYPOINT")
        .expect("ENTRYPOINT in the runtime stage");
    assert_eq!(entrypoint.1, r#"["/usr/local/bin/observer"]"#);

    let ignore = std::fs::read_to_string(root().join(".dockerignore")).expect(".dockerignore");
    for entry in [".git", "target"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore leaves out {entry}"
        );
    }
}

//! Idempotent installation of the toolchain (../shared/notes/toolchain.md) and the test programs.
//! Each step checks first and stays quiet when its tool is already there.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::Context as _;

use crate::{is_root, run};

/// The toolchain that compiles the kernel programs, chosen as observer/build.rs chooses it (which
/// says why it is not the nightly): `OBSERVER_EBPF_TOOLCHAIN`, else the one running xtask, else
/// stable. bpf-linker is built against its LLVM.
pub fn ebpf_toolchain() -> String {
    std::env::var("OBSERVER_EBPF_TOOLCHAIN")
        .or_else(|_| std::env::var("RUSTUP_TOOLCHAIN"))
        .unwrap_or_else(|_| "stable".to_owned())
}

/// Debian packages: real servers and clients for the end-to-end tests. LLVM (for bpf-linker) is
/// added in the version of the kernel programs' toolchain's LLVM.
const APT_PACKAGES: &[&str] = &["nginx-light", "curl", "wrk", "bpftool", "golang-go"];

fn quiet_ok(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn privileged(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.arg(program);
        c
    }
}

/// The LLVM major version in `rustc -vV` output ("LLVM version: 22.1.2").
fn llvm_major(rustc_vv: &str) -> Option<u32> {
    let version = rustc_vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version:"))?;
    version.trim().split('.').next()?.parse().ok()
}

/// The LLVM major version a `cargo install`ed bpf-linker was built for (its `llvm-N` feature),
/// from cargo's `.crates2.json`; None when cargo did not install it or recorded no such feature.
fn bpf_linker_llvm(crates2_json: &str) -> Option<u32> {
    let v: serde_json::Value = serde_json::from_str(crates2_json).ok()?;
    let (_, install) = v["installs"]
        .as_object()?
        .iter()
        .find(|(id, _)| id.starts_with("bpf-linker "))?;
    install["features"]
        .as_array()?
        .iter()
        .find_map(|f| f.as_str()?.strip_prefix("llvm-")?.parse().ok())
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"))
}

pub fn setup() -> anyhow::Result<()> {
    let toolchain = ebpf_toolchain();
    // 1. The std sources of the kernel programs' toolchain, for -Z build-std=core. `component
    //    add` installs the component of the toolchain that is there; `toolchain install` would
    //    first update a channel (it moved the nightly to a new LLVM once).
    let has_src = Command::new("rustup")
        .args([
            "component",
            "list",
            "--toolchain",
            &toolchain,
            "--installed",
        ])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with("rust-src"))
        });
    if !has_src {
        eprintln!("setup: installing the {toolchain} toolchain's rust-src");
        run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            &toolchain,
        ]))?;
    }
    let vv = Command::new("rustup")
        .args(["run", &toolchain, "rustc", "-vV"])
        .output()
        .with_context(|| format!("running rustc of the {toolchain} toolchain"))?;
    if !vv.status.success() {
        anyhow::bail!(
            "`rustup run {toolchain} rustc -vV` failed ({}): {}",
            vv.status,
            String::from_utf8_lossy(&vv.stderr).trim()
        );
    }
    let llvm = llvm_major(&String::from_utf8_lossy(&vv.stdout))
        .with_context(|| format!("no LLVM version in `rustup run {toolchain} rustc -vV`"))?;

    // 2. Debian packages, LLVM in the toolchain's version.
    let llvm_packages = [format!("llvm-{llvm}-dev"), format!("libpolly-{llvm}-dev")];
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .chain(llvm_packages.iter().map(String::as_str))
        .filter(|p| !dpkg_installed(p))
        .collect();
    if !missing.is_empty() {
        eprintln!("setup: installing {}", missing.join(" "));
        run(privileged("apt-get").args(["update", "-qq"]))?;
        run(privileged("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))
        .with_context(|| {
            format!(
                "installing {} (LLVM {llvm} is the LLVM of the {toolchain} toolchain)",
                missing.join(" ")
            )
        })?;
    }

    // 3. bpf-linker built against that LLVM (its default feature wants the newest LLVM); again
    //    if cargo installed it for another one.
    let built_for = std::fs::read_to_string(cargo_home().join(".crates2.json"))
        .ok()
        .and_then(|s| bpf_linker_llvm(&s));
    let runs = quiet_ok(Command::new("bpf-linker").arg("--version"));
    if !runs || built_for.is_some_and(|v| v != llvm) {
        eprintln!("setup: building bpf-linker against LLVM {llvm} (about a minute)");
        run(Command::new("cargo")
            .args(["install", "--locked", "--force", "bpf-linker"])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{llvm}"),
            ])
            .env("LLVM_PREFIX", format!("/usr/lib/llvm-{llvm}")))
        .context("installing bpf-linker")?;
    }

    // 3b. cargo-fuzz, for the fuzz smoke run of `cargo xtask test` (fuzz/).
    if !quiet_ok(Command::new("cargo").args(["fuzz", "--version"])) {
        eprintln!("setup: installing cargo-fuzz");
        run(Command::new("cargo").args(["install", "--locked", "cargo-fuzz"]))
            .context("installing cargo-fuzz")?;
    }

    // 4. Python packages of the OpenTelemetry-instrumented test app, in a venv of the repo's target dir.
    let venv = crate::root_dir().join("target/otel-venv");
    let reqs = crate::root_dir().join("tests/apps/requirements-otel.txt");
    let marker = venv.join(".installed");
    if reqs.is_file() && std::fs::read(&marker).ok() != std::fs::read(&reqs).ok() {
        eprintln!(
            "setup: installing the OpenTelemetry Python SDK into {}",
            venv.display()
        );
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        run(Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "-r"])
            .arg(&reqs))?;
        std::fs::copy(&reqs, &marker).context("marking the venv as installed")?;
    }

    // 5. A real OpenTelemetry collector for the OTLP end-to-end tests (a wheel with its binary).
    let rotel = crate::root_dir().join("target/rotel-venv");
    if !rotel.join("bin/rotel-agent-path").is_file() {
        eprintln!(
            "setup: installing the rotel collector into {}",
            rotel.display()
        );
        run(Command::new("python3").arg("-m").arg("venv").arg(&rotel))?;
        run(Command::new(rotel.join("bin/pip")).args(["install", "-q", ROTEL]))?;
        let agent = Command::new(rotel.join("bin/python"))
            .args(["-c", "import rotel, os; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))"])
            .output()
            .context("locating rotel-agent")?;
        std::fs::write(
            rotel.join("bin/rotel-agent-path"),
            String::from_utf8_lossy(&agent.stdout).trim(),
        )
        .context("recording the rotel-agent path")?;
    }

    // 6. kubernetes-validate (it bundles the Kubernetes JSON schemas) for the offline check of deploy/.
    let k8s = crate::root_dir().join("target/k8s-venv");
    let installed = Command::new(k8s.join("bin/kubernetes-validate"))
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == KUBERNETES_VALIDATE_VERSION);
    if !installed {
        eprintln!(
            "setup: installing kubernetes-validate {KUBERNETES_VALIDATE_VERSION} into {}",
            k8s.display()
        );
        run(Command::new("python3").arg("-m").arg("venv").arg(&k8s))?;
        run(Command::new(k8s.join("bin/pip")).args([
            "install",
            "-q",
            &format!("kubernetes-validate=={KUBERNETES_VALIDATE_VERSION}"),
        ]))
        .context("installing kubernetes-validate")?;
    }
    Ok(())
}

/// The kubernetes-validate release that checks the manifests of deploy/ (xtask/tests/manifests.rs).
const KUBERNETES_VALIDATE_VERSION: &str = "1.37.0";

/// The rotel collector release the OTLP tests run against.
const ROTEL: &str = "rotel==0.0.1a15";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_major_of_rustc() {
        let stable = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\nLLVM version: 22.1.2\n";
        assert_eq!(llvm_major(stable), Some(22));
        assert_eq!(
            llvm_major("release: 1.101.0-nightly\nLLVM version: 23.1.4"),
            Some(23)
        );
        assert_eq!(llvm_major("release: 1.95.0\n"), None);
        assert_eq!(llvm_major("LLVM version: x.1"), None);
    }

    #[test]
    fn bpf_linker_llvm_from_crates2() {
        let json = r#"{"installs":{
            "cargo-fuzz 0.13.2 (registry+https://github.com/rust-lang/crates.io-index)":{"features":[],"no_default_features":false},
            "bpf-linker 0.13.0 (registry+https://github.com/rust-lang/crates.io-index)":{"features":["llvm-22"],"no_default_features":true}}}"#;
        assert_eq!(bpf_linker_llvm(json), Some(22));
        let default = json.replace(r#"["llvm-22"]"#, "[]");
        assert_eq!(bpf_linker_llvm(&default), None, "default features: unknown");
        let other = json.replace("bpf-linker 0.13.0", "bpf-linkerx 0.1.0");
        assert_eq!(bpf_linker_llvm(&other), None, "not installed by cargo");
        assert_eq!(bpf_linker_llvm("not json"), None);
    }
}

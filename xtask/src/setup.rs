//! Idempotent installation of the toolchain (../shared/notes/toolchain.md) and the test programs.
//! Each step checks first and stays quiet when its tool is already there.

use std::process::{Command, Stdio};

use anyhow::Context as _;

use crate::{is_root, run};

/// Debian packages: LLVM 22 for bpf-linker; real servers and clients for the end-to-end tests.
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "nginx-light",
    "curl",
    "wrk",
    "bpftool",
];

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

pub fn setup() -> anyhow::Result<()> {
    // 1. The nightly's std sources, for -Z build-std=core.
    let has_src = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with("rust-src"))
        });
    if !has_src {
        eprintln!("setup: installing the nightly toolchain's rust-src");
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))?;
    }

    // 2. Debian packages.
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if !missing.is_empty() {
        eprintln!("setup: installing {}", missing.join(" "));
        run(privileged("apt-get").args(["update", "-qq"]))?;
        run(privileged("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }

    // 3. bpf-linker built against LLVM 22 (its default feature wants LLVM 23).
    if !quiet_ok(Command::new("bpf-linker").arg("--version")) {
        eprintln!("setup: building bpf-linker against LLVM 22 (about a minute)");
        run(Command::new("cargo")
            .args([
                "install",
                "--locked",
                "bpf-linker",
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22"))
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

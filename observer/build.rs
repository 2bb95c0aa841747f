//! Builds the kernel programs (`observer-ebpf`, target bpfel-unknown-none, nightly + bpf-linker)
//! into OUT_DIR, where `src/capture/loader.rs` embeds them. `cargo xtask setup` installs the
//! toolchain this needs; set AYA_BUILD_SKIP=1 to build only the user-space code (e.g. docs).
use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-changed=../observer-common/src");
    if std::env::var_os("AYA_BUILD_SKIP").is_none() && which("bpf-linker").is_none() {
        anyhow::bail!(
            "bpf-linker is not installed: run `cargo xtask setup` (it installs the eBPF toolchain)"
        );
    }
    let package = aya_build::Package {
        name: "observer-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../observer-ebpf"),
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default())
        .context("building the eBPF programs (observer-ebpf) failed; `cargo xtask setup` installs the toolchain")
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(std::env::var_os("CARGO_HOME").map(|h| std::path::PathBuf::from(h).join("bin")))
        .chain(std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo/bin")))
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

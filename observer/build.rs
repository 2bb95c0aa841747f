//! Builds the kernel programs (`observer-ebpf`, target bpfel-unknown-none, bpf-linker) into
//! OUT_DIR, where `src/capture/loader.rs` embeds them. `cargo xtask setup` installs the toolchain
//! this needs; set AYA_BUILD_SKIP=1 to build only the user-space code (e.g. docs).
use anyhow::Context as _;

/// The toolchain that compiles the kernel programs: `OBSERVER_EBPF_TOOLCHAIN` when set, else the
/// one building this crate (rustup's proxy sets `RUSTUP_TOOLCHAIN`), else stable. Not "the
/// nightly" as aya-build assumes: bpf-linker reads the LLVM bitcode rustc writes, so both must
/// share an LLVM major version, `cargo xtask setup` builds bpf-linker against this toolchain's
/// LLVM, and a nightly moves to a new LLVM without notice (the kernel build broke that way on
/// 2026-11-23: nightly 1.101, LLVM 23, against a bpf-linker for LLVM 22). The same choice as
/// `ebpf_toolchain` in xtask/src/setup.rs.
fn ebpf_toolchain() -> String {
    println!("cargo:rerun-if-env-changed=OBSERVER_EBPF_TOOLCHAIN");
    std::env::var("OBSERVER_EBPF_TOOLCHAIN")
        .or_else(|_| std::env::var("RUSTUP_TOOLCHAIN"))
        .unwrap_or_else(|_| "stable".to_owned())
}

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-changed=../observer-common/src");
    if std::env::var_os("AYA_BUILD_SKIP").is_none() && which("bpf-linker").is_none() {
        anyhow::bail!(
            "bpf-linker is not installed: run `cargo xtask setup` (it installs the eBPF toolchain)"
        );
    }
    // `-Z build-std=core` (the BPF target ships no precompiled core) on a stable toolchain: the
    // nested cargo that aya-build starts inherits this, and aya-build then passes the flag.
    #[expect(
        unsafe_code,
        reason = "set_var is unsafe where other threads may read the environment"
    )]
    // SAFETY: a build script runs on one thread; nothing else reads or writes its environment.
    unsafe {
        std::env::set_var("RUSTC_BOOTSTRAP", "1");
    }
    let package = aya_build::Package {
        name: "observer-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../observer-ebpf"),
        ..Default::default()
    };
    let toolchain = ebpf_toolchain();
    aya_build::build_ebpf([package], aya_build::Toolchain::Custom(&toolchain)).with_context(|| {
        format!(
            "building the eBPF programs (observer-ebpf) with the {toolchain} toolchain failed; \
             `cargo xtask setup` installs what this needs (an \"Invalid record\" from bpf-linker \
             means it was built for another LLVM than `rustup run {toolchain} rustc -vV` shows: \
             run setup again, or set OBSERVER_EBPF_TOOLCHAIN to a toolchain with bpf-linker's LLVM)"
        )
    })
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(std::env::var_os("CARGO_HOME").map(|h| std::path::PathBuf::from(h).join("bin")))
        .chain(std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo/bin")))
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

# syntax=docker/dockerfile:1
# observer image: a builder stage with the eBPF toolchain of `cargo xtask setup`, and a small
# runtime stage with only the binary. Build and push (from the repository root):
#   docker build -t registry.example.com/observer:0.1.0 . && docker push registry.example.com/observer:0.1.0
# The image is built for the builder's architecture (the eBPF programs are the same for all).
# deploy/ runs it as a DaemonSet.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
# bpf-linker links the kernel programs with the LLVM of the toolchain that compiles them: the
# image's stable rustc (observer/build.rs builds them with it, RUSTC_BOOTSTRAP=1 for build-std).
# Rust 1.95 uses LLVM 22.
ARG LLVM=22
# LLVM from Debian's own archive (bookworm-security ships llvm-toolchain-22), as in setup.rs.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        llvm-${LLVM}-dev libpolly-${LLVM}-dev \
 && rm -rf /var/lib/apt/lists/*
# Fail here, with the reason, if RUST_VERSION and LLVM disagree.
RUN rustup component add rust-src \
 && llvm="$(rustc -vV | sed -n 's/^LLVM version: //p')" \
 && case "$llvm" in \
        "${LLVM}".*) ;; \
        *) echo "rustc uses LLVM $llvm, bpf-linker is built for LLVM ${LLVM}: build with --build-arg LLVM=${llvm%%.*} if Debian has llvm-${llvm%%.*}-dev" >&2; exit 1 ;; \
    esac
# bpf-linker's default feature wants the newest LLVM: build it against rustc's.
RUN LLVM_PREFIX=/usr/lib/llvm-${LLVM} \
    cargo install --locked bpf-linker --no-default-features --features llvm-${LLVM}

WORKDIR /src
COPY . .
# What `cargo xtask build` does, without the rest of `cargo xtask setup` (test servers, fuzzing,
# Python venvs). Debug info is stripped from the user-space binary only: the embedded eBPF object
# keeps its BTF, which loading needs.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --package observer --bin observer \
 && install -D -m 0755 target/release/observer /out/observer \
 && strip --strip-debug /out/observer

# glibc and libgcc only (what the binary links), no shell, no package manager.
FROM gcr.io/distroless/cc-debian12 AS runtime
COPY --from=builder /out/observer /usr/local/bin/observer
# Root inside the container: the DaemonSet grants the capabilities to uid 0 and drops the rest.
USER 0:0
# /healthz, /readyz and /metrics with --listen 0.0.0.0:9464.
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/observer"]

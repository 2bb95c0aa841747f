//! Privileged end-to-end tests. Run them with `cargo xtask test` (it builds the observer, sets
//! OBSERVER_BIN and runs them as root, one at a time).
mod capture;
mod golang;
mod hardening;
mod nodewide;
mod otlp;
mod propagation;

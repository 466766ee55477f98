//! Empty: the benchmarks are the `[[bench]]` targets of this crate (see Cargo.toml).

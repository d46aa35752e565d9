//! Generates include/mamba.h from the Rust sources with cbindgen.
//! CI checks that the committed header matches what this writes.

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let config =
        cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml")).expect("cbindgen.toml");
    // Only the ffi module defines the C interface: parse src/ffi/mod.rs
    // (cbindgen follows its `mod` declarations to api.rs, legacy.rs, ...),
    // so internal constants elsewhere never leak into the header.
    let builder = cbindgen::Builder::new()
        .with_config(config)
        .with_src(format!("{crate_dir}/src/ffi/mod.rs"));
    match builder.generate() {
        Ok(bindings) => {
            bindings.write_to_file(format!("{crate_dir}/include/mamba.h"));
        }
        Err(e) => {
            // Never fail the build over the header (e.g. a syntax error that
            // rustc will report better); warn instead.
            println!("cargo:warning=cbindgen could not generate include/mamba.h: {e}");
        }
    }
}

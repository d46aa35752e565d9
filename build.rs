//! Generates include/mamba.h from the Rust sources with cbindgen.
//! CI checks that the committed header matches what this writes.

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let config =
        cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml")).expect("cbindgen.toml");
    // Only the ffi module defines the C interface; parse just its files so
    // internal constants elsewhere never leak into the header.
    let mut builder = cbindgen::Builder::new().with_config(config);
    let mut files: Vec<_> = std::fs::read_dir(format!("{crate_dir}/src/ffi"))
        .expect("src/ffi")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        // legacy.rs is reached through `mod legacy;` in mod.rs; listing it
        // again would emit its cfg-wrapped structs twice.
        .filter(|p| !p.ends_with("legacy.rs"))
        .collect();
    files.sort();
    for f in files {
        builder = builder.with_src(f);
    }
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

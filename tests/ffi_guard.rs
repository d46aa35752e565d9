//! No panic crosses the C boundary: every `extern "C" fn` defined in
//! src/ffi/*.rs runs its body inside `guard` / `guard_ptr` (status + message),
//! `free_handle` (which guards; `free_slot` calls it), or the legacy `or_exit` (message + exit(1),
//! the C project's way), unless it is listed below as unable to fail, with
//! the reason. A new export that does none of these fails this test.

const ALLOWED: &[(&str, &str)] = &[
    ("mamba_version", "returns a static string"),
    (
        "mamba_last_error",
        "returns the thread-local message's pointer",
    ),
    (
        "mamba_status_string",
        "a match on an int returning static strings",
    ),
    ("mamba_load_options_default", "returns a constant struct"),
    ("mamba_sampler_params_default", "returns a constant struct"),
    ("mamba_generate_params_default", "returns a constant struct"),
    ("time_in_ms", "clock_gettime and integer arithmetic"),
    ("read_stdin", "CStr, fgets and strlen; NULL and 0 checked"),
    ("safe_printf", "CStr and fwrite; NULL checked"),
    (
        "error_usage",
        "prints the usage and exits(1), as documented (c-project.md)",
    ),
    (
        "generate",
        "calls mamba_legacy_generate (guarded by or_exit)",
    ),
    ("chat", "calls mamba_legacy_chat (guarded by or_exit)"),
];

// free_slot only calls free_handle (the legacy structs' handle slots).
const GUARDS: &[&str] = &[
    "guard(",
    "guard_ptr(",
    "free_handle(",
    "free_slot::<",
    "or_exit(",
];

#[test]
fn every_export_is_guarded() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ffi");
    let mut seen = 0;
    let mut bad = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = src.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            let Some(rest) = t
                .strip_prefix("pub extern \"C\" fn ")
                .or_else(|| t.strip_prefix("pub unsafe extern \"C\" fn "))
                .or_else(|| t.strip_prefix("extern \"C\" fn "))
                .or_else(|| t.strip_prefix("unsafe extern \"C\" fn "))
            else {
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // The body: up to the closing brace at the definition's indentation.
            let indent = l.len() - t.len();
            let close = format!("{}}}", " ".repeat(indent));
            let end = (i + 1..lines.len())
                .find(|&k| lines[k] == close)
                .unwrap_or_else(|| panic!("{}: no end for {name}", f.display()));
            let body = lines[i..=end].join("\n");
            seen += 1;
            if GUARDS.iter().any(|g| body.contains(g)) {
                continue;
            }
            if !ALLOWED.iter().any(|(n, _)| *n == name) {
                bad.push(format!("{}: {name}", f.display()));
            }
        }
    }
    assert!(
        seen > 40,
        "found only {seen} extern \"C\" fns: is the scan broken?"
    );
    assert!(
        bad.is_empty(),
        "extern \"C\" fns whose body runs outside guard/free_handle/or_exit:\n{}",
        bad.join("\n")
    );
}

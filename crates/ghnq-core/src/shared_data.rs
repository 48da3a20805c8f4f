//! The data files that live beside the repository and never in it (their sources are not this
//! project's to redistribute): the MLPerf Tiny models and the CIFAR-10 records of
//! `../shared/data`, or of the folder `GHNQ_SHARED_DATA` names.
//!
//! Tests that need one call [`for_test`]: a clone without the folder still passes, and the
//! suite's summary (`cargo xtask test`) lists every test that skipped, the file it wanted and
//! how to point at it; with `CI=true` a missing file fails the test instead.

use std::path::{Path, PathBuf};

/// The environment variable naming the data folder (default `<workspace>/../shared/data`).
pub const ENV: &str = "GHNQ_SHARED_DATA";

/// The workspace root (this crate is `crates/ghnq-core`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The data folder.
pub fn dir() -> PathBuf {
    match std::env::var_os(ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace_root().join("../shared/data"),
    }
}

/// `rel` inside the data folder (whether or not it exists).
pub fn file(rel: &str) -> PathBuf {
    dir().join(rel)
}

/// Where tests record their skips for the suite's summary.
pub fn skip_dir() -> PathBuf {
    workspace_root().join("target/test-skips")
}

/// The data file `rel` for test `test`, or `None` after reporting the skip (stderr and
/// [`skip_dir`]). Under `CI=true` a missing file panics instead: CI must run every test.
pub fn for_test(test: &str, rel: &str) -> Option<PathBuf> {
    let path = file(rel);
    if path.exists() {
        return Some(path);
    }
    let why = format!(
        "{test}: needs {} (the shared data folder beside the checkout; point {ENV} at it)",
        path.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{why}; CI=true, so a missing file is a failure");
    }
    eprintln!("SKIPPED {why}");
    let dir = skip_dir();
    let _ = std::fs::create_dir_all(&dir);
    let name: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let _ = std::fs::write(dir.join(format!("{name}.txt")), why);
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing file is a skip with a note naming it, or under `CI=true` a failure.
    #[test]
    fn a_missing_file_is_a_noted_skip_or_a_ci_failure() {
        let rel = "no-such-folder/no-such-file.bin";
        let test = "shared_data::a_missing_file_is_a_noted_skip_or_a_ci_failure";
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        let got = std::panic::catch_unwind(|| for_test(test, rel));
        if ci {
            assert!(got.is_err(), "CI=true must fail on a missing file");
        } else {
            assert_eq!(got.unwrap(), None);
            let note = std::fs::read_to_string(
                skip_dir().join("shared_data__a_missing_file_is_a_noted_skip_or_a_ci_failure.txt"),
            )
            .unwrap();
            assert!(note.contains(rel) && note.contains(ENV), "{note}");
            // The note is this test's own, not a real skip: leave the summary clean.
            let _ = std::fs::remove_file(
                skip_dir().join("shared_data__a_missing_file_is_a_noted_skip_or_a_ci_failure.txt"),
            );
        }
    }
}

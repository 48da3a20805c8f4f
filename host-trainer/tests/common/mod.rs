//! What the CLI test files share: running the `ghnq` binary as a user would.

use std::process::{Command, Output};

/// Runs `ghnq` with `args` (no backtraces: users see the error chain, and so do the tests).
pub fn ghnq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ghnq"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("ghnq starts")
}

/// Captured output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

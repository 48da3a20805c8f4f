//! Running commands with their full command line echoed, so a CI log shows exactly what ran.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// Runs `program args…`, inheriting stdio; fails with the command line if it fails.
pub fn run(program: &str, args: &[&str]) -> Result<()> {
    run_env(program, args, &[])
}

/// Like [`run`] with extra environment variables.
pub fn run_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let line = format!("{program} {}", args.join(" "));
    eprintln!("\n$ {line}");
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .with_context(|| format!("could not start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed with {status}");
    }
    Ok(())
}

/// Runs a command and returns its standard output.
pub fn output(program: &str, args: &[&str]) -> Result<String> {
    let line = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("could not start `{line}`"))?;
    if !out.status.success() {
        bail!(
            "`{line}` failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The cargo that invoked us (so `cargo +nightly xtask` stays on nightly).
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The `ghnq` a long background job runs: `GHNQ_BIN` (a binary set aside, so that work on the
/// tree cannot change a campaign's or an evaluation's code halfway), else the release build.
pub fn ghnq_bin() -> std::path::PathBuf {
    std::env::var_os("GHNQ_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::root().join("target/release/ghnq"))
}

/// [`ghnq_bin`], building the release binary first unless `GHNQ_BIN` names one (which must
/// exist).
pub fn build_ghnq() -> Result<std::path::PathBuf> {
    if std::env::var_os("GHNQ_BIN").is_none() {
        run(
            &cargo(),
            &["build", "--release", "-p", "host-trainer", "--bin", "ghnq"],
        )?;
    }
    let bin = ghnq_bin();
    if !bin.is_file() {
        bail!("GHNQ_BIN={} is not a file", bin.display());
    }
    Ok(bin)
}

//! `cargo xtask test`: the README's test command, and the only thing CI runs.

use anyhow::{Result, bail};

use crate::{setup, shell};

/// The crates that must stay `no_std` and allocation-free.
const NO_STD_CRATES: &[&str] = &["shared-format", "edge-runtime", "firmware"];

/// The MCU targets CI builds them for: Cortex-M0 (no atomics, no DSP), Cortex-M4F, RV32IMAC.
const NO_STD_TARGETS: &[&str] = &[
    "thumbv6m-none-eabi",
    "thumbv7em-none-eabihf",
    "riscv32imac-unknown-none-elf",
];

pub fn run() -> Result<()> {
    setup::run()?;
    let cargo = shell::cargo();
    shell::run(&cargo, &["fmt", "--all", "--check"])?;
    shell::run(
        &cargo,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    shell::run(&cargo, &["test", "--workspace"])?;
    for target in NO_STD_TARGETS {
        for krate in NO_STD_CRATES {
            shell::run(&cargo, &["build", "-p", krate, "--target", target])?;
        }
        no_std_dependency_tree(&cargo, target)?;
    }
    // The CUDA backend cannot be built offline (burn-cuda's build script downloads an LLVM
    // bundle), but its Rust code can be type-checked: DOCS_RS=1 makes that script skip the
    // download. This keeps `--features cuda` compiling for users with a GPU.
    shell::run_env(
        &cargo,
        &["check", "-p", "host-trainer", "--features", "cuda"],
        &[("DOCS_RS", "1")],
    )?;
    eprintln!("\nxtask test: all checks passed");
    Ok(())
}

/// Fails if any crate in the device-side dependency tree enables a `std` or `alloc` feature.
/// Building for a target without `std` already proves the absence of `std`; `alloc` exists on
/// those targets, so it is checked here by feature.
fn no_std_dependency_tree(cargo: &str, target: &str) -> Result<()> {
    for krate in NO_STD_CRATES {
        let tree = shell::output(
            cargo,
            &[
                "tree",
                "-p",
                krate,
                "--target",
                target,
                "-e",
                "normal,features",
                "--prefix",
                "none",
            ],
        )?;
        let offending: Vec<&str> = tree
            .lines()
            .filter(|l| l.contains("feature \"std\"") || l.contains("feature \"alloc\""))
            .collect();
        if !offending.is_empty() {
            bail!(
                "{krate} on {target} pulls std or alloc:\n{}",
                offending.join("\n")
            );
        }
        eprintln!("{krate} on {target}: dependency tree has no std and no alloc feature");
    }
    Ok(())
}

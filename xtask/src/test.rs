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
    // Tests that need the data beside the repository (`../shared/data`, or GHNQ_SHARED_DATA)
    // skip without it and leave a note here; CI=true turns a skip into a failure instead.
    let skips = crate::root().join("target/test-skips");
    let _ = std::fs::remove_dir_all(&skips);
    shell::run(&cargo, &["test", "--workspace"])?;
    report_skips(&skips);
    // The NEON kernels (`edge_runtime::ops::simd::aarch64`) are compiled only for aarch64: their
    // unit tests against the scalar reference run cross-built, under qemu-aarch64 user mode
    // (installed by `setup`, as for the aarch64 Linux board), and clippy reads them there too.
    let aarch64 = [
        (
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
            "aarch64-linux-gnu-gcc",
        ),
        (
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER",
            "qemu-aarch64 -L /usr/aarch64-linux-gnu",
        ),
    ];
    let neon = [
        "-p",
        "edge-runtime",
        "--target",
        "aarch64-unknown-linux-gnu",
    ];
    shell::run_env(
        &cargo,
        &[
            &["clippy", "--all-targets"][..],
            &neon,
            &["--", "-D", "warnings"],
        ]
        .concat(),
        &aarch64,
    )?;
    shell::run_env(&cargo, &[&["test", "--lib"][..], &neon].concat(), &aarch64)?;
    for target in NO_STD_TARGETS {
        for krate in NO_STD_CRATES {
            shell::run(&cargo, &["build", "-p", krate, "--target", target])?;
        }
        no_std_dependency_tree(&cargo, target)?;
    }
    // `--features cuda` as users build it (`cargo xtask build-cuda`): every build script runs,
    // so a dependency that downloads anything at build time fails here (CI reaches only the
    // registries). Clippy rather than check, so the cuda-only code is linted too.
    crate::cuda::cargo(&[
        "clippy",
        "-p",
        "host-trainer",
        "--features",
        "cuda",
        "--",
        "-D",
        "warnings",
    ])?;
    eprintln!("\nxtask test: all checks passed");
    Ok(())
}

/// Prints every test that skipped for missing shared data, loudly, with what it needed.
fn report_skips(dir: &std::path::Path) {
    let mut notes: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    if notes.is_empty() {
        return;
    }
    notes.sort();
    eprintln!(
        "\nxtask test: {} test(s) SKIPPED for missing shared data (set GHNQ_SHARED_DATA to the folder \
         holding mlperf-tiny/ and cifar10/; with CI=true they fail instead):",
        notes.len()
    );
    for n in notes {
        eprintln!("  - {n}");
    }
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

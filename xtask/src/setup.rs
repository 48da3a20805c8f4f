//! `cargo xtask setup`: everything a fresh machine needs, installed only if missing.

use std::path::Path;

use anyhow::{Result, bail};

use crate::shell;

/// Cross targets of rust-toolchain.toml. Listed again here because a shell may carry
/// `RUSTUP_AUTO_INSTALL=0`, in which case the toolchain file installs nothing.
pub const TARGETS: &[&str] = &[
    "thumbv6m-none-eabi",
    "thumbv7m-none-eabi",
    "thumbv7em-none-eabihf",
    "thumbv8m.main-none-eabihf",
    "riscv32imac-unknown-none-elf",
    "aarch64-unknown-linux-gnu",
];

/// Debian packages and a file each installs, to tell whether it is already there.
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    (
        "dataset-fashion-mnist",
        "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz",
    ),
    // The font `ghnq`'s plots draw their labels with.
    (
        "fonts-dejavu-core",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    ),
];

pub fn run() -> Result<()> {
    rustup_targets()?;
    debian_packages()?;
    emulators()?;
    defmt_print()?;
    eprintln!("setup: everything is installed");
    Ok(())
}

fn rustup_targets() -> Result<()> {
    let installed = shell::output("rustup", &["target", "list", "--installed"])?;
    let missing: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        eprintln!("setup: rustup targets present");
        return Ok(());
    }
    let mut args = vec!["target", "add"];
    args.extend(&missing);
    shell::run("rustup", &args)
}

fn debian_packages() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .filter(|(_, marker)| !Path::new(marker).exists())
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        eprintln!("setup: Debian packages present");
        return Ok(());
    }
    if !is_root() {
        bail!(
            "Debian packages missing: {}. Run as root, or install them: sudo apt-get install -y {}",
            missing.join(" "),
            missing.join(" ")
        );
    }
    shell::run("apt-get", &["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(&missing);
    shell::run_env("apt-get", &args, &[("DEBIAN_FRONTEND", "noninteractive")])
}

fn is_root() -> bool {
    shell::output("id", &["-u"]).is_ok_and(|uid| uid.trim() == "0")
}

/// QEMU 10 system emulators (the HIL tests boot every emulated board), qemu-user and the aarch64
/// cross linker (the mobile-SoC harness), each with a binary that tells whether it is there.
const EMULATOR_PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-arm", "/usr/bin/qemu-system-arm"),
    ("qemu-system-riscv", "/usr/bin/qemu-system-riscv32"),
    ("qemu-user", "/usr/bin/qemu-aarch64"),
    ("gcc-aarch64-linux-gnu", "/usr/bin/aarch64-linux-gnu-gcc"),
    (
        "libc6-dev-arm64-cross",
        "/usr/aarch64-linux-gnu/lib/libc.so",
    ),
];

/// Installs the emulators from bookworm-backports: bookworm's own QEMU 7.2 would replace the
/// machine's qemu-utils 10.0.2. apt reads a private sources list (`Dir::Etc::sourcelist`), so
/// nothing under /etc changes.
fn emulators() -> Result<()> {
    let missing: Vec<&str> = EMULATOR_PACKAGES
        .iter()
        .filter(|(_, marker)| !Path::new(marker).exists())
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        eprintln!("setup: QEMU and the aarch64 cross toolchain present");
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing: {}. Run `cargo xtask setup` as root, or install them from bookworm-backports",
            missing.join(" ")
        );
    }
    let mirror = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("URIs:"))
                .and_then(|u| u.split_whitespace().next().map(str::to_string))
        })
        .unwrap_or_else(|| "http://deb.debian.org/debian".into());
    let dir = std::env::temp_dir().join(format!("ghnq-apt-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let list = dir.join("sources.list");
    let keyring = "signed-by=/usr/share/keyrings/debian-archive-keyring.gpg";
    std::fs::write(
        &list,
        format!(
            "deb [{keyring}] {mirror} bookworm main\ndeb [{keyring}] {mirror} bookworm-backports main\n"
        ),
    )?;
    let sourcelist = format!("Dir::Etc::sourcelist={}", list.display());
    let private = ["-o", &sourcelist, "-o", "Dir::Etc::sourceparts=-"];
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    let mut update = private.to_vec();
    update.extend(["update", "-q"]);
    shell::run_env("apt-get", &update, &env)?;
    let mut install = private.to_vec();
    install.extend([
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "--no-remove",
        "-t",
        "bookworm-backports",
    ]);
    install.extend(&missing);
    let result = shell::run_env("apt-get", &install, &env);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// defmt-print decodes the defmt frames of firmware built with the `defmt` feature (the HIL
/// tests check one board that way).
fn defmt_print() -> Result<()> {
    if shell::output("defmt-print", &["--version"]).is_ok() {
        eprintln!("setup: defmt-print present");
        return Ok(());
    }
    shell::run(
        &shell::cargo(),
        &["install", "--locked", "defmt-print", "--version", "1.2.0"],
    )
}

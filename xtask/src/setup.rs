//! `cargo xtask setup`: everything a fresh machine needs, installed only if missing.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

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
    "aarch64-unknown-none",
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
    tflm()?;
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
    apt_install(&missing)
}

/// Installs Debian packages from the machine's own sources (as root only).
fn apt_install(packages: &[&str]) -> Result<()> {
    if !is_root() {
        bail!(
            "Debian packages missing: {}. Run as root, or install them: sudo apt-get install -y {}",
            packages.join(" "),
            packages.join(" ")
        );
    }
    shell::run("apt-get", &["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(packages);
    shell::run_env("apt-get", &args, &[("DEBIAN_FRONTEND", "noninteractive")])
}

fn is_root() -> bool {
    shell::output("id", &["-u"]).is_ok_and(|uid| uid.trim() == "0")
}

/// QEMU 10 system emulators (the HIL tests boot every emulated board), qemu-user and the aarch64
/// cross linker (the mobile-SoC harness), each with a binary that tells whether it is there.
const EMULATOR_PACKAGES: &[(&str, &str)] = &[
    // Debian's qemu-system-arm also ships qemu-system-aarch64 (the bare-metal Cortex-A55).
    ("qemu-system-arm", "/usr/bin/qemu-system-aarch64"),
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

/// The pinned PyPI release of TensorFlow Lite Micro's Python interpreter: TFLM's reference
/// kernels built for x86, bit-exact with TFLM on devices. `ghnq_tflite::tflm` (which
/// finds this venv the same way) drives it through `crates/ghnq-tflite/tflm/run_tflm.py`.
const TFLM_PACKAGE: &str = "tflite-micro";
const TFLM_VERSION: &str = "0.dev20261023182759";

/// A virtual environment with `tflite-micro` at `<target dir>/tflm-venv`, created with the
/// machine's `python3 -m venv` (never a system-wide pip install). Skipped when the venv already
/// imports the pinned version.
fn tflm() -> Result<()> {
    let venv = target_dir()?.join("tflm-venv");
    let python = venv.join("bin").join("python");
    let python_str = python.to_str().context("the venv path is not UTF-8")?;
    if tflm_installed(&python) {
        eprintln!(
            "setup: TFLite Micro ({TFLM_PACKAGE} {TFLM_VERSION}) present in {}",
            venv.display()
        );
        return Ok(());
    }
    // A venv whose pip runs only lacks the package; anything less is rebuilt from scratch.
    if shell::output(python_str, &["-m", "pip", "--version"]).is_err() {
        create_venv(&venv)?;
    }
    let requirement = format!("{TFLM_PACKAGE}=={TFLM_VERSION}");
    shell::run(
        python_str,
        &[
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            &requirement,
        ],
    )
    .with_context(|| {
        format!(
            "could not pip install {requirement} into {}",
            venv.display()
        )
    })?;
    if !tflm_installed(&python) {
        bail!(
            "pip installed {requirement} into {}, but `{} -c \"import tflite_micro\"` still fails",
            venv.display(),
            python.display()
        );
    }
    eprintln!(
        "setup: TFLite Micro ({requirement}) installed in {}",
        venv.display()
    );
    Ok(())
}

/// Whether `python` imports `tflite_micro` at the pinned version.
fn tflm_installed(python: &Path) -> bool {
    let check = format!(
        "import importlib.metadata as m, tflite_micro; \
         assert m.version('{TFLM_PACKAGE}') == '{TFLM_VERSION}'"
    );
    std::process::Command::new(python)
        .args(["-c", &check])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// `python3 -m venv VENV`; where that fails because Debian ships the venv module (and ensurepip)
/// separately, installs `python3-venv` and tries once more.
fn create_venv(venv: &Path) -> Result<()> {
    let venv_str = venv.to_str().context("the venv path is not UTF-8")?;
    remove_venv(venv)?;
    if shell::run("python3", &["-m", "venv", venv_str]).is_ok() {
        return Ok(());
    }
    if shell::output("python3", &["-c", "import venv, ensurepip"]).is_ok() {
        bail!(
            "`python3 -m venv {venv_str}` failed although python3 has the venv and ensurepip \
             modules (see its output above)"
        );
    }
    eprintln!("setup: python3 lacks the venv module (Debian's python3-venv); installing it");
    apt_install(&["python3-venv"])
        .context("could not install python3-venv for `python3 -m venv`")?;
    remove_venv(venv)?;
    shell::run("python3", &["-m", "venv", venv_str])
        .with_context(|| format!("could not create the TFLite Micro venv at {venv_str}"))
}

/// Removes a (possibly half-made) venv; refuses a directory that is not one.
fn remove_venv(venv: &Path) -> Result<()> {
    if !venv.exists() {
        return Ok(());
    }
    if !venv.join("pyvenv.cfg").exists() {
        bail!(
            "{} exists but is not a Python venv (no pyvenv.cfg): move it away and rerun `cargo xtask setup`",
            venv.display()
        );
    }
    std::fs::remove_dir_all(venv).with_context(|| format!("could not remove {}", venv.display()))
}

/// Cargo's build directory: `CARGO_TARGET_DIR` if set, else `<workspace>/target`. A relative
/// `CARGO_TARGET_DIR` is taken from the workspace root, as `ghnq_tflite::tflm` does (tests run in
/// their package directory, so they cannot know where cargo was invoked).
fn target_dir() -> Result<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask/ has no parent directory")?;
    Ok(match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace.join(dir),
        _ => workspace.join("target"),
    })
}

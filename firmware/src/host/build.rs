//! Building a board's firmware with a suite of (model, vectors) pairs embedded.
//!
//! The pairs are passed to the `boards/` workspace as path lists in `GHNQ_MODEL` and
//! `GHNQ_VECTORS` (`:`-separated, like `PATH`); its `board-common` build script embeds them
//! with `include_bytes!` and sizes the static arena for the largest model, so the linker checks
//! the board's flash and RAM budget against the real chip's `memory.x`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use shared_format::Model;

use super::boards::Board;

/// Flash the firmware itself takes besides the embedded data (runtime, report formatting,
/// semihosting); measured at 30–45 KB, rounded up.
pub const CODE_RESERVE: u64 = 48 * 1024;

/// RAM kept for the stack and the runtime's statics besides the arena.
pub const STACK_RESERVE: u64 = 4 * 1024;

/// One model and its test vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `.ghnq` blob.
    pub model: PathBuf,
    /// `.ghnv` bundle made from that blob.
    pub vectors: PathBuf,
}

/// Why a firmware could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The suite cannot fit the board; found before building.
    #[error(
        "{what} does not fit {board}: needs {needed} bytes but the board has {available} ({detail}); use a smaller model, fewer samples, or stream the samples over the UART"
    )]
    TooLarge {
        /// Board name.
        board: &'static str,
        /// `flash` or `RAM`.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes the board has.
        available: u64,
        /// How `needed` was counted.
        detail: String,
    },
    /// The linker found the firmware larger than a memory region of the board.
    #[error(
        "the firmware for {board} overflows its {region} by {by} bytes (the linker's check against memory.x); use a smaller model or fewer samples"
    )]
    Overflow {
        /// Board name.
        board: &'static str,
        /// Region name in memory.x.
        region: String,
        /// Bytes over.
        by: u64,
    },
    /// A model blob does not decode.
    #[error("{path}: {error}")]
    Model {
        /// Blob path.
        path: PathBuf,
        /// Why.
        error: shared_format::FormatError,
    },
    /// cargo failed for another reason.
    #[error("`{command}` failed:\n{stderr}")]
    Cargo {
        /// The command line.
        command: String,
        /// Its standard error (last lines).
        stderr: String,
    },
    /// A file could not be read or a process started.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// Checks, before building, that the embedded data and the arena fit the board.
pub fn preflight(board: &Board, entries: &[Entry]) -> Result<(), BuildError> {
    let mut data = 0u64;
    let mut arena = 0u64;
    for entry in entries {
        let blob = std::fs::read(&entry.model)
            .map_err(|e| BuildError::Io(entry.model.display().to_string(), e))?;
        let vectors = std::fs::metadata(&entry.vectors)
            .map_err(|e| BuildError::Io(entry.vectors.display().to_string(), e))?;
        let model = Model::from_bytes(&blob).map_err(|error| BuildError::Model {
            path: entry.model.clone(),
            error,
        })?;
        data += blob.len() as u64 + vectors.len();
        arena = arena.max(model.arena_bytes() as u64);
    }
    if data + CODE_RESERVE > board.flash {
        return Err(BuildError::TooLarge {
            board: board.name,
            what: "flash",
            needed: data + CODE_RESERVE,
            available: board.flash,
            detail: format!("{data} bytes of blobs and vectors + about {CODE_RESERVE} of code"),
        });
    }
    if arena + STACK_RESERVE > board.ram {
        return Err(BuildError::TooLarge {
            board: board.name,
            what: "RAM",
            needed: arena + STACK_RESERVE,
            available: board.ram,
            detail: format!("an arena of {arena} bytes + about {STACK_RESERVE} of stack"),
        });
    }
    Ok(())
}

/// The `boards/` workspace of the SDK checkout at `root`.
pub fn boards_dir(root: &Path) -> PathBuf {
    root.join("boards")
}

/// Where the boards workspace builds (shared by every board, so rebuilds are incremental).
pub fn target_dir(root: &Path) -> PathBuf {
    root.join("target").join("boards")
}

/// Builds `board`'s firmware (release) with `entries` embedded; returns the ELF's path.
/// `arena_override` replaces the arena size the build script derives (to test the error path).
pub fn build(
    root: &Path,
    board: &Board,
    entries: &[Entry],
    arena_override: Option<usize>,
) -> Result<PathBuf, BuildError> {
    let models = join(entries.iter().map(|e| e.model.as_path()))?;
    let vectors = join(entries.iter().map(|e| e.vectors.as_path()))?;
    cargo_build(root, board, &models, &vectors, arena_override, false, false)
}

/// [`build`] with the board's `defmt` feature: the report goes out as defmt frames, decoded on
/// the host by defmt-print ([`super::qemu::boot_defmt`]); the format strings stay in the ELF.
pub fn build_defmt(root: &Path, board: &Board, entries: &[Entry]) -> Result<PathBuf, BuildError> {
    let models = join(entries.iter().map(|e| e.model.as_path()))?;
    let vectors = join(entries.iter().map(|e| e.vectors.as_path()))?;
    cargo_build(root, board, &models, &vectors, None, false, true)
}

/// Builds `board`'s firmware in streaming mode: only the model is embedded, the samples come
/// over the UART ([`crate::protocol`]). Boards without a streaming UART ignore the mode.
pub fn build_streaming(root: &Path, board: &Board, model: &Path) -> Result<PathBuf, BuildError> {
    let models = join(std::iter::once(model))?;
    cargo_build(root, board, &models, &OsString::new(), None, true, false)
}

fn join<'p>(paths: impl Iterator<Item = &'p Path>) -> Result<OsString, BuildError> {
    std::env::join_paths(paths)
        .map_err(|e| BuildError::Io("GHNQ_MODEL/GHNQ_VECTORS".into(), std::io::Error::other(e)))
}

fn cargo_build(
    root: &Path,
    board: &Board,
    models: &OsString,
    vectors: &OsString,
    arena_override: Option<usize>,
    stream: bool,
    defmt: bool,
) -> Result<PathBuf, BuildError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = target_dir(root);
    let mut args = vec![
        "build",
        "--release",
        "-p",
        board.package,
        "--target",
        board.target,
    ];
    if defmt {
        args.extend(["--features", "defmt"]);
    }
    let mut command = Command::new(&cargo);
    // cargo reads `.cargo/config.toml` from the working directory up, so build from inside.
    command
        .current_dir(boards_dir(root))
        .args(&args)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("GHNQ_MODEL", models)
        .env("GHNQ_VECTORS", vectors)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    // The board's own flags, in the per-target variable: cargo ignores `rustflags` under
    // `[target.'thumbv8m.main-none-eabihf']` in boards/.cargo/config.toml (the dot in the triple).
    let rustflags_var = format!(
        "CARGO_TARGET_{}_RUSTFLAGS",
        board.target.to_uppercase().replace(['-', '.'], "_")
    );
    if board.rustflags.is_empty() {
        command.env_remove(&rustflags_var);
    } else {
        command.env(&rustflags_var, board.rustflags);
    }
    match arena_override {
        Some(bytes) => command.env("GHNQ_ARENA_BYTES", bytes.to_string()),
        None => command.env_remove("GHNQ_ARENA_BYTES"),
    };
    if stream {
        command.env("GHNQ_STREAM", "1");
    } else {
        command.env_remove("GHNQ_STREAM");
    }
    let line = if board.rustflags.is_empty() {
        format!("{cargo} {}", args.join(" "))
    } else {
        format!(
            "{rustflags_var}=\"{}\" {cargo} {}",
            board.rustflags,
            args.join(" ")
        )
    };
    let out = command
        .output()
        .map_err(|e| BuildError::Io(line.clone(), e))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if let Some((region, by)) = overflow(&stderr) {
            return Err(BuildError::Overflow {
                board: board.name,
                region,
                by,
            });
        }
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(BuildError::Cargo {
            command: line,
            stderr: tail.join("\n"),
        });
    }
    Ok(target_dir
        .join(board.target)
        .join("release")
        .join(board.package))
}

/// `region `FLASH' overflowed by 1234 bytes` from GNU ld or rust-lld.
fn overflow(stderr: &str) -> Option<(String, u64)> {
    let at = stderr.find("overflowed by ")?;
    let by = stderr[at + 14..].split_whitespace().next()?.parse().ok()?;
    let before = &stderr[..at];
    let region = before
        .rfind("region")
        .map(|i| {
            before[i + 6..]
                .trim()
                .trim_matches(|c: char| !c.is_alphanumeric() && c != '_')
                .to_string()
        })
        .unwrap_or_else(|| "memory".into());
    Some((region, by))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_linker_overflow() {
        let lld = "rust-lld: error: section '.rodata' will not fit in region 'FLASH': overflowed by 4096 bytes";
        assert_eq!(super::overflow(lld), Some(("FLASH".into(), 4096)));
    }
}

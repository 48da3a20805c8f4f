//! `--features cuda` without network access beyond crates.io.
//!
//! burn 0.22's CUDA backend depends on cubecl-cuda 0.11.3, which carries two kernel compilers:
//! CUDA C++ through NVRTC (loaded from the driver's toolkit at run time) and pliron/LLVM to PTX.
//! Only the second needs cubecl-llvm, whose build script downloads a prebuilt LLVM bundle from
//! GitHub: no machine that reaches only the registries can build it. This module takes the
//! crate as crates.io published it (checked against the checksum this transform was written
//! for), removes the LLVM backend so NVRTC is the only compiler, and hands the result to cargo
//! as a `[patch]` through `--config`. Nothing of cubecl's source is kept in the repository: the
//! transform is a list of edits, each of which must match the exact number of lines it was
//! written for, so a different crate version fails loudly instead of half-patching.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};

use crate::shell;

const CRATE: &str = "cubecl-cuda";
const VERSION: &str = "0.11.3";
/// sha256 of `cubecl-cuda-0.11.3.crate` as crates.io serves it (Cargo.lock's checksum).
const CHECKSUM: &str = "dacd0c047f781b468d094705ef042f28d68944bf862c049f5cf0b7396f730bb5";
/// Bumped whenever the edits below change, so an older patched copy is rebuilt.
const TRANSFORM_REVISION: u32 = 1;

/// The attribute that removes the item, arm or statement on the next line.
const REMOVED: &str = "#[cfg(any())] // removed by ghnq's xtask: the LLVM backend";

/// What to do with every line whose trimmed text matches.
enum Action {
    /// Put [`REMOVED`] above it, at its indentation.
    Remove,
    /// Replace the whole line, keeping its indentation.
    Replace(&'static str),
}

/// One edit: in `file`, the lines whose trimmed text starts with `line` (exactly `count` of
/// them) get `action`.
struct Edit {
    file: &'static str,
    line: &'static str,
    count: usize,
    action: Action,
}

const PTX_USE: &str = "use cubecl_llvm::nvptx::ptx_version::PtxVersion;";
const PTX_LOCAL: &str = "use crate::no_llvm::PtxVersion;";

const EDITS: &[Edit] = &[
    // The backend selector: the `Llvm` variant goes, and `Default` moves to `no_llvm.rs`
    // where it always answers `Cpp`.
    edit("src/compiler.rs", PTX_USE, 1, Action::Replace(PTX_LOCAL)),
    edit("src/compiler.rs", "Llvm,", 1, Action::Remove),
    edit(
        "src/compiler.rs",
        "impl Default for CudaBackend {",
        1,
        Action::Remove,
    ),
    edit("src/compiler.rs", "Llvm(cubecl_llvm::", 2, Action::Remove),
    edit("src/compiler.rs", "CudaBackend::Llvm =>", 1, Action::Remove),
    // Debug, shared_memory_size, Display and buffer_io's arms.
    edit(
        "src/compiler.rs",
        "CudaRepresentation::Llvm(",
        4,
        Action::Remove,
    ),
    // compile, extension and lang_tag's arms.
    edit("src/compiler.rs", "CudaCompiler::Llvm(", 3, Action::Remove),
    edit("src/runtime.rs", PTX_USE, 1, Action::Replace(PTX_LOCAL)),
    edit(
        "src/runtime.rs",
        "use cubecl_llvm::shared::lowered_features::",
        1,
        Action::Remove,
    ),
    edit(
        "src/runtime.rs",
        "if backend == CudaBackend::Llvm {",
        1,
        Action::Remove,
    ),
    edit(
        "src/compute/context.rs",
        PTX_USE,
        2,
        Action::Replace(PTX_LOCAL),
    ),
    edit(
        "src/compute/context.rs",
        "(CudaBackend::Llvm,",
        2,
        Action::Remove,
    ),
    edit(
        "src/compute/context.rs",
        "Some(CudaRepresentation::Llvm(_)) =>",
        1,
        Action::Remove,
    ),
    edit(
        "src/compute/context.rs",
        "CudaBackend::Llvm =>",
        1,
        Action::Remove,
    ),
    edit(
        "src/compute/context.rs",
        "fn load_emitted_ptx(",
        1,
        Action::Remove,
    ),
    // Its two tests compare against the LLVM backend's cache keys.
    edit(
        "src/compute/context.rs",
        "fn cache_namespace_separates_",
        2,
        Action::Remove,
    ),
    edit(
        "src/lib.rs",
        "extern crate alloc;",
        1,
        Action::Replace("extern crate alloc;\nmod no_llvm;"),
    ),
];

const fn edit(file: &'static str, line: &'static str, count: usize, action: Action) -> Edit {
    Edit {
        file,
        line,
        count,
        action,
    }
}

/// Added to the crate: what the removed backend provided to the rest of it.
const NO_LLVM_RS: &str = r#"//! Added by ghnq's xtask, which removed the LLVM backend (its build script downloads LLVM).

/// Stands in for cubecl-llvm's PTX version: only the LLVM backend emits one (NVRTC writes its
/// toolkit's), so none is ever chosen and the kernel cache's namespace is the C++ backend's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PtxVersion {}

impl PtxVersion {
    pub fn for_driver(_driver: i32) -> Option<Self> {
        None
    }
}

impl core::fmt::Display for PtxVersion {
    fn fmt(&self, _: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {}
    }
}

/// NVRTC is the only backend left.
impl Default for crate::compiler::CudaBackend {
    fn default() -> Self {
        Self::Cpp
    }
}
"#;

/// The patched crate's directory, made if missing or stale.
pub fn patched_crate() -> Result<PathBuf> {
    let root = crate::root();
    let out = root.join(format!("target/patched/{CRATE}-{VERSION}"));
    let stamp = format!("{CHECKSUM} revision {TRANSFORM_REVISION}\n");
    let stamp_file = out.join(".ghnq-patched");
    if std::fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str()) {
        return Ok(out);
    }
    let archive = registry_crate()?;
    let bytes =
        std::fs::read(&archive).with_context(|| format!("reading {}", archive.display()))?;
    let digest = hex(&Sha256::digest(&bytes));
    ensure!(
        digest == CHECKSUM,
        "{} has sha256 {digest}, not the {CHECKSUM} this transform was written for",
        archive.display()
    );
    // Unpacked and edited beside the destination, then renamed: an interrupted run leaves no
    // half-edited crate behind.
    let staging = out.with_extension("staging");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()))
        .unpack(&staging)
        .with_context(|| format!("unpacking {}", archive.display()))?;
    let src = staging.join(format!("{CRATE}-{VERSION}"));
    transform(&src)?;
    std::fs::write(src.join(".ghnq-patched"), &stamp)?;
    let _ = std::fs::remove_dir_all(&out);
    std::fs::rename(&src, &out)?;
    let _ = std::fs::remove_dir_all(&staging);
    eprintln!(
        "xtask: {CRATE} {VERSION} without its LLVM backend in {}",
        out.display()
    );
    Ok(out)
}

/// The `.crate` archive cargo downloaded from crates.io (fetched first if it is not there).
fn registry_crate() -> Result<PathBuf> {
    let find = || -> Option<PathBuf> {
        let cache = cargo_home().join("registry/cache");
        std::fs::read_dir(cache)
            .ok()?
            .filter_map(Result::ok)
            .map(|registry| registry.path().join(format!("{CRATE}-{VERSION}.crate")))
            .find(|p| p.is_file())
    };
    if let Some(p) = find() {
        return Ok(p);
    }
    // The host's packages only: the lock also lists every other platform's.
    let rustc = shell::output("rustc", &["-vV"])?;
    let host = rustc
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .context("`rustc -vV` names no host")?;
    shell::run(&shell::cargo(), &["fetch", "--target", host])?;
    find().with_context(|| {
        format!(
            "`cargo fetch` did not leave {CRATE}-{VERSION}.crate in {}/registry/cache",
            cargo_home().display()
        )
    })
}

fn cargo_home() -> PathBuf {
    match std::env::var_os("CARGO_HOME") {
        Some(h) if !h.is_empty() => h.into(),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Applies [`EDITS`] and drops the dependency on cubecl-llvm from the manifest.
fn transform(dir: &Path) -> Result<()> {
    let mut files: Vec<&str> = EDITS.iter().map(|e| e.file).collect();
    files.dedup();
    for file in files {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let edits: Vec<&Edit> = EDITS.iter().filter(|e| e.file == file).collect();
        std::fs::write(
            &path,
            apply(&text, &edits).with_context(|| file.to_string())?,
        )?;
    }
    std::fs::write(dir.join("src/no_llvm.rs"), NO_LLVM_RS)?;
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)?;
    std::fs::write(&manifest, drop_llvm_dependency(&text)?)?;
    Ok(())
}

fn apply(text: &str, edits: &[&Edit]) -> Result<String> {
    let mut seen = vec![0usize; edits.len()];
    let mut out = String::with_capacity(text.len() + 1024);
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let mut replaced = false;
        for (k, e) in edits.iter().enumerate() {
            if !trimmed.starts_with(e.line) {
                continue;
            }
            seen[k] += 1;
            match e.action {
                Action::Remove => {
                    out.push_str(indent);
                    out.push_str(REMOVED);
                    out.push('\n');
                }
                Action::Replace(with) => {
                    out.push_str(indent);
                    out.push_str(with);
                    out.push('\n');
                    replaced = true;
                }
            }
        }
        if !replaced {
            out.push_str(line);
            out.push('\n');
        }
    }
    for (e, n) in edits.iter().zip(seen) {
        if n != e.count {
            bail!(
                "the edit for lines starting `{}` matched {n} line(s), not {}: this transform \
                 was written for {CRATE} {VERSION}",
                e.line,
                e.count
            );
        }
    }
    Ok(out)
}

/// Removes the `[dependencies.cubecl-llvm]` table and the feature that forwards to it.
fn drop_llvm_dependency(manifest: &str) -> Result<String> {
    let mut out = String::with_capacity(manifest.len());
    let mut in_table = false;
    let (mut tables, mut features) = (0, 0);
    for line in manifest.lines() {
        if line.starts_with('[') {
            in_table = line.trim() == "[dependencies.cubecl-llvm]";
            tables += usize::from(in_table);
        }
        if in_table {
            continue;
        }
        if line.trim() == "\"cubecl-llvm/pliron-dump\"," {
            features += 1;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    ensure!(
        tables == 1 && features == 1,
        "{CRATE} {VERSION}'s Cargo.toml does not have the cubecl-llvm dependency this \
         transform removes ({tables} table(s), {features} feature line(s))"
    );
    ensure!(
        !out.contains("cubecl-llvm"),
        "{CRATE}'s Cargo.toml still names cubecl-llvm after the transform"
    );
    Ok(out)
}

/// Runs `cargo args…` with the patched crate in place of crates.io's.
///
/// Cargo rewrites Cargo.lock for a patch (the LLVM crates leave the graph); the lock file is
/// put back afterwards, whether or not cargo succeeded, so the workspace's lock stays the one
/// every other build uses.
pub fn cargo(args: &[&str]) -> Result<()> {
    let patched = patched_crate()?;
    let patch = format!(
        "patch.crates-io.{CRATE}.path={}",
        toml_string(&patched.to_string_lossy())
    );
    let lock_path = crate::root().join("Cargo.lock");
    let lock = std::fs::read(&lock_path).context("reading Cargo.lock")?;
    // After the subcommand: `cargo clippy` hands its arguments to the `cargo check` it runs,
    // but not the options given to cargo before it.
    let mut full = args.to_vec();
    full.splice(
        1.min(full.len())..1.min(full.len()),
        ["--config", patch.as_str()],
    );
    let result = shell::run(&shell::cargo(), &full);
    if std::fs::read(&lock_path).map_or(true, |now| now != lock) {
        std::fs::write(&lock_path, &lock).context("restoring Cargo.lock")?;
    }
    result
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `cargo xtask build-cuda`: the release `ghnq` with `--features cuda`, copied to
/// `target/release/ghnq-cuda` so it neither replaces nor is replaced by the CPU build.
pub fn build() -> Result<PathBuf> {
    cargo(&[
        "build",
        "--release",
        "-p",
        "host-trainer",
        "--bin",
        "ghnq",
        "--features",
        "cuda",
    ])?;
    let release = crate::root().join("target/release");
    let out = release.join("ghnq-cuda");
    std::fs::copy(release.join("ghnq"), &out).context("copying ghnq to ghnq-cuda")?;
    eprintln!("xtask: {} (built with --features cuda)", out.display());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "use cubecl_llvm::nvptx::ptx_version::PtxVersion;\n\
        enum B {\n    Cpp,\n    Llvm,\n}\n";

    #[test]
    fn edits_insert_the_removal_and_replace_at_the_line_s_indentation() {
        let e = [
            edit("x", PTX_USE, 1, Action::Replace(PTX_LOCAL)),
            edit("x", "Llvm,", 1, Action::Remove),
        ];
        let out = apply(SAMPLE, &e.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(
            out,
            format!("{PTX_LOCAL}\nenum B {{\n    Cpp,\n    {REMOVED}\n    Llvm,\n}}\n")
        );
    }

    #[test]
    fn an_edit_matching_a_different_number_of_lines_fails() {
        let e = [edit("x", "Llvm,", 2, Action::Remove)];
        let err = apply(SAMPLE, &e.iter().collect::<Vec<_>>()).unwrap_err();
        assert!(
            err.to_string().contains("matched 1 line(s), not 2"),
            "{err}"
        );
    }

    #[test]
    fn the_manifest_loses_the_llvm_table_and_feature_and_nothing_else() {
        let m = "[features]\npliron-dump = [\n    \"cubecl-cpp/pliron-dump\",\n    \
                 \"cubecl-llvm/pliron-dump\",\n]\n\n[dependencies.cubecl-llvm]\nversion = \
                 \"0.11.3\"\n\n[dependencies.log]\nversion = \"0.4\"\n";
        let out = drop_llvm_dependency(m).unwrap();
        assert_eq!(
            out,
            "[features]\npliron-dump = [\n    \"cubecl-cpp/pliron-dump\",\n]\n\n\
             [dependencies.log]\nversion = \"0.4\"\n"
        );
        assert!(drop_llvm_dependency("[dependencies.log]\n").is_err());
    }
}

//! Atomic GHN checkpoints in a directory:
//! `ghn.cfg` (hyper-parameters), `ghn-step{N}.bpk` (burnpack weights), `optim-step{N}.bpk` (Adam
//! state), `latest` (the step of the newest complete checkpoint, written last). Every file is written
//! to a temporary name in the same directory and renamed, so a crash never leaves a torn checkpoint.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use ghnq_core::file_error::FileError;

use super::model::{Ghn, GhnConfig};

/// Training progress stored with a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrainState {
    /// Optimiser steps taken.
    pub step: usize,
    /// Steps skipped for a NaN/inf loss.
    pub skipped: usize,
}

/// What went wrong with which checkpoint file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file or directory operation failed.
    #[error(transparent)]
    Io(#[from] FileError),
    /// burn could not save or load a weights or optimiser file (its recorder's message).
    #[error("{action} {}: {detail}", path.display())]
    Record {
        /// Saving or loading.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// burn's error, as it describes itself.
        detail: String,
    },
    /// A file's content is not what this code writes.
    #[error("{}: {detail}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A ppuda GHN-2 state dict that does not fit.
    #[error("{}: a ppuda GHN-2 state dict: {source}", path.display())]
    Ppuda {
        /// The `.safetensors` file.
        path: PathBuf,
        /// What did not fit.
        #[source]
        source: crate::ppuda::PpudaError,
    },
}

type Result<T> = std::result::Result<T, CheckpointError>;

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError {
    let on = FileError::on(action, path);
    move |e| CheckpointError::Io(on(e))
}

fn record<E: std::fmt::Debug>(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(E) -> CheckpointError {
    let path = path.to_path_buf();
    move |e| CheckpointError::Record {
        action,
        path,
        detail: format!("{e:?}"),
    }
}

fn malformed(path: &Path, detail: impl Into<String>) -> CheckpointError {
    CheckpointError::Malformed {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    ghnq_core::atomic::write(path, bytes).map_err(io("writing", path))
}

/// Save the GHN (and optionally the optimiser) atomically; returns the weights file.
pub fn save(
    dir: &Path,
    ghn: &Ghn,
    optim: Option<&ModuleOptimizer>,
    state: TrainState,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    write_atomic(&dir.join("ghn.cfg"), ghn.config.to_text().as_bytes())?;
    let weights = dir.join(format!("ghn-step{}.bpk", state.step));
    let tmp = ghnq_core::atomic::tmp_path(&weights);
    ghn.clone()
        .save_file(&tmp)
        .map_err(record("saving", &tmp))?;
    std::fs::rename(&tmp, &weights).map_err(io("renaming", &tmp))?;
    if let Some(optim) = optim {
        let path = dir.join(format!("optim-step{}.bpk", state.step));
        let tmp = ghnq_core::atomic::tmp_path(&path);
        optim.save(&tmp).map_err(record("saving", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("renaming", &tmp))?;
    }
    write_atomic(
        &dir.join("latest"),
        format!("step={}\nskipped={}\n", state.step, state.skipped).as_bytes(),
    )?;
    Ok(weights)
}

/// Deletes all but the newest `keep` checkpoints (weights and optimiser state) of `dir`;
/// `keep = 0` keeps every one. The newest is the one `latest` names, so a crash between saving
/// and pruning leaves at most extra files, never a missing one.
pub fn prune(dir: &Path, keep: usize) -> Result<()> {
    if keep == 0 {
        return Ok(());
    }
    let mut steps: Vec<usize> = std::fs::read_dir(dir)
        .map_err(io("listing", dir))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("ghn-step")?
                .strip_suffix(".bpk")?
                .parse()
                .ok()
        })
        .collect();
    steps.sort_unstable();
    let newest = latest(dir)?.map(|s| s.step);
    let n = steps.len();
    for step in steps.into_iter().take(n.saturating_sub(keep)) {
        if Some(step) == newest {
            continue;
        }
        for file in [
            format!("ghn-step{step}.bpk"),
            format!("optim-step{step}.bpk"),
        ] {
            let path = dir.join(file);
            if path.exists() {
                std::fs::remove_file(&path).map_err(io("removing", &path))?;
            }
        }
    }
    Ok(())
}

/// Read the `latest` marker of a checkpoint directory.
pub fn latest(dir: &Path) -> Result<Option<TrainState>> {
    let path = dir.join("latest");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(io("reading", &path))?;
    let mut st = TrainState::default();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            let v: usize = v
                .trim()
                .parse()
                .map_err(|_| malformed(&path, format!("bad value in '{line}'")))?;
            match k.trim() {
                "step" => st.step = v,
                "skipped" => st.skipped = v,
                _ => {}
            }
        }
    }
    Ok(Some(st))
}

/// Load a GHN from a checkpoint directory (newest step), a `.bpk` file (its directory must hold
/// `ghn.cfg`, or `config` is used) or a GHN-2 state dict of facebookresearch/ppuda saved as
/// `.safetensors` (`config`, or ppuda's CIFAR-10 `max_sp` 11 and `s_max` 50 with `hid` and the
/// classes read from the weights).
pub fn load_ghn(
    path: &Path,
    config: Option<&GhnConfig>,
    device: &Device,
) -> Result<(Ghn, TrainState)> {
    if path.extension().is_some_and(|e| e == "safetensors") {
        let bytes = std::fs::read(path).map_err(io("reading", path))?;
        let ppuda = |source| CheckpointError::Ppuda {
            path: path.to_path_buf(),
            source,
        };
        let cfg = match config {
            Some(c) => c.clone(),
            None => crate::ppuda::config_of(&bytes, 11, 50).map_err(ppuda)?,
        };
        let ghn = crate::ppuda::load(&bytes, &cfg, device).map_err(ppuda)?;
        return Ok((ghn, TrainState::default()));
    }
    let (dir, file, state) = resolve(path)?;
    let cfg_path = dir.join("ghn.cfg");
    let cfg = if cfg_path.exists() {
        let text = std::fs::read_to_string(&cfg_path).map_err(io("reading", &cfg_path))?;
        GhnConfig::from_text(&text).map_err(|e| malformed(&cfg_path, e.to_string()))?
    } else {
        config
            .cloned()
            .ok_or_else(|| malformed(&cfg_path, "missing, and no configuration given"))?
    };
    let ghn = Ghn::new(&cfg, device)
        .try_load_file(&file)
        .map_err(record("loading", &file))?;
    Ok((ghn, state))
}

/// The directory, weights file and training state a checkpoint path names: a directory (its
/// newest step) or a `.bpk` file.
pub fn resolve(path: &Path) -> Result<(PathBuf, PathBuf, TrainState)> {
    Ok(if path.is_dir() {
        let st = latest(path)?.ok_or_else(|| malformed(path, "no `latest` checkpoint marker"))?;
        (
            path.to_path_buf(),
            path.join(format!("ghn-step{}.bpk", st.step)),
            st,
        )
    } else {
        // A mistyped path would otherwise surface as a missing `ghn.cfg` in its parent folder.
        std::fs::metadata(path).map_err(io("reading the GHN checkpoint", path))?;
        (
            path.parent().map(Path::to_path_buf).unwrap_or_default(),
            path.to_path_buf(),
            TrainState::default(),
        )
    })
}

/// Load the optimiser state saved with step `step`, if present.
pub fn load_optim(dir: &Path, step: usize, optim: ModuleOptimizer) -> Result<ModuleOptimizer> {
    let path = dir.join(format!("optim-step{step}.bpk"));
    if !path.exists() {
        return Ok(optim);
    }
    optim.load(&path).map_err(record("loading", &path))
}

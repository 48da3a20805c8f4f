//! Atomic GHN checkpoints in a directory:
//! `ghn.cfg` (hyper-parameters), `ghn-step{N}.bpk` (burnpack weights), `optim-step{N}.bpk` (Adam
//! state), `latest` (the step of the newest complete checkpoint, written last). Every file is written
//! to a temporary name in the same directory and renamed, so a crash never leaves a torn checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;

use super::model::{Ghn, GhnConfig};

/// Training progress stored with a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrainState {
    /// Optimiser steps taken.
    pub step: usize,
    /// Steps skipped for a NaN/inf loss.
    pub skipped: usize,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    ghnq_core::atomic::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Save the GHN (and optionally the optimiser) atomically; returns the weights file.
pub fn save(
    dir: &Path,
    ghn: &Ghn,
    optim: Option<&ModuleOptimizer>,
    state: TrainState,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_atomic(&dir.join("ghn.cfg"), ghn.config.to_text().as_bytes())?;
    let weights = dir.join(format!("ghn-step{}.bpk", state.step));
    let tmp = ghnq_core::atomic::tmp_path(&weights);
    ghn.clone()
        .save_file(&tmp)
        .map_err(|e| anyhow::anyhow!("saving {}: {e:?}", tmp.display()))?;
    std::fs::rename(&tmp, &weights)?;
    if let Some(optim) = optim {
        let path = dir.join(format!("optim-step{}.bpk", state.step));
        let tmp = ghnq_core::atomic::tmp_path(&path);
        optim
            .save(&tmp)
            .map_err(|e| anyhow::anyhow!("saving {}: {e:?}", tmp.display()))?;
        std::fs::rename(&tmp, &path)?;
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
        .with_context(|| format!("listing {}", dir.display()))?
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
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
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
    let text = std::fs::read_to_string(&path)?;
    let mut st = TrainState::default();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            let v: usize = v
                .trim()
                .parse()
                .with_context(|| format!("{}: bad value in '{line}'", path.display()))?;
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
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let cfg = match config {
            Some(c) => c.clone(),
            None => crate::ppuda::config_of(&bytes, 11, 50)
                .with_context(|| format!("{}: a ppuda GHN-2 state dict", path.display()))?,
        };
        let ghn = crate::ppuda::load(&bytes, &cfg, device)
            .with_context(|| format!("{}: a ppuda GHN-2 state dict", path.display()))?;
        return Ok((ghn, TrainState::default()));
    }
    let (dir, file, state) = resolve(path)?;
    let cfg_path = dir.join("ghn.cfg");
    let cfg = if cfg_path.exists() {
        GhnConfig::from_text(&std::fs::read_to_string(&cfg_path)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", cfg_path.display()))?
    } else {
        config
            .cloned()
            .with_context(|| format!("{} missing and no config given", cfg_path.display()))?
    };
    let ghn = Ghn::new(&cfg, device)
        .try_load_file(&file)
        .map_err(|e| anyhow::anyhow!("loading {}: {e:?}", file.display()))?;
    Ok((ghn, state))
}

/// The directory, weights file and training state a checkpoint path names: a directory (its
/// newest step) or a `.bpk` file.
pub fn resolve(path: &Path) -> Result<(PathBuf, PathBuf, TrainState)> {
    Ok(if path.is_dir() {
        let st = latest(path)?
            .with_context(|| format!("{}: no `latest` checkpoint marker", path.display()))?;
        (
            path.to_path_buf(),
            path.join(format!("ghn-step{}.bpk", st.step)),
            st,
        )
    } else {
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
    optim
        .load(&path)
        .map_err(|e| anyhow::anyhow!("loading {}: {e:?}", path.display()))
}

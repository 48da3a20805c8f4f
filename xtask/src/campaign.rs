//! `cargo xtask campaign start|sync|status`: the long meta-training runs of the CIFAR-10 GHNs,
//! resumed in every session from what the repository holds.
//!
//! The campaign is a sequence of phases (the float GHN, then GHN-QAT finetunings of it). Each
//! phase's committed state lives in `checkpoints/<phase>/` (the newest weights and Adam state,
//! `train.csv`, `val.csv`, and `recipe.txt`: the `ghnq train` flags of the run, a finetuning's
//! `--from` included); `checkpoints/campaign.txt` names the phase now running. The run itself
//! works in `runs/<phase>/` (ignored by git), so a checkpoint every few minutes does not touch
//! the tree; `sync` copies the newest checkpoint and the logs back before a commit.

use crate::root;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::shell;

/// The file naming the current phase, relative to the workspace root.
const CURRENT: &str = "checkpoints/campaign.txt";

/// One phase: where its committed state lives and where its run writes.
struct Phase {
    name: String,
    committed: PathBuf,
    run: PathBuf,
}

impl Phase {
    /// `name`, or the phase `checkpoints/campaign.txt` names.
    fn resolve(name: Option<String>) -> Result<Self> {
        let root = root();
        let name = match name {
            Some(n) => n,
            None => std::fs::read_to_string(root.join(CURRENT))
                .with_context(|| format!("reading {CURRENT} (or pass --phase)"))?
                .trim()
                .to_string(),
        };
        let committed = root.join("checkpoints").join(&name);
        if !committed.join("recipe.txt").exists() {
            bail!(
                "no phase '{name}': {} has no recipe.txt (phases: {})",
                committed.display(),
                phases()?.join(", ")
            );
        }
        Ok(Self {
            run: root.join("runs").join(&name),
            committed,
            name,
        })
    }

    fn log(&self) -> PathBuf {
        self.run.with_extension("log")
    }
}

/// Every phase: the `checkpoints/` directories that hold a `recipe.txt`.
fn phases() -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("checkpoints"))? {
        let entry = entry?;
        if entry.path().join("recipe.txt").exists() {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// The recipe's `ghnq train` arguments for a run that resumes its own checkpoint: `--from`
/// (where a finetuning started) gives way to `--resume`.
fn resume_args(recipe: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut words = recipe.split_whitespace();
    while let Some(w) = words.next() {
        if w == "--from" {
            words.next();
        } else if !w.starts_with("--from=") {
            out.push(w.to_string());
        }
    }
    out.push("--resume".into());
    out
}

/// The `step=` of a checkpoint directory's `latest` marker.
fn latest_step(dir: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(dir.join("latest")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("step="))
        .and_then(|v| v.trim().parse().ok())
}

/// The files of checkpoint `step` plus the logs and the configuration.
fn checkpoint_files(step: usize) -> Vec<String> {
    vec![
        format!("ghn-step{step}.bpk"),
        format!("optim-step{step}.bpk"),
        "ghn.cfg".into(),
        "train.csv".into(),
        "val.csv".into(),
        "qat.txt".into(),
        "latest".into(),
    ]
}

/// Copies checkpoint `step` of `from` into `to` (`latest` last, so a torn copy is never taken
/// for a checkpoint) and removes older weights from `to`.
fn copy_checkpoint(from: &Path, to: &Path, step: usize) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for f in checkpoint_files(step) {
        let src = from.join(&f);
        if src.exists() {
            let tmp = to.join(format!(".{f}.tmp"));
            std::fs::copy(&src, &tmp)
                .with_context(|| format!("copying {} to {}", src.display(), tmp.display()))?;
            std::fs::rename(&tmp, to.join(&f))?;
        }
    }
    for entry in std::fs::read_dir(to)? {
        let name = entry?.file_name().into_string().unwrap_or_default();
        let old = ["ghn-step", "optim-step"].iter().any(|p| {
            name.strip_prefix(p)
                .and_then(|r| r.strip_suffix(".bpk"))
                .and_then(|s| s.parse::<usize>().ok())
                .is_some_and(|s| s != step)
        });
        if old {
            std::fs::remove_file(to.join(&name))?;
        }
    }
    Ok(())
}

/// The CIFAR-10 directory: `--data-dir`, else `GHNQ_CIFAR_DIR`, else materialised from
/// `../shared/data/cifar10` into `target/cifar10` by that folder's `prepare.py`.
pub(crate) fn cifar_dir(arg: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = arg.or_else(|| std::env::var_os("GHNQ_CIFAR_DIR").map(PathBuf::from)) {
        return Ok(d);
    }
    let prepare = crate::shared_data().join("cifar10/prepare.py");
    if !prepare.exists() {
        bail!(
            "no CIFAR-10: pass --data-dir <dir holding cifar-10-batches-bin> or set GHNQ_CIFAR_DIR"
        );
    }
    let dest = root().join("target/cifar10");
    let dest_s = dest.to_string_lossy().into_owned();
    shell::run("python3", &[&prepare.to_string_lossy(), &dest_s])?;
    Ok(dest)
}

/// `start`: build (or take `GHNQ_BIN`), restore the committed state if the run directory is behind it, and launch
/// `ghnq train` detached at low priority on one thread: resuming the newest checkpoint, or, for
/// a phase with none yet, from the recipe's start (`--from`).
pub fn start(phase: Option<String>, data_dir: Option<PathBuf>) -> Result<()> {
    let root = root();
    let phase = Phase::resolve(phase)?;
    let recipe_path = phase.committed.join("recipe.txt");
    let recipe = std::fs::read_to_string(&recipe_path)
        .with_context(|| format!("reading {}", recipe_path.display()))?;
    if let Some(pid) = running_pid(&phase.run)? {
        bail!(
            "phase {} already runs (pid {pid}); `cargo xtask campaign status`",
            phase.name
        );
    }
    match (latest_step(&phase.committed), latest_step(&phase.run)) {
        (Some(c), r) if r.is_none_or(|r| r < c) => {
            eprintln!("restoring step {c} of {} into runs/", phase.name);
            copy_checkpoint(&phase.committed, &phase.run, c)?;
        }
        (c, r) => eprintln!("run directory at step {r:?}, committed at step {c:?}"),
    }
    let data = cifar_dir(data_dir)?;
    let ghnq = shell::build_ghnq()?;
    let mut args: Vec<String> = vec!["-n".into(), "19".into(), ghnq.to_string_lossy().into()];
    match latest_step(&phase.run) {
        Some(_) => args.extend(resume_args(&recipe)),
        None => args.extend(recipe.split_whitespace().map(String::from)),
    }
    args.extend([
        "--data-dir".into(),
        data.to_string_lossy().into(),
        "--out".into(),
        phase.run.to_string_lossy().into(),
        "--quiet".into(),
    ]);
    std::fs::create_dir_all(&phase.run)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(phase.log())?;
    eprintln!("$ RAYON_NUM_THREADS=1 nice {}", args.join(" "));
    // The recipe's paths (`--from checkpoints/...`) are relative to the workspace root.
    let child = std::process::Command::new("nice")
        .args(&args)
        .current_dir(&root)
        .env("RAYON_NUM_THREADS", "1")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the campaign")?;
    std::fs::write(phase.run.join("pid"), child.id().to_string())?;
    eprintln!(
        "phase {} started (pid {}); log {}; `cargo xtask campaign sync` before committing",
        phase.name,
        child.id(),
        phase.log().display()
    );
    Ok(())
}

/// The pid of a running campaign, if its pid file names a live `ghnq` process.
fn running_pid(run: &Path) -> Result<Option<u32>> {
    let Ok(text) = std::fs::read_to_string(run.join("pid")) else {
        return Ok(None);
    };
    let pid: u32 = text.trim().parse().context("bad pid file")?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    Ok(String::from_utf8_lossy(&cmdline)
        .contains("ghnq")
        .then_some(pid))
}

/// `sync`: copy the run's newest checkpoint and its logs into the committed directory.
pub fn sync(phase: Option<String>) -> Result<()> {
    let phase = Phase::resolve(phase)?;
    let Some(step) = latest_step(&phase.run) else {
        bail!("{} holds no checkpoint", phase.run.display());
    };
    if latest_step(&phase.committed).is_some_and(|c| c > step) {
        bail!(
            "checkpoints/{0} is ahead of runs/{0}; nothing to sync",
            phase.name
        );
    }
    copy_checkpoint(&phase.run, &phase.committed, step)?;
    eprintln!(
        "checkpoints/{} now holds step {step}; update its PROVENANCE.md and commit",
        phase.name
    );
    Ok(())
}

/// `status`: every phase, whether it runs, its step, speed and last validation.
pub fn status() -> Result<()> {
    let current = std::fs::read_to_string(root().join(CURRENT)).unwrap_or_default();
    for name in phases()? {
        let phase = Phase::resolve(Some(name.clone()))?;
        let mark = if current.trim() == name {
            " (current)"
        } else {
            ""
        };
        println!("phase {name}{mark}");
        match running_pid(&phase.run)? {
            Some(pid) => println!("  running, pid {pid}"),
            None => println!("  not running"),
        }
        println!(
            "  newest checkpoint: run {:?}, committed {:?}",
            latest_step(&phase.run),
            latest_step(&phase.committed)
        );
        let last = |f: &str| {
            std::fs::read_to_string(phase.run.join(f))
                .ok()
                .and_then(|t| t.lines().last().map(String::from))
        };
        if let Some(l) = last("train.csv") {
            println!("  train.csv: {l}   (step,epoch,lr,loss,acc,grad_norm,skipped,steps_per_s)");
        }
        if let Some(l) = last("val.csv") {
            println!("  val.csv:   {l}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_finetuning_drops_its_start() {
        assert_eq!(
            resume_args("train --qat w4a4 --from checkpoints/cifar10-float --lr 1e-4"),
            ["train", "--qat", "w4a4", "--lr", "1e-4", "--resume"]
        );
        assert_eq!(
            resume_args("train --from=x --epochs 3"),
            ["train", "--epochs", "3", "--resume"]
        );
    }

    #[test]
    fn every_committed_phase_resolves() {
        let names = phases().unwrap();
        assert!(names.iter().any(|n| n == "cifar10-float"), "{names:?}");
        for n in names {
            let p = Phase::resolve(Some(n.clone())).unwrap();
            assert!(p.run.ends_with(format!("runs/{n}")));
        }
        assert!(Phase::resolve(Some("nosuch".into())).is_err());
    }
}

//! `cargo xtask campaign start|sync|status`: the long meta-training run of the float CIFAR-10 GHN,
//! resumed in every session from what the repository holds.
//!
//! The committed state lives in `checkpoints/cifar10-float/` (the newest weights and Adam state,
//! `train.csv`, `val.csv`, and `recipe.txt`: the `ghnq train` flags of the run). The run itself
//! works in `runs/cifar10-float/` (ignored by git), so a checkpoint every few minutes does not
//! touch the tree; `sync` copies the newest checkpoint and the logs back before a commit.

use crate::root;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::shell;

/// Where the committed campaign state lives, relative to the workspace root.
const COMMITTED: &str = "checkpoints/cifar10-float";
/// Where the running campaign writes.
const RUN: &str = "runs/cifar10-float";

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
fn cifar_dir(arg: Option<PathBuf>) -> Result<PathBuf> {
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

/// `start`: build, restore the committed state if the run directory is behind it, and launch
/// `ghnq train --resume` detached at low priority on one thread.
pub fn start(data_dir: Option<PathBuf>) -> Result<()> {
    let root = root();
    let (committed, run) = (root.join(COMMITTED), root.join(RUN));
    let recipe = std::fs::read_to_string(committed.join("recipe.txt"))
        .with_context(|| format!("reading {}/recipe.txt", committed.display()))?;
    if let Some(pid) = running_pid(&run)? {
        bail!("the campaign already runs (pid {pid}); `cargo xtask campaign status`");
    }
    match (latest_step(&committed), latest_step(&run)) {
        (Some(c), r) if r.is_none_or(|r| r < c) => {
            eprintln!("restoring step {c} from {COMMITTED} into {RUN}");
            copy_checkpoint(&committed, &run, c)?;
        }
        (c, r) => {
            eprintln!("run directory at step {r:?}, committed at step {c:?}: resuming the run")
        }
    }
    let data = cifar_dir(data_dir)?;
    shell::run(
        &shell::cargo(),
        &["build", "--release", "-p", "host-trainer", "--bin", "ghnq"],
    )?;
    let ghnq = root.join("target/release/ghnq");
    let mut args: Vec<String> = vec!["-n".into(), "19".into(), ghnq.to_string_lossy().into()];
    args.extend(recipe.split_whitespace().map(String::from));
    args.extend([
        "--data-dir".into(),
        data.to_string_lossy().into(),
        "--out".into(),
        run.to_string_lossy().into(),
        "--resume".into(),
        "--quiet".into(),
    ]);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join(format!("{RUN}.log")))?;
    eprintln!("$ RAYON_NUM_THREADS=1 nice {}", args.join(" "));
    let child = std::process::Command::new("nice")
        .args(&args)
        .env("RAYON_NUM_THREADS", "1")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the campaign")?;
    std::fs::write(run.join("pid"), child.id().to_string())?;
    eprintln!(
        "campaign started (pid {}); log {RUN}.log; `cargo xtask campaign sync` before committing",
        child.id()
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
pub fn sync() -> Result<()> {
    let root = root();
    let (committed, run) = (root.join(COMMITTED), root.join(RUN));
    let Some(step) = latest_step(&run) else {
        bail!("{RUN} holds no checkpoint");
    };
    if latest_step(&committed).is_some_and(|c| c > step) {
        bail!("{COMMITTED} is ahead of {RUN}; nothing to sync");
    }
    copy_checkpoint(&run, &committed, step)?;
    eprintln!("{COMMITTED} now holds step {step}; update its PROVENANCE.md and commit");
    Ok(())
}

/// `status`: whether it runs, its step, speed and last validation.
pub fn status() -> Result<()> {
    let run = root().join(RUN);
    match running_pid(&run)? {
        Some(pid) => println!("running, pid {pid}"),
        None => println!("not running"),
    }
    println!("newest checkpoint: step {:?}", latest_step(&run));
    let last = |f: &str| {
        std::fs::read_to_string(run.join(f))
            .ok()
            .and_then(|t| t.lines().last().map(String::from))
    };
    if let Some(l) = last("train.csv") {
        println!("train.csv: {l}   (step,epoch,lr,loss,acc,grad_norm,skipped,steps_per_s)");
    }
    if let Some(l) = last("val.csv") {
        println!("val.csv:   {l}");
    }
    Ok(())
}

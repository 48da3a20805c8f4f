//! `cargo xtask campaign start|sync|status`: the long meta-training runs of the CIFAR-10 GHNs,
//! resumed in every session from what the repository holds.
//!
//! The campaign is a sequence of phases (the float GHN, then GHN-QAT finetunings of it). Each
//! phase's committed state lives in `checkpoints/<phase>/` (the newest weights and Adam state,
//! `train.csv`, `val.csv`, and `recipe.txt`: the `ghnq train` flags of the run, a finetuning's
//! `--from` included); `checkpoints/campaign.txt` names the phase now running, then the phases
//! queued behind it, one per line: when a phase finishes, the runner syncs it and starts the
//! next, so no hour between sessions is lost to a finished run (a queued finetuning's `--from
//! checkpoints/<phase>` reads the synced final checkpoint). The run itself
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
            None => queue()?
                .into_iter()
                .next()
                .with_context(|| format!("{CURRENT} names no phase (or pass --phase)"))?,
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

/// The phases of campaign.txt's text, in order: one per line, blank lines and `#` comments
/// skipped.
fn queued(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// The phases campaign.txt names: the current one first.
pub(crate) fn queue() -> Result<Vec<String>> {
    let path = root().join(CURRENT);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(queued(&text))
}

/// campaign.txt's text with its first phase's line removed (comments kept), so the next phase
/// is current; `None` when no other phase is queued.
fn advanced(text: &str) -> Option<String> {
    if queued(text).len() < 2 {
        return None;
    }
    let mut dropped = false;
    let mut out = String::new();
    for line in text.lines() {
        let phase = line.split('#').next().unwrap_or_default().trim();
        if !dropped && !phase.is_empty() {
            dropped = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    Some(out)
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

/// `start`: build (or take `GHNQ_BIN`) and launch the runner (`run`) detached at low priority
/// on one thread: `phase` alone, or campaign.txt's queue from its current phase on.
pub fn start(phase: Option<String>, data_dir: Option<PathBuf>) -> Result<()> {
    let first = Phase::resolve(phase.clone())?;
    if let Some(pid) = running_pid(&first.run)? {
        bail!(
            "phase {} already runs (pid {pid}); `cargo xtask campaign status`",
            first.name
        );
    }
    let data = cifar_dir(data_dir)?;
    let ghnq = shell::build_ghnq()?;
    let log_path = root().join("runs/campaign.log");
    std::fs::create_dir_all(root().join("runs"))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let me = std::env::current_exe().context("this xtask's path")?;
    // Nice 10: above the tables (15) and anything else that trains beside it (19), below a
    // session's builds. Every thread of the trainer inherits it; a `renice -p` of the trainer's
    // pid afterwards would reach only its main thread, which waits while a worker computes.
    let mut runner = std::process::Command::new("nice");
    runner
        .args(["-n", "10"])
        .arg(me)
        .args(["campaign", "run", "--data-dir"])
        .arg(&data);
    if let Some(p) = &phase {
        runner.args(["--phase", p]);
    }
    let child = runner
        .env("RAYON_NUM_THREADS", "1")
        // Every phase of the chain trains with the binary built (or pinned) now.
        .env("GHNQ_BIN", &ghnq)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the campaign runner")?;
    let what = match &phase {
        Some(p) => format!("phase {p}"),
        None => format!("the queue of {CURRENT} from {}", first.name),
    };
    eprintln!(
        "campaign runner started on {what} (pid {}); log {} and runs/<phase>.log; \
         `cargo xtask campaign status`, and `cargo xtask campaign sync` before committing",
        child.id(),
        log_path.display()
    );
    Ok(())
}

/// `run` (what `start` launches): train `phase`, or each phase of campaign.txt's queue in turn,
/// syncing a finished phase and making the next current. A phase that stops without finishing
/// (killed at the end of a session, or failing) ends the run and keeps its place in the queue.
pub fn run(phase: Option<String>, data_dir: &Path) -> Result<()> {
    if let Some(name) = phase {
        return train(&Phase::resolve(Some(name))?, data_dir);
    }
    loop {
        let current = Phase::resolve(None)?;
        train(&current, data_dir)?;
        sync(Some(current.name.clone()))?;
        let path = root().join(CURRENT);
        let text = std::fs::read_to_string(&path)?;
        let Some(next) = advanced(&text) else {
            eprintln!(
                "campaign: {} finished and nothing is queued behind it",
                current.name
            );
            return Ok(());
        };
        let tmp = path.with_extension("txt.tmp");
        std::fs::write(&tmp, &next)?;
        std::fs::rename(&tmp, &path)?;
        eprintln!(
            "campaign: {} finished and synced; {CURRENT} now starts with {} (commit both)",
            current.name,
            queued(&next)[0]
        );
    }
}

/// One phase's `ghnq train`, in the foreground of the runner: resuming the newest checkpoint
/// (the committed one if the run directory is behind it), or, for a phase with none yet, from
/// the recipe's start (`--from`). Succeeds only when the run finished its epochs.
fn train(phase: &Phase, data: &Path) -> Result<()> {
    let root = root();
    let recipe_path = phase.committed.join("recipe.txt");
    let recipe = std::fs::read_to_string(&recipe_path)
        .with_context(|| format!("reading {}", recipe_path.display()))?;
    match (latest_step(&phase.committed), latest_step(&phase.run)) {
        (Some(c), r) if r.is_none_or(|r| r < c) => {
            eprintln!("restoring step {c} of {} into runs/", phase.name);
            copy_checkpoint(&phase.committed, &phase.run, c)?;
        }
        (c, r) => eprintln!("run directory at step {r:?}, committed at step {c:?}"),
    }
    let ghnq = shell::ghnq_bin();
    let mut args: Vec<String> = match latest_step(&phase.run) {
        Some(_) => resume_args(&recipe),
        None => recipe.split_whitespace().map(String::from).collect(),
    };
    if dataset(&recipe) == Some("cifar10") {
        args.extend(["--data-dir".into(), data.to_string_lossy().into()]);
    }
    args.extend([
        "--out".into(),
        phase.run.to_string_lossy().into(),
        "--quiet".into(),
    ]);
    std::fs::create_dir_all(&phase.run)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(phase.log())?;
    eprintln!(
        "$ RAYON_NUM_THREADS=1 {} {}   (log {})",
        ghnq.display(),
        args.join(" "),
        phase.log().display()
    );
    // The recipe's paths (`--from checkpoints/...`) are relative to the workspace root.
    let mut child = std::process::Command::new(&ghnq)
        .args(&args)
        .current_dir(&root)
        .env("RAYON_NUM_THREADS", "1")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {} for {}", ghnq.display(), phase.name))?;
    std::fs::write(phase.run.join("pid"), child.id().to_string())?;
    let status = child.wait()?;
    if !status.success() {
        bail!(
            "phase {} stopped before finishing ({status}); it resumes from runs/{} with \
             `cargo xtask campaign start`",
            phase.name,
            phase.name
        );
    }
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
    let queue = queue().unwrap_or_default();
    println!("queue ({CURRENT}): {}", queue.join(" -> "));
    for name in phases()? {
        let phase = Phase::resolve(Some(name.clone()))?;
        let mark = if queue.first() == Some(&name) {
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
        let recipe =
            std::fs::read_to_string(phase.committed.join("recipe.txt")).unwrap_or_default();
        let epochs = flag(&recipe, "--epochs").and_then(|e| e.parse().ok());
        if let Some(p) = std::fs::read_to_string(phase.run.join("train.csv"))
            .ok()
            .and_then(|t| progress(&t, epochs))
        {
            println!("  progress: {}", progress_line(&p));
        }
        if let Some(l) = last("val.csv") {
            println!("  val.csv:   {l}");
        }
    }
    Ok(())
}

/// The `--dataset` a recipe names (`--dataset x` or `--dataset=x`): the CIFAR-10 directory goes
/// only to a CIFAR-10 phase (a Fashion-MNIST finetuning reads its own data where `ghnq` finds it).
fn dataset(recipe: &str) -> Option<&str> {
    flag(recipe, "--dataset")
}

/// The value a recipe gives `name` (`name x` or `name=x`).
fn flag<'a>(recipe: &'a str, name: &str) -> Option<&'a str> {
    let mut words = recipe.split_whitespace();
    while let Some(w) = words.next() {
        if w == name {
            return words.next();
        }
        if let Some(v) = w.strip_prefix(name).and_then(|v| v.strip_prefix('=')) {
            return Some(v);
        }
    }
    None
}

/// How far a run is, from its `train.csv` (`step,epoch,...,steps_per_s` rows) and its recipe's
/// `--epochs`: the steps done, the steps the epochs make (steps per epoch read where the epoch
/// column first turns; unknown before that) and the last logged rate.
#[derive(Debug, PartialEq)]
struct Progress {
    done: usize,
    total: Option<usize>,
    steps_per_s: Option<f64>,
}

fn progress(train_csv: &str, epochs: Option<usize>) -> Option<Progress> {
    let rows: Vec<(usize, usize, Option<f64>)> = train_csv
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            Some((
                cells.first()?.parse().ok()?,
                cells.get(1)?.parse().ok()?,
                cells.last().and_then(|v| v.parse().ok()),
            ))
        })
        .collect();
    let &(first_step, first_epoch, _) = rows.first()?;
    let &(last_step, _, steps_per_s) = rows.last()?;
    let per_epoch = rows
        .iter()
        .find(|r| r.1 != first_epoch)
        .map(|r| (r.0 - first_step) / (r.1 - first_epoch).max(1));
    Some(Progress {
        done: last_step + 1,
        total: per_epoch.zip(epochs).map(|(p, e)| p * e),
        steps_per_s: steps_per_s.filter(|r| *r > 0.0),
    })
}

/// One line of [`status`]: the steps done and, where known, of how many and the time left.
fn progress_line(p: &Progress) -> String {
    match (p.total, p.steps_per_s) {
        (Some(total), Some(rate)) => format!(
            "step {} of {total} ({:.1} %), {rate:.2} steps/s at the last log: about {:.1} h left",
            p.done,
            100.0 * p.done as f64 / total as f64,
            total.saturating_sub(p.done) as f64 / rate / 3600.0
        ),
        (Some(total), None) => format!("step {} of {total}", p.done),
        _ => format!(
            "step {} (steps per epoch not known before the first epoch ends)",
            p.done
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_cifar10_phase_is_given_the_cifar10_directory() {
        assert_eq!(
            dataset("train --dataset cifar10 --lr 1e-4"),
            Some("cifar10")
        );
        assert_eq!(
            dataset("train --lr 1e-4 --dataset=fashion-mnist"),
            Some("fashion-mnist")
        );
        assert_eq!(dataset("train --lr 1e-4"), None);
        for phase in phases().unwrap() {
            let recipe =
                std::fs::read_to_string(root().join("checkpoints").join(&phase).join("recipe.txt"))
                    .unwrap();
            assert!(
                matches!(dataset(&recipe), Some("cifar10" | "fashion-mnist")),
                "{phase}: {recipe}"
            );
        }
    }

    #[test]
    fn progress_counts_the_epochs_steps() {
        let head = "step,epoch,lr,loss,acc,grad_norm,skipped,steps_per_s\n";
        let rows = |steps: std::ops::Range<usize>, per_epoch: usize| -> String {
            steps
                .map(|s| format!("{s},{},1e-3,1.5,0.4,2.0,0,2.000\n", s / per_epoch))
                .collect()
        };
        let p = progress(&format!("{head}{}", rows(0..4000, 1562)), Some(20)).unwrap();
        assert_eq!(
            p,
            Progress {
                done: 4000,
                total: Some(31_240),
                steps_per_s: Some(2.0)
            }
        );
        let line = progress_line(&p);
        assert!(line.starts_with("step 4000 of 31240 (12.8 %)"), "{line}");
        assert!(line.ends_with("about 3.8 h left"), "{line}");
        // Before the first epoch ends, and without a rate or a recipe's epochs.
        let early = progress(&format!("{head}{}", rows(0..100, 1562)), Some(20)).unwrap();
        assert_eq!(early.total, None);
        assert!(progress_line(&early).contains("not known"));
        assert_eq!(progress(head, Some(20)), None);
        assert_eq!(
            progress(&format!("{head}{}", rows(0..4000, 1562)), None)
                .unwrap()
                .total,
            None
        );
        assert_eq!(flag("train --epochs 20 --lr 1e-3", "--epochs"), Some("20"));
        assert_eq!(flag("train --epochs=2", "--epochs"), Some("2"));
        assert_eq!(flag("train --epochsx 2", "--epochs"), None);
    }

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
    fn a_finished_phase_hands_the_queue_to_the_next() {
        let text = "# the float GHN, then its finetuning\nfloat-cycle2\n\nqat-w4a4  # from float-cycle2\nqat-w2a2\n";
        assert_eq!(queued(text), ["float-cycle2", "qat-w4a4", "qat-w2a2"]);
        let next = advanced(text).unwrap();
        assert_eq!(queued(&next), ["qat-w4a4", "qat-w2a2"]);
        assert!(next.starts_with("# the float GHN"), "comments stay: {next}");
        assert_eq!(queued(&advanced(&next).unwrap()), ["qat-w2a2"]);
        assert_eq!(advanced("qat-w2a2\n"), None, "the last phase stays named");
        assert_eq!(queued(""), Vec::<String>::new());
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

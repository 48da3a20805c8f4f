//! `cargo xtask tables start|status|merge`: the paper's tables at power (issue 16: ≥ 50 nets per
//! split, 2,000 test images), as many small `ghnq eval --shard i/n` runs that any session can
//! resume, since no session has the CPU-hours to run them at once.
//!
//! `results/ghn-tables/plan.txt` lists the evaluations, one per line: a name, then the
//! `ghnq eval` arguments that differ (`--ghn`, `--init`, `--bits`, clipping). Every line shares
//! [`COMMON`] and is cut into [`SHARDS`] shards, each a contiguous tenth of every split's nets.
//! A finished shard is `results/ghn-tables/<name>/shard-<i>-of-<n>.csv` (per-net results, written
//! under another name and renamed when the run succeeds) with its `.json` summary (CPU seconds);
//! `start` runs the missing ones in plan order in the background (nice 15, one thread unless
//! `--threads` says more: a shard's nets are then evaluated that many at a time), `merge`
//! combines each line's shards into `<name>.md` and `<name>.csv` with `ghnq merge`. `GHNQ_BIN`
//! names the `ghnq` to use instead of building `target/release/ghnq`.
//!
//! A line whose `--ghn checkpoints/<phase>` is still in the campaign's queue
//! (`checkpoints/campaign.txt`: running or not yet begun) waits: its shards run once the campaign
//! has finished and synced that phase, so no CPU-hour goes into a table of a GHN that is still
//! training. The runner checks the queue again every [`RECHECK`] while only such lines are left.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::{root, shell};

/// Where the plan and the shards live, relative to the workspace root.
const DIR: &str = "results/ghn-tables";
/// Shards per plan line: 5 nets of each split at 50 nets per split.
const SHARDS: usize = 10;
/// The `ghnq eval` arguments every line shares: CIFAR-10 at 50 nets per split, 2,000 test
/// images and 500 calibration images per net.
const COMMON: &str = "eval --dataset cifar10 --count 50 --images 2000 --calib 500";
/// How often a runner with nothing left but waiting lines looks at the campaign's queue again.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(600);
/// The paper's four splits, every line's unless it names some of them (a GHN specialised for one
/// space, such as the BN-free-specific GHN, is evaluated on that split alone).
const SPLITS: [&str; 4] = ["test", "deep", "wide", "bn-free"];

/// One plan line.
struct Line {
    name: String,
    args: Vec<String>,
}

impl Line {
    /// The `ghnq eval` arguments of every shard of this line (the runner adds the shard, the
    /// CSV and the data): [`COMMON`], the line's own, and all of [`SPLITS`] unless it names some.
    fn eval_args(&self) -> Vec<String> {
        let mut args: Vec<String> = COMMON.split_whitespace().map(String::from).collect();
        args.extend(self.args.iter().cloned());
        if !self.args.iter().any(|a| a == "--split") {
            args.extend(["--split".into(), SPLITS.join(",")]);
        }
        args
    }
}

/// The campaign phase a line waits for: the phase its `--ghn checkpoints/<phase>` names, if
/// that phase is in `queue` (campaign.txt's phases, the running one first).
fn waiting_phase(args: &[String], queue: &[String]) -> Option<String> {
    let k = args.iter().position(|a| a == "--ghn")?;
    let path = args.get(k + 1)?.trim_end_matches('/');
    let phase = path.strip_prefix("checkpoints/")?;
    queue.iter().any(|q| q == phase).then(|| phase.to_string())
}

/// [`waiting_phase`] against campaign.txt as it is now (no campaign file: nothing waits).
fn waits_for(line: &Line) -> Option<String> {
    let queue = crate::campaign::queue().unwrap_or_default();
    waiting_phase(&line.args, &queue)
}

fn plan() -> Result<Vec<Line>> {
    let path = root().join(DIR).join("plan.txt");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_plan(&text).with_context(|| format!("in {}", path.display()))
}

fn parse_plan(text: &str) -> Result<Vec<Line>> {
    let mut out: Vec<Line> = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut words = l.split_whitespace();
        let name = words.next().unwrap_or_default().to_string();
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!(
                "line {}: '{name}' is not a name (letters, digits, - and _)",
                i + 1
            );
        }
        if out.iter().any(|o| o.name == name) {
            bail!("line {}: '{name}' twice", i + 1);
        }
        let args: Vec<String> = words.map(String::from).collect();
        if let Some(k) = args.iter().position(|a| a == "--split") {
            let value = args.get(k + 1).map(String::as_str).unwrap_or_default();
            if value.is_empty() || !value.split(',').all(|s| SPLITS.contains(&s)) {
                bail!(
                    "line {}: --split '{value}' is not a list of {}",
                    i + 1,
                    SPLITS.join(", ")
                );
            }
        }
        if let Some(a) = args.iter().find(|a| {
            ["--shard", "--csv", "--count", "--dataset", "--images"].contains(&a.as_str())
        }) {
            bail!("line {}: {a} is the runner's to set", i + 1);
        }
        out.push(Line { name, args });
    }
    Ok(out)
}

fn shard_path(name: &str, i: usize, ext: &str) -> PathBuf {
    root()
        .join(DIR)
        .join(name)
        .join(format!("shard-{i}-of-{SHARDS}.{ext}"))
}

/// The shards of `name` that are done.
fn done(name: &str) -> Vec<usize> {
    (1..=SHARDS)
        .filter(|&i| shard_path(name, i, "csv").exists())
        .collect()
}

/// `start`: build `ghnq`, then run the missing shards detached (this binary's `run`), each on
/// `threads` threads (`ghnq eval` evaluates that many nets at a time).
pub fn start(data_dir: Option<PathBuf>, threads: usize) -> Result<()> {
    anyhow::ensure!(threads >= 1, "--threads must be at least 1");
    let lines = plan()?;
    let missing: usize = lines.iter().map(|l| SHARDS - done(&l.name).len()).sum();
    if missing == 0 {
        eprintln!("every shard of the plan is done: `cargo xtask tables merge`");
        return Ok(());
    }
    let data = crate::campaign::cifar_dir(data_dir)?;
    shell::build_ghnq()?;
    let log_path = root().join("runs/ghn-tables.log");
    std::fs::create_dir_all(root().join("runs"))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let me = std::env::current_exe().context("this xtask's path")?;
    // Nice 15: after the campaign (10), before other training run beside it at 19.
    let child = std::process::Command::new("nice")
        .args(["-n", "15"])
        .arg(me)
        .args(["tables", "run", "--data-dir"])
        .arg(&data)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the table runner")?;
    eprintln!(
        "{missing} shards to run (pid {}); log {}; `cargo xtask tables status`",
        child.id(),
        log_path.display()
    );
    Ok(())
}

/// `run` (what `start` launches): every missing shard, one at a time, shard 1 of every line
/// before shard 2 of any: a run cut off after k rounds leaves every line at 5k nets per split,
/// a whole table with wider error bars, rather than some lines finished and others not begun.
/// A shard that fails is logged and left missing while the others go on (one net the exporter
/// refuses must not stop the hours of shards behind it); the run then fails, naming them all.
/// Lines waiting for a campaign phase are passed over; when only they are left, the runner
/// looks at the queue again every [`RECHECK`] until they can run.
pub fn run(data_dir: &Path) -> Result<()> {
    let lines = plan()?;
    let mut failed = Vec::new();
    loop {
        let (ran, waiting) = pass(&lines, data_dir, &mut failed)?;
        if waiting.is_empty() {
            break;
        }
        if !ran {
            eprintln!(
                "waiting for campaign phase(s) {} (checkpoints/campaign.txt); next look in {} s",
                waiting.join(", "),
                RECHECK.as_secs()
            );
            std::thread::sleep(RECHECK);
        }
    }
    if !failed.is_empty() {
        bail!("{} shard(s) failed: {}", failed.len(), failed.join(", "));
    }
    Ok(())
}

/// One pass of [`run`] over the missing shards (failures added to `failed`, not retried):
/// whether any shard ran, and the phases that lines still wait for.
fn pass(lines: &[Line], data_dir: &Path, failed: &mut Vec<String>) -> Result<(bool, Vec<String>)> {
    let ghnq = shell::ghnq_bin();
    let (mut ran, mut waiting) = (false, Vec::new());
    for i in 1..=SHARDS {
        for line in lines {
            let csv = shard_path(&line.name, i, "csv");
            let label = format!("{} shard {i}", line.name);
            if csv.exists() || failed.contains(&label) {
                continue;
            }
            if let Some(phase) = waits_for(line) {
                if !waiting.contains(&phase) {
                    waiting.push(phase);
                }
                continue;
            }
            ran = true;
            std::fs::create_dir_all(csv.parent().expect("shards sit in a directory"))?;
            let tmp = csv.with_extension("csv.partial");
            let mut args = line.eval_args();
            args.extend([
                "--data-dir".into(),
                data_dir.to_string_lossy().into(),
                "--shard".into(),
                format!("{i}/{SHARDS}"),
                "--csv".into(),
                tmp.to_string_lossy().into(),
                "--json".into(),
            ]);
            eprintln!("$ ghnq {}", args.join(" "));
            let out = std::process::Command::new(&ghnq)
                .args(&args)
                .current_dir(root())
                .stderr(std::process::Stdio::inherit())
                .output()
                .with_context(|| format!("running {}", ghnq.display()))?;
            if !out.status.success() {
                eprintln!(
                    "{} shard {i} failed with {}; going on",
                    line.name, out.status
                );
                failed.push(label);
                continue;
            }
            std::fs::write(shard_path(&line.name, i, "json"), &out.stdout)?;
            std::fs::rename(&tmp, &csv)?;
            eprintln!("{} shard {i}/{SHARDS} done", line.name);
        }
    }
    Ok((ran, waiting))
}

/// `status`: shards done per plan line, and their CPU time.
pub fn status() -> Result<()> {
    for line in plan()? {
        let done = done(&line.name);
        let cpu: f64 = 0.0
            + done
                .iter()
                .filter_map(|&i| std::fs::read_to_string(shard_path(&line.name, i, "json")).ok())
                .filter_map(|t| cpu_seconds(&t))
                .sum::<f64>();
        let waits = waits_for(&line)
            .map(|p| format!(" (waits for campaign phase {p})"))
            .unwrap_or_default();
        println!(
            "{:<20} {:>2}/{SHARDS} shards, {:.2} CPU-hours so far{waits}   ghnq {}",
            line.name,
            done.len(),
            cpu / 3600.0,
            line.eval_args().join(" ")
        );
    }
    Ok(())
}

/// The `cpu_s` of an `eval --json` summary (the one number read from it: no JSON parser).
fn cpu_seconds(json: &str) -> Option<f64> {
    let at = json.find("\"cpu_s\":")? + "\"cpu_s\":".len();
    let rest = &json[at..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

/// `merge`: each plan line's finished shards into `<name>.md` and `<name>.csv`.
pub fn merge() -> Result<()> {
    let ghnq = shell::ghnq_bin();
    for line in plan()? {
        let done = done(&line.name);
        if done.is_empty() {
            continue;
        }
        let dir = root().join(DIR);
        let mut args: Vec<String> = vec!["merge".into()];
        args.extend(done.iter().map(|&i| {
            shard_path(&line.name, i, "csv")
                .to_string_lossy()
                .into_owned()
        }));
        for ext in ["md", "csv"] {
            args.push(if ext == "md" { "--markdown" } else { "--csv" }.into());
            args.push(
                dir.join(format!("{}.{ext}", line.name))
                    .to_string_lossy()
                    .into(),
            );
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        shell::run(&ghnq.to_string_lossy(), &refs)?;
        eprintln!("{}: {}/{SHARDS} shards merged", line.name, done.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_parses_and_refuses_what_the_runner_sets() {
        let lines =
            parse_plan("# comment\n\nghn-q --ghn checkpoints/x --bits float,w8a8\n").unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].name, "ghn-q");
        assert_eq!(
            lines[0].args,
            ["--ghn", "checkpoints/x", "--bits", "float,w8a8"]
        );
        assert!(parse_plan("a --shard 1/2").is_err());
        assert!(parse_plan("a --bits w8a8\na --bits w4a4").is_err());
        assert!(parse_plan("a/b --bits w8a8").is_err());
        // A line may narrow the splits, never widen or rename them.
        assert!(parse_plan("a --split bn-free --bits w4a4").is_ok());
        assert!(parse_plan("a --split test,bn-free").is_ok());
        assert!(parse_plan("a --split train").is_err());
        assert!(parse_plan("a --split").is_err());
        let args = |l: &str| parse_plan(l).unwrap()[0].eval_args().join(" ");
        assert!(args("a --bits w8a8").ends_with("--bits w8a8 --split test,deep,wide,bn-free"));
        assert!(args("a --split bn-free").ends_with("--split bn-free"));
        assert!(!args("a --split bn-free").contains("test,"));
        // The committed plan is valid.
        assert!(!plan().unwrap().is_empty());
    }

    #[test]
    fn a_line_waits_while_its_ghn_is_in_the_campaign_queue() {
        let queue: Vec<String> = ["cifar10-float-cycle2", "cifar10-qat-w4a4-cycle2"]
            .map(String::from)
            .into();
        let args = |l: &str| parse_plan(l).unwrap().remove(0).args;
        let wait = |l: &str| waiting_phase(&args(l), &queue);
        assert_eq!(
            wait("a --ghn checkpoints/cifar10-qat-w4a4-cycle2/ --bits w4a4").as_deref(),
            Some("cifar10-qat-w4a4-cycle2")
        );
        assert_eq!(
            wait("a --ghn checkpoints/cifar10-float-cycle2 --bits float").as_deref(),
            Some("cifar10-float-cycle2")
        );
        // A finished phase, a random init and a GHN outside checkpoints/ do not wait.
        assert_eq!(wait("a --ghn checkpoints/cifar10-float --bits float"), None);
        assert_eq!(wait("a --init random --bits float"), None);
        assert_eq!(wait("a --ghn runs/cifar10-float-cycle2 --bits float"), None);
    }

    #[test]
    fn cpu_seconds_read_from_an_eval_summary() {
        assert_eq!(
            cpu_seconds("{\"init\":\"GHN\",\"cpu_s\":150.5,\"pairs\":9}"),
            Some(150.5)
        );
        assert_eq!(cpu_seconds("{}"), None);
    }
}

//! `ghnq study`: the seed paper's §3 random-initialisation study as a resumable grid.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use ghnq_core::cnn::init::Initializer;
use ghnq_study::augment::PaperAugment;
use ghnq_study::grid::{self, Pair, Shard};
use ghnq_study::metrics::DivergenceRule;
use ghnq_study::run::{Recipe, RunProgress, RunResult, Status};
use ghnq_study::{self as study, GridProgress, StudyPlan, table};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// CPU-scale default: epochs over the training images (the paper: 200).
pub const DEFAULT_EPOCHS: f64 = 2.0;
/// CPU-scale default: training images per epoch (the paper: all).
pub const DEFAULT_IMAGES: usize = 10_000;
/// CPU-scale default: test images (the paper: all 10,000).
pub const DEFAULT_TEST_IMAGES: usize = 2_000;

/// Arguments of `ghnq study`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Train and evaluate every (architecture, initialiser) pair; skip pairs already finished
    /// in --out.
    #[command(long_about = INIT_ABOUT)]
    Init(Box<InitArgs>),
    /// Assemble Tables 1 and 2 and the spread summary from the records in --out and print them.
    Table(TableArgs),
}

const INIT_ABOUT: &str = "\
Train and evaluate every (architecture, initialiser) pair of the seed paper's §3.

Each pair is trained with §3.1's recipe: SGD with momentum 0.9, batch 128, learning rate 0.01 \
divided by 10 at 75/200, 120/200 and 170/200 of training, shift/zoom/flip/rotation \
augmentation, for --epochs passes over the first --images training images. A run whose loss is \
NaN/inf, or stays above --max-loss for --patience steps, is stopped and recorded as diverged \
(left out of the tables, as the paper does). Finished runs are evaluated on --test-images test \
images: FP32 accuracy (BN statistics calibrated on the calibration images), QUINT8 accuracy \
(8-bit per-tensor asymmetric weights and activations, BN folded, activation ranges clipped at \
1 % at each end, measured on --calib training images) from the fake-quant simulation and from \
the integer runtime, QMSE, QCE and the percent accuracy decrease.

Every pair writes OUT/runs/<Arch>__<Init>.json when it ends, so a rerun skips finished pairs \
(a crash loses at most the run in progress) and --shard i/n splits the grid across processes or \
machines sharing OUT. After the runs, OUT/table1.{csv,md}, table2.{csv,md} and spread.{csv,md} \
are rewritten from every record in OUT; OUT/layerwise/*.{csv,png,svg} hold the per-layer \
ranges and precision (Figs. 3-6).

The defaults are a CPU-scale recipe: 2 epochs of the first 10,000 Fashion-MNIST training images \
(157 steps), 2,000 test images; about 2.5 h for the 48 pairs of Fig. 1 on 2 shared cores (see \
the `study` module docs for measured costs). The paper's recipe is --dataset cifar10 --images 0 \
--test-images 10000 --epochs 200.";

/// Arguments of `ghnq study init`.
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Architectures: all (Figs. 1 and 2), fig1, fig2, or names (Regular_Conv_With_BN,
    /// Regular_Conv_No_BN, DWS_Conv_With_BN, DWS_Conv_No_BN, Basic_Residual_With_BN,
    /// Basic_Residual_No_BN, MbNetV2_With_BN, MbNetV2_No_BN), comma-separated.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    pub archs: Vec<String>,
    /// Initialisers: all, or names (RandUni_Small, RandUni_Med, RandUni_Large, RandNorm_Small,
    /// RandNorm_Med, RandNorm_Large, GlorotUni, GlorotNorm, HeUni, HeNorm, ModGlorotUni_Med,
    /// ModGlorotUni_Large), comma-separated.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    pub inits: Vec<String>,
    /// Epochs over the training images (fractions allowed; the paper: 200).
    #[arg(long, default_value_t = DEFAULT_EPOCHS)]
    pub epochs: f64,
    /// Output directory (records, tables, layerwise CSVs).
    #[arg(long)]
    pub out: PathBuf,
    /// Run only shard i of n (1-based, e.g. 2/4): every n-th pair of the grid.
    #[arg(long, default_value = "1/1")]
    pub shard: Shard,
    /// Data set: fashion-mnist, cifar10 (the paper's), or synthetic / synthetic-gray (tests).
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Directory of the data set files (default: the loader's standard location).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Training images per epoch: the first N of the training set (0 = all).
    #[arg(long, default_value_t = DEFAULT_IMAGES)]
    pub images: usize,
    /// Test images (the first N of the test set; the paper: all 10,000).
    #[arg(long, default_value_t = DEFAULT_TEST_IMAGES)]
    pub test_images: usize,
    /// Images per SGD step.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Initial learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// Calibration images (training set) for BN statistics and activation ranges.
    #[arg(long, default_value_t = 1024)]
    pub calib: usize,
    /// Calibration batch size: BN statistics and 1 % ranges are averaged over batches of this
    /// size (= --calib for exact percentiles of the whole sample, at more memory).
    #[arg(long, default_value_t = 256)]
    pub calib_batch: usize,
    /// Training augmentation: paper (shift, zoom, flips, rotation) or none.
    #[arg(long, default_value = "paper", value_parser = ["paper", "none"])]
    pub augment: String,
    /// Divergence: a loss above this bound ...
    #[arg(long, default_value_t = DivergenceRule::default().max_loss)]
    pub max_loss: f64,
    /// ... for this many consecutive steps (a NaN/inf loss stops the run at once).
    #[arg(long, default_value_t = DivergenceRule::default().patience)]
    pub patience: usize,
    /// Seed of initial weights, image order, augmentation and dropout (the same for every pair).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// cpu (burn flex) or cuda (needs `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress bars; one line per finished pair.
    #[arg(long)]
    pub quiet: bool,
}

/// Arguments of `ghnq study table`.
#[derive(clap::Args, Debug)]
pub struct TableArgs {
    /// The study's output directory.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Init(a) => init(*a),
        Command::Table(a) => print_tables(&a.out),
    }
}

fn recipe(a: &InitArgs) -> Recipe {
    Recipe {
        images: (a.images > 0).then_some(a.images),
        batch: a.batch,
        lr: a.lr,
        calib: a.calib,
        calib_batch: a.calib_batch,
        test_images: a.test_images,
        augment: if a.augment == "none" {
            PaperAugment::NONE
        } else {
            PaperAugment::PAPER
        },
        divergence: DivergenceRule {
            max_loss: a.max_loss,
            patience: a.patience,
        },
        seed: a.seed,
        ..Recipe::paper(&a.dataset, a.epochs)
    }
}

fn init(a: InitArgs) -> Result<()> {
    let archs = grid::parse_archs(&a.archs).map_err(anyhow::Error::msg)?;
    let inits: Vec<Initializer> = grid::parse_inits(&a.inits).map_err(anyhow::Error::msg)?;
    let device = super::device::device(&a.device)?;
    let plan = StudyPlan {
        recipe: recipe(&a),
        archs,
        inits,
        shard: a.shard,
        out: a.out.clone(),
        data_dir: a.data_dir.clone(),
    };
    let mut bars = Bars::new(a.quiet);
    let t = Instant::now();
    let s = study::run_grid(&plan, &device, &mut bars)?;
    bars.clear();
    for w in &s.plot_warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "shard {}: {} pairs, {} finished before, {} run now ({} diverged, {} failed) in {:.0} s",
        plan.shard,
        s.pairs,
        s.skipped,
        s.ran,
        s.diverged,
        s.failed,
        t.elapsed().as_secs_f64()
    );
    print_tables(&plan.out)
}

fn print_tables(out: &std::path::Path) -> Result<()> {
    anyhow::ensure!(
        out.join("runs").is_dir(),
        "{} has no study records (runs/): run `ghnq study init --out {}` first",
        out.display(),
        out.display()
    );
    let results = study::write_tables(out)?;
    for w in study::write_plots(out, &results) {
        eprintln!("warning: {w}");
    }
    for t in [1u8, 2] {
        if results.iter().any(|r| r.table == Some(t)) {
            println!("\n{}", table::markdown(&results, t));
        }
    }
    println!("{}", table::spread_markdown(&table::spread(&results)));
    println!(
        "written: {}/table1.{{csv,md}}, table2.{{csv,md}}, spread.{{csv,md}}, layerwise/*.{{csv,png,svg}}",
        out.display()
    );
    Ok(())
}

/// Progress bars: the grid (pairs) above the run in progress (steps).
struct Bars {
    quiet: bool,
    multi: MultiProgress,
    grid: ProgressBar,
    run: Option<ProgressBar>,
    started: Instant,
}

impl Bars {
    fn new(quiet: bool) -> Bars {
        let multi = MultiProgress::new();
        let grid = if quiet {
            ProgressBar::hidden()
        } else {
            multi.add(ProgressBar::new(0))
        };
        grid.set_style(
            ProgressStyle::with_template(
                "grid {bar:30} {pos}/{len} pairs [{elapsed_precise}<{eta_precise}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Bars {
            quiet,
            multi,
            grid,
            run: None,
            started: Instant::now(),
        }
    }

    fn clear(&mut self) {
        if let Some(r) = self.run.take() {
            r.finish_and_clear();
        }
        self.grid.finish_and_clear();
    }

    fn line(&self, msg: String) {
        if self.quiet {
            eprintln!("{msg}");
        } else {
            self.multi.suspend(|| eprintln!("{msg}"));
        }
    }
}

fn describe(r: &RunResult) -> String {
    match (r.status, &r.eval) {
        (Status::Finished, Some(e)) => format!(
            "fp32 {:.2} %, quint8 {:.2} % (sim {:.2} %), QMSE {:.2e}, QCE {:.3}",
            e.fp32_top1, e.quint8_int_top1, e.quint8_sim_top1, e.qmse, e.qce
        ),
        (Status::Diverged, _) => match &r.divergence {
            Some(d) => format!("diverged at step {} ({})", d.step, d.reason),
            None => "diverged".into(),
        },
        _ => format!("failed: {}", r.error.as_deref().unwrap_or("?")),
    }
}

impl RunProgress for Bars {
    fn start(&mut self, pair: &Pair, steps: usize) {
        if let Some(r) = self.run.take() {
            r.finish_and_clear();
        }
        self.started = Instant::now();
        let bar = if self.quiet {
            ProgressBar::hidden()
        } else {
            self.multi.add(ProgressBar::new(steps as u64))
        };
        bar.set_style(
            ProgressStyle::with_template(
                "run  {bar:30} {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(pair.to_string());
        self.grid.set_message(pair.to_string());
        self.run = Some(bar);
    }

    fn step(&mut self, t: usize, loss: f64, lr: f64) {
        if let Some(b) = &self.run {
            b.set_position(t as u64 + 1);
            if t.is_multiple_of(5) || !loss.is_finite() {
                let pair = self.grid.message();
                b.set_message(format!("{pair}: loss {loss:.4}, lr {lr:.0e}"));
            }
        }
    }

    fn evaluating(&mut self) {
        if let Some(b) = &self.run {
            let pair = self.grid.message();
            b.set_message(format!(
                "{pair}: exporting and evaluating (float, simulation, integer runtime)"
            ));
        }
    }
}

impl GridProgress for Bars {
    fn grid(&mut self, total: usize, done: usize) {
        self.grid.set_length(total as u64);
        self.grid.set_position(done as u64);
        if done > 0 {
            self.line(format!("{done} of {total} pairs already finished: skipped"));
        }
    }

    fn skipped(&mut self, _: &Pair, _: &RunResult) {}

    fn finished(&mut self, pair: &Pair, r: &RunResult) {
        self.grid.inc(1);
        self.line(format!(
            "{pair}: {} [{:.0} s train, {:.0} s eval]",
            describe(r),
            r.train_seconds,
            r.eval_seconds
        ));
    }
}

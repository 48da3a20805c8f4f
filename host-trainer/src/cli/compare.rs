//! `ghnq compare`: the GHN's prediction beside its baselines on the same nets.
use std::path::PathBuf;

use anyhow::{Context, Result};
use ghnq_quant::side_by_side::{self, Nets, Source};
use ghnq_quant::table;

/// Arguments of `ghnq compare`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// `LABEL=CSV`: per-net CSVs of `ghnq eval --csv`, one label per way of obtaining
    /// parameters (`GHN=ghn.csv random=random.csv SGD=sgd.csv`). Repeat a label to join its
    /// shards (`SGD=sgd-a.csv SGD=sgd-b.csv`). Columns follow the order labels first appear.
    #[arg(required = true, value_name = "LABEL=CSV")]
    pub inputs: Vec<String>,
    /// Aggregate every net each source measured, not only the nets all sources share (by
    /// default a row compares like with like: a baseline run on 3 nets is set against the
    /// GHN's accuracy on those 3 nets).
    #[arg(long)]
    pub all_nets: bool,
    /// Also print one line per net.
    #[arg(long)]
    pub per_net: bool,
    /// Also write the table (and, with `--per-net`, the per-net table) as markdown, atomically.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Also draw grouped bars of top-1 per split and source: writes `<PLOT>.png` and `<PLOT>.svg`.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// Reads the inputs into one source per label, in first-seen order.
fn sources(inputs: &[String]) -> Result<Vec<Source>> {
    let mut by_label: Vec<(String, Vec<table::NetResult>)> = Vec::new();
    for input in inputs {
        let (label, path) = input
            .split_once('=')
            .filter(|(l, p)| !l.is_empty() && !p.is_empty())
            .with_context(|| format!("'{input}' is not LABEL=CSV (e.g. GHN=ghn.csv)"))?;
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
        let rows = table::parse_csv(&text).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        match by_label.iter_mut().find(|(l, _)| l == label) {
            Some((_, results)) => results.extend(rows),
            None => by_label.push((label.to_string(), rows)),
        }
    }
    by_label
        .into_iter()
        .map(|(label, results)| Ok(Source::new(&label, results)?))
        .collect()
}

pub fn run(args: Args) -> Result<()> {
    let sources = sources(&args.inputs)?;
    let nets = if args.all_nets {
        Nets::All
    } else {
        Nets::Common
    };
    let rows = side_by_side::side_by_side(&sources, nets);
    print!("{}", side_by_side::text(&sources, &rows));
    let per_net = args.per_net.then(|| side_by_side::per_net(&sources));
    if let Some(per_net) = &per_net {
        println!();
        print!("{}", side_by_side::per_net_text(&sources, per_net));
    }
    if let Some(path) = &args.markdown {
        let mut md = side_by_side::markdown(&sources, &rows);
        if let Some(per_net) = &per_net {
            md.push('\n');
            md.push_str(&side_by_side::per_net_markdown(&sources, per_net));
        }
        ghnq_core::atomic::write(path, md.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(stem) = &args.plot {
        let [png, svg] = ghnq_study::plot::top1_by_source(&sources, &rows, stem)?;
        eprintln!("plot: {} and {}", png.display(), svg.display());
    }
    Ok(())
}

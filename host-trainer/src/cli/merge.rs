//! `ghnq merge`: combine the per-net CSVs of `ghnq eval --shard i/n` runs into one table.
use std::path::PathBuf;

use anyhow::{Context, Result};
use host_trainer::quant::table;

/// Arguments of `ghnq merge`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Per-net CSVs written by `ghnq eval --csv` (one per shard).
    #[arg(required = true)]
    pub csv: Vec<PathBuf>,
    /// Also write all per-net rows as one CSV.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the table as markdown.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Also plot top-1 against bit-width per split: writes `<PLOT>.png` and `<PLOT>.svg`.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let mut results = Vec::new();
    for path in &args.csv {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let rows =
            table::parse_csv(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for r in rows {
            if results.iter().any(|o: &table::NetResult| {
                (&o.split, &o.net, &o.bits, &o.runtime) == (&r.split, &r.net, &r.bits, &r.runtime)
            }) {
                anyhow::bail!(
                    "{}: net {} of split {} ({} {}) is in more than one file: overlapping shards",
                    path.display(),
                    r.net,
                    r.split,
                    r.bits,
                    r.runtime
                );
            }
            results.push(r);
        }
    }
    let rows = table::aggregate(&results);
    if let Some(path) = &args.out {
        host_trainer::atomic::write(path, table::csv(&results).as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.markdown {
        host_trainer::atomic::write(path, table::markdown(&rows).as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(stem) = &args.plot {
        let [png, svg] = host_trainer::plot::accuracy_vs_bits(&rows, stem)?;
        eprintln!("plot: {} and {}", png.display(), svg.display());
    }
    print!("{}", table::text(&rows));
    Ok(())
}

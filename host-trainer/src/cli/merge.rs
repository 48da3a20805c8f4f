//! `ghnq merge`: combine the per-net CSVs of `ghnq eval --shard i/n` runs into one table.
use std::path::PathBuf;

use anyhow::{Context, Result};
use ghnq_quant::table;

/// Arguments of `ghnq merge`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Per-net CSVs written by `ghnq eval --csv` (one per shard).
    #[arg(required = true, value_name = "CSV")]
    pub inputs: Vec<PathBuf>,
    /// CSV (all per-net rows as one file), markdown and plot outputs.
    #[command(flatten)]
    pub out: super::table_out::TableOut,
}

pub fn run(args: Args) -> Result<()> {
    let mut results = Vec::new();
    for path in &args.inputs {
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
    args.out.write(&results, &rows)?;
    print!("{}", table::text(&rows));
    Ok(())
}

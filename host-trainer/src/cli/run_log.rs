//! Reading back the CSV logs a `ghnq train` run writes (`train.csv`, `val.csv`): one reader for
//! the learning-curve plot and `ghnq gpu-check`, so both refuse a malformed log the same way.

use std::path::Path;

use anyhow::{Context, Result};

/// `(step, value)` for each row of the log at `path`, `value` from the column named `name`
/// (`step` is the first column). A missing column or a field that is not a number is an error
/// naming the file and the line: a log that cannot be read whole is not plotted or compared in
/// part.
pub fn column(path: &Path, name: &str) -> Result<Vec<(usize, f64)>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let k = reader
        .headers()
        .with_context(|| format!("cannot read the header of {}", path.display()))?
        .iter()
        .position(|h| h == name)
        .with_context(|| format!("{} has no column {name}", path.display()))?;
    reader
        .records()
        .enumerate()
        .map(|(i, row)| {
            // Line 1 is the header.
            let bad = || {
                format!(
                    "{}, line {}: not a step and a {name}",
                    path.display(),
                    i + 2
                )
            };
            let row = row.with_context(bad)?;
            let step = row.get(0).and_then(|s| s.parse().ok()).with_context(bad)?;
            let value = row.get(k).and_then(|s| s.parse().ok()).with_context(bad)?;
            Ok((step, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_column_and_names_a_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.csv");
        std::fs::write(&path, "step,loss,acc\n0,2.5,0.1\n1,2.25,0.2\n").unwrap();
        assert_eq!(column(&path, "acc").unwrap(), vec![(0, 0.1), (1, 0.2)]);
        let e = column(&path, "grad_norm").unwrap_err().to_string();
        assert!(e.contains("no column grad_norm"), "{e}");
        std::fs::write(&path, "step,loss,acc\n0,2.5,0.1\n1,oops,0.2\n").unwrap();
        let e = column(&path, "loss").unwrap_err().to_string();
        assert!(e.contains("line 3"), "{e}");
    }
}

//! "Steps saved": how many QAT steps a run from random initialisation needs to reach the accuracy
//! the GHN's prediction has after a given number of its own steps. It is the figure a user weighs
//! the GHN by (the paper's future work; issue 16's goal at W4A4 is 500), so `ghnq finetune`
//! prints it beside the curves instead of leaving it to be read off a plot.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// One run's curve: integer-runtime top-1 % at each evaluation step.
pub type Curve = Vec<(usize, f64)>;

/// The first step at which `curve` (top-1 % at increasing evaluation steps) reaches `target`,
/// linearly interpolated between the two evaluations around it; `None` if it never does.
pub fn steps_to_reach(curve: &[(usize, f64)], target: f64) -> Option<f64> {
    let i = curve.iter().position(|&(_, a)| a >= target)?;
    let (s, a) = curve[i];
    if i == 0 {
        return Some(s as f64);
    }
    let (s0, a0) = curve[i - 1];
    // a0 < target <= a, so the slope is positive.
    Some(s0 as f64 + (target - a0) / (a - a0) * (s - s0) as f64)
}

/// The GHN start's lead over random initialisation at one of its evaluation steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    /// The GHN run's step.
    pub at: usize,
    /// The GHN run's top-1 % there.
    pub ghn_top1: f64,
    /// The random run's steps to reach that top-1, if it did.
    pub random_steps: Option<f64>,
}

impl Saved {
    /// Random steps needed minus GHN steps taken; `None` when the random run never got there.
    pub fn saved(&self) -> Option<f64> {
        self.random_steps.map(|r| r - self.at as f64)
    }
}

/// The lead at each of `at` (steps that are evaluation steps of `ghn`; others are skipped).
pub fn steps_saved(ghn: &[(usize, f64)], random: &[(usize, f64)], at: &[usize]) -> Vec<Saved> {
    at.iter()
        .filter_map(|&step| ghn.iter().find(|&&(s, _)| s == step))
        .map(|&(at, ghn_top1)| Saved {
            at,
            ghn_top1,
            random_steps: steps_to_reach(random, ghn_top1),
        })
        .collect()
}

/// The first evaluation step at which the GHN run is behind the random one (both evaluated at
/// the same steps), if any.
pub fn first_behind(ghn: &[(usize, f64)], random: &[(usize, f64)]) -> Option<usize> {
    ghn.iter()
        .zip(random)
        .find(|((_, g), (_, r))| g < r)
        .map(|((s, _), _)| *s)
}

/// The lines `ghnq finetune` prints: steps saved at each of `at`, and whether the prediction
/// stayed ahead. `last` is the final step of both runs (a lower bound when random never caught up).
pub fn summary(ghn: &[(usize, f64)], random: &[(usize, f64)], at: &[usize], last: usize) -> String {
    let mut out = String::new();
    for s in steps_saved(ghn, random, at) {
        let _ = match (s.random_steps, s.saved()) {
            (Some(r), Some(saved)) => writeln!(
                out,
                "steps saved at step {}: random initialisation reaches the prediction's {:.2} % \
                 at step {r:.0}: {saved:.0} steps saved",
                s.at, s.ghn_top1
            ),
            _ => writeln!(
                out,
                "steps saved at step {}: random initialisation stays below the prediction's \
                 {:.2} % for all {last} steps: more than {} steps saved",
                s.at,
                s.ghn_top1,
                last.saturating_sub(s.at)
            ),
        };
    }
    let _ = match first_behind(ghn, random) {
        Some(step) => writeln!(
            out,
            "the prediction falls behind random initialisation at step {step}"
        ),
        None => writeln!(
            out,
            "the prediction stays ahead of (or level with) random initialisation at every \
             evaluation"
        ),
    };
    out
}

/// The GHN and random curves of a `ghnq finetune --csv` file, and its last step.
pub fn read_csv(path: &Path) -> Result<(Curve, Curve, usize)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_csv(&text)
        .with_context(|| format!("{}: not a `ghnq finetune --csv` file", path.display()))
}

fn parse_csv(text: &str) -> Result<(Curve, Curve, usize)> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers()?.clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("no `{name}` column (a run without --ghn has no steps saved)"))
    };
    let (step, ghn, random) = (column("step")?, column("ghn_top1")?, column("random_top1")?);
    let (mut g, mut r) = (Curve::new(), Curve::new());
    for (line, record) in reader.records().enumerate() {
        let record = record?;
        let field = |k: usize| record.get(k).unwrap_or("");
        let row = || format!("row {}", line + 1);
        let s: usize = field(step).parse().with_context(row)?;
        g.push((s, field(ghn).parse().with_context(row)?));
        r.push((s, field(random).parse().with_context(row)?));
    }
    let Some(&(last, _)) = g.last() else {
        bail!("no rows");
    };
    Ok((g, r, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANDOM: [(usize, f64); 4] = [(0, 10.0), (50, 20.0), (100, 30.0), (150, 35.0)];

    #[test]
    fn reaching_interpolates_between_evaluations() {
        assert_eq!(steps_to_reach(&RANDOM, 25.0), Some(75.0));
        assert_eq!(steps_to_reach(&RANDOM, 30.0), Some(100.0));
        assert_eq!(steps_to_reach(&RANDOM, 5.0), Some(0.0));
        assert_eq!(steps_to_reach(&RANDOM, 35.5), None);
    }

    #[test]
    fn reaching_takes_the_first_crossing_of_a_noisy_curve() {
        let curve = [(0, 10.0), (50, 31.0), (100, 28.0), (150, 40.0)];
        let s = steps_to_reach(&curve, 30.0).unwrap();
        assert!((s - 50.0 * 20.0 / 21.0).abs() < 1e-9, "{s}");
    }

    #[test]
    fn saved_is_random_steps_minus_ghn_steps() {
        let ghn = [(0, 25.0), (50, 32.0), (100, 36.0), (150, 37.0)];
        let saved = steps_saved(&ghn, &RANDOM, &[0, 100, 75]);
        assert_eq!(saved.len(), 2, "75 is not an evaluation step");
        assert_eq!(saved[0].saved(), Some(75.0));
        assert_eq!(saved[1].random_steps, None);
        assert_eq!(saved[1].saved(), None);
        assert_eq!(first_behind(&ghn, &RANDOM), None);
        let text = summary(&ghn, &RANDOM, &[0, 100], 150);
        assert!(text.contains("75 steps saved"), "{text}");
        assert!(text.contains("more than 50 steps saved"), "{text}");
        assert!(text.contains("stays ahead"), "{text}");
    }

    #[test]
    fn csv_round_trip_and_refusals() {
        let text = "step,ghn_top1,ghn_train_loss,random_top1,random_train_loss\n\
                    0,25.0,-,10.0,-\n50,32.0,2.1,20.0,2.2\n";
        let (g, r, last) = parse_csv(text).unwrap();
        assert_eq!(g, vec![(0, 25.0), (50, 32.0)]);
        assert_eq!(r, vec![(0, 10.0), (50, 20.0)]);
        assert_eq!(last, 50);
        let random_only = "step,random_top1,random_train_loss\n0,10.0,-\n";
        let e = format!("{:#}", parse_csv(random_only).unwrap_err());
        assert!(e.contains("ghn_top1"), "{e}");
        assert!(parse_csv("step,ghn_top1,random_top1\n").is_err());
        assert!(parse_csv("step,ghn_top1,random_top1\n0,x,1\n").is_err());
    }

    #[test]
    fn falling_behind_is_reported_at_its_first_evaluation() {
        let ghn = [(0, 25.0), (50, 26.0), (100, 29.0), (150, 36.0)];
        assert_eq!(first_behind(&ghn, &RANDOM), Some(100));
        assert!(
            summary(&ghn, &RANDOM, &[0], 150)
                .contains("falls behind random initialisation at step 100")
        );
    }
}

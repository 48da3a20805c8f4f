//! Percentile ranges of activation-sized tensors: `Range::percentile` (two exact order
//! statistics from a sampled bracket) against the sort it replaced, in one run, with the ratio.
//! Every percentile-clipped GHN-QAT step and every percentile calibration computes one range per
//! activation tensor per batch, so this sets their pace.
//!
//! `cargo bench -p ghnq-quant --bench ranges -- --quick`

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput};
use ghnq_quant::affine::Range;
use rand::{Rng, SeedableRng};

/// The range as it was computed before: a full sort, then two ranks.
fn sorted_percentile(values: &[f32], percent: f32) -> Range {
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    let at = |p: f32| {
        sorted[(((p / 100.0) * (sorted.len() - 1) as f32).round() as usize).min(sorted.len() - 1)]
    };
    Range {
        min: at(percent).min(0.0),
        max: at(100.0 - percent).max(0.0),
    }
}

/// A batch of 32 activations of 32×32×32 (NHWC): pre-activation (signed) and after ReLU.
fn tensors() -> Vec<(&'static str, Vec<f32>)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let n = 32 * 32 * 32 * 32;
    let signed: Vec<f32> = (0..n)
        .map(|i| {
            let g: f32 = (0..4).map(|_| rng.random_range(-1.0f32..1.0)).sum();
            g * (1.0 + (i % 32) as f32 / 16.0)
        })
        .collect();
    let relu = signed.iter().map(|v| v.max(0.0)).collect();
    vec![("batch-norm output", signed), ("ReLU output", relu)]
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let cases = tensors();
    for (name, v) in &cases {
        assert_eq!(
            Range::percentile(v, 1.0),
            sorted_percentile(v, 1.0),
            "{name}"
        );
        let mut g = c.benchmark_group(format!("percentile 1 % of {} values, {name}", v.len()));
        g.throughput(Throughput::Elements(v.len() as u64));
        g.bench_function("selection", |b| {
            b.iter(|| Range::percentile(black_box(v), 1.0))
        });
        g.bench_function("sort (before)", |b| {
            b.iter(|| sorted_percentile(black_box(v), 1.0))
        });
        g.finish();
    }
    c.final_summary();
    // The ratio, from one timing loop over both in this process.
    for (name, v) in &cases {
        let time = |f: &dyn Fn() -> Range| {
            let t = Instant::now();
            for _ in 0..10 {
                black_box(f());
            }
            t.elapsed().as_secs_f64() / 10.0
        };
        let new = time(&|| Range::percentile(black_box(v), 1.0));
        let old = time(&|| sorted_percentile(black_box(v), 1.0));
        println!(
            "{name}, {} values: selection {:.2} ms, sort {:.2} ms: {:.1}x",
            v.len(),
            new * 1e3,
            old * 1e3,
            old / new
        );
    }
}

//! Single-op kernel benchmarks: the edge runtime against the golden interpreter on the same
//! models, at W8A8, W4A4 and W2A2, with MACs per second and the runtime/golden ratio per case,
//! plus blob sizes at W8 / W4 / W2.
//!
//! `cargo bench -p tests --bench kernels -- --quick`
//!
//! Criterion measures each case; a final table (own timing loop, same models) prints MAC/s for
//! both interpreters so the figures can be pasted into a report. On x86-64 the runtime is
//! measured once per instruction set the CPU has (SSE2, AVX2, AVX-512 VNNI: the kernels' level
//! capped with `edge_runtime::ops::x86::set_isa`), so the levels compare within one run, each
//! checked equal to the golden interpreter first.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use edge_runtime::{Interpreter, Model};
use shared_format::Window;
use tests::generator::{Rng, single_conv_model, single_linear_model};
use tests::golden;

struct Case {
    name: String,
    blob: Vec<u8>,
    macs: u64,
    abits: u8,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (w, a) in [(8u8, 8u8), (4, 4), (2, 2)] {
        let tag = format!("W{w}A{a}");
        out.push(Case {
            name: format!("conv3x3 32->32 16x16 {tag}"),
            blob: single_conv_model(1, 16, 16, 32, 32, Window::square(3, 1, 1, 1), false, w, a),
            macs: 16 * 16 * 32 * 32 * 9,
            abits: a,
        });
        out.push(Case {
            name: format!("dwconv3x3 16x16x32 {tag}"),
            blob: single_conv_model(2, 16, 16, 32, 32, Window::square(3, 1, 1, 1), true, w, a),
            macs: 16 * 16 * 32 * 9,
            abits: a,
        });
        out.push(Case {
            name: format!("conv1x1 32->32 16x16 {tag}"),
            blob: single_conv_model(3, 16, 16, 32, 32, Window::square(1, 1, 1, 0), false, w, a),
            macs: 16 * 16 * 32 * 32,
            abits: a,
        });
        out.push(Case {
            name: format!("linear 512->10 {tag}"),
            blob: single_linear_model(4, 512, 10, w, a),
            macs: 512 * 10,
            abits: a,
        });
    }
    out
}

fn input_for(model: &Model<'_>, abits: u8) -> Vec<i8> {
    let n = model.input_tensor().shape.elements() as usize;
    let (lo, hi) = golden::bit_range(abits);
    let mut rng = Rng::new(7);
    (0..n).map(|_| rng.range(lo, hi) as i8).collect()
}

/// The kernel levels to measure the runtime at, by name, lowest first: on x86-64 every
/// instruction set this CPU has; elsewhere the one build.
fn levels() -> Vec<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        use edge_runtime::ops::x86::Isa;
        let top = Isa::detected();
        Isa::ALL
            .into_iter()
            .filter(|&isa| isa <= top)
            .map(Isa::name)
            .collect()
    }
    #[cfg(not(target_arch = "x86_64"))]
    vec!["runtime"]
}

/// Caps the runtime's kernels at the level named `name` (from [`levels`]) for what follows.
fn use_level(name: &str) {
    #[cfg(target_arch = "x86_64")]
    {
        use edge_runtime::ops::x86::{Isa, set_isa};
        let isa = Isa::from_name(name).expect("a level from levels()");
        assert_eq!(set_isa(isa), isa, "{name} is detected");
    }
    let _ = name;
}

fn bench(c: &mut Criterion, cases: &[Case]) {
    let levels = levels();
    for case in cases {
        let model = Model::from_bytes(&case.blob).expect("valid");
        let input = input_for(&model, case.abits);
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut interpreter = Interpreter::new(&model, &mut arena).expect("arena");
        let mut group = c.benchmark_group(&case.name);
        group.throughput(Throughput::Elements(case.macs));
        for &level in &levels {
            use_level(level);
            group.bench_function(format!("runtime {level}"), |b| {
                b.iter(|| {
                    black_box(interpreter.run(black_box(&input)).expect("runs")[0]);
                })
            });
        }
        group.bench_function("golden", |b| {
            b.iter(|| black_box(golden::run(&model, black_box(&input)).expect("runs")))
        });
        group.finish();
    }
}

/// Mean seconds per call of `f`, over at least `budget` of wall time (and ≥ 3 calls).
fn time_per_call(budget: Duration, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let start = Instant::now();
    let mut calls = 0u64;
    while calls < 3 || start.elapsed() < budget {
        f();
        calls += 1;
    }
    start.elapsed().as_secs_f64() / calls as f64
}

fn summary(cases: &[Case], budget: Duration) {
    let levels = levels();
    println!();
    print!("{:<28} {:>10}", "case", "MACs");
    for level in &levels {
        print!(" {:>16}", format!("{level} MAC/s"));
    }
    print!(" {:>14} {:>10}", "golden MAC/s", "rt/golden");
    for pair in levels.windows(2) {
        print!(" {:>16}", format!("{}/{}", pair[1], pair[0]));
    }
    println!();
    for case in cases {
        let model = Model::from_bytes(&case.blob).expect("valid");
        let input = input_for(&model, case.abits);
        let expected = golden::run(&model, &input).expect("runs");
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut interpreter = Interpreter::new(&model, &mut arena).expect("arena");
        // Each level's MAC/s, timed round-robin so that a background load hits all alike
        // (the median of three rounds).
        let mut times = vec![Vec::new(); levels.len()];
        for round in 0..3 {
            for (&level, t) in levels.iter().zip(&mut times) {
                use_level(level);
                if round == 0 {
                    assert_eq!(
                        interpreter.run(&input).expect("runs"),
                        &expected[..],
                        "{} at {level}: runtime and golden disagree",
                        case.name
                    );
                }
                t.push(time_per_call(budget / 3, || {
                    black_box(interpreter.run(black_box(&input)).expect("runs")[0]);
                }));
            }
        }
        let rates: Vec<f64> = times
            .into_iter()
            .map(|mut t| {
                t.sort_by(f64::total_cmp);
                case.macs as f64 / t[1]
            })
            .collect();
        let gd = time_per_call(budget, || {
            black_box(golden::run(&model, black_box(&input)).expect("runs"));
        });
        let gd_rate = case.macs as f64 / gd;
        print!("{:<28} {:>10}", case.name, case.macs);
        for rate in &rates {
            print!(" {rate:>16.3e}");
        }
        let best = rates.last().copied().unwrap_or(0.0);
        print!(" {gd_rate:>14.3e} {:>9.1}x", best / gd_rate);
        for pair in rates.windows(2) {
            print!(" {:>15.2}x", pair[1] / pair[0]);
        }
        println!();
    }
    if let Some(top) = levels.last() {
        use_level(top);
    }

    println!();
    println!("blob sizes (same op, same shapes):");
    let conv =
        |w| single_conv_model(1, 16, 16, 32, 32, Window::square(3, 1, 1, 1), false, w, 8).len();
    let lin = |w| single_linear_model(4, 512, 10, w, 8).len();
    for (name, size) in [
        ("conv3x3 32->32", &conv as &dyn Fn(u8) -> usize),
        ("linear 512->10", &lin),
    ] {
        let (s8, s4, s2) = (size(8), size(4), size(2));
        println!(
            "  {name:<16} W8 {s8:>6} B   W4 {s4:>6} B ({:.3}x W8)   W2 {s2:>6} B ({:.3}x W8)",
            s4 as f64 / s8 as f64,
            s2 as f64 / s8 as f64
        );
    }
}

fn main() {
    let cases = cases();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &cases);
    c.final_summary();
    let quick = std::env::args().any(|a| a == "--quick");
    // `cargo test --benches` runs this binary in test mode: no table then.
    if std::env::args().any(|a| a == "--bench") {
        summary(
            &cases,
            Duration::from_millis(if quick { 200 } else { 1000 }),
        );
    }
}

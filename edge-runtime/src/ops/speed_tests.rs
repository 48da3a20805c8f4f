//! Speed of the kernels the dispatchers choose on this target against the portable reference
//! kernels (issue 18/17: depthwise and sub-byte convolutions on the x86-64 host), on CIFAR-10-
//! sized layers: the same parameters and inputs in one process, timed in alternating rounds so
//! that a background load hits all alike. On x86-64 the dispatched kernels run once per
//! instruction set the CPU has (each held by `x86::with_isa`: SSE2, then AVX2 and AVX-512 VNNI
//! where detected), so the ratios between them come from one process too. Outputs are checked
//! equal first.
//!
//! Ignored by default (it measures, it does not test); run it alone, pinned, with
//! `taskset -c 1 cargo test -p edge-runtime --release -- --ignored --nocapture kernel_speed`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use shared_format::{Rounding, Shape, WeightScheme, Window};

use super::conv::tests::{owned, params};
use super::conv::{conv2d, conv2d_reference};
use super::depthwise::{depthwise_conv2d, depthwise_reference};
use crate::test_rng::XorShift32;

type Kernel = fn(&super::conv::ConvParams<'_>, &[i8], &mut [i8], &mut [i8]) -> super::KernelResult;

struct Layer {
    name: &'static str,
    depthwise: bool,
    input: Shape,
    cout: u16,
    window: Window,
    bits: u8,
    affine: bool,
}

/// Median seconds per call of each of `fs` over `rounds` rounds of about `each` (call count
/// fixed from a first timing), the rounds interleaved.
fn alternate(rounds: usize, each: Duration, fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let start = Instant::now();
    for f in fs.iter_mut() {
        f();
    }
    let once = start.elapsed().as_secs_f64() / fs.len() as f64;
    let calls = ((each.as_secs_f64() / once.max(1e-9)) as usize).max(1);
    let mut times = vec![Vec::new(); fs.len()];
    for _ in 0..rounds {
        for (f, t) in fs.iter_mut().zip(&mut times) {
            let s = Instant::now();
            for _ in 0..calls {
                f();
            }
            t.push(s.elapsed().as_secs_f64() / calls as f64);
        }
    }
    times
        .into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect()
}

/// The instruction sets the dispatched kernels can run with here, by name, each to be held by
/// [`run_as`]: on x86-64 SSE2, then AVX2 and AVX-512 VNNI where detected; elsewhere the one
/// build.
fn isas() -> Vec<(&'static str, Option<Isa>)> {
    #[cfg(target_arch = "x86_64")]
    {
        super::simd::x86_64::available()
            .map(|isa| (isa.name(), Some(isa)))
            .collect()
    }
    #[cfg(not(target_arch = "x86_64"))]
    vec![("dispatch", None)]
}

#[cfg(target_arch = "x86_64")]
use super::simd::x86_64::Isa;
/// No levels to choose from elsewhere.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy)]
enum Isa {}

/// Runs `f`, held to `isa` where there is one (x86-64).
fn run_as(isa: Option<Isa>, f: impl FnOnce()) {
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = isa {
        return super::simd::x86_64::with_isa(isa, f);
    }
    let _ = isa;
    f()
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture, in release mode"]
fn kernel_speed() {
    let dw = |name, h, c, stride, bits, affine| Layer {
        name,
        depthwise: true,
        input: Shape::new(h, h, c),
        cout: c,
        window: Window::square(3, stride, 1, 1),
        bits,
        affine,
    };
    let conv = |name, h, cin, cout, k, bits| Layer {
        name,
        depthwise: false,
        input: Shape::new(h, h, cin),
        cout,
        window: Window::square(k, 1, 1, k / 2),
        bits,
        affine: false,
    };
    let layers = [
        dw("dw3x3 s1 32x32x32 W8", 32, 32, 1, 8, false),
        dw("dw3x3 s2 16x16x64 W8", 16, 64, 2, 8, false),
        dw("dw3x3 s1 32x32x32 W8 affine", 32, 32, 1, 8, true),
        dw("dw3x3 s1 16x16x64 W8", 16, 64, 1, 8, false),
        dw("dw3x3 s1 32x32x32 W4", 32, 32, 1, 4, false),
        dw("dw3x3 s1 32x32x32 W2", 32, 32, 1, 2, false),
        conv("conv1x1 32x32 64->64 W4", 32, 64, 64, 1, 4),
        conv("conv1x1 32x32 64->64 W2", 32, 64, 64, 1, 2),
        conv("conv3x3 16x16 32->32 W4", 16, 32, 32, 3, 4),
        conv("conv1x1 32x32 64->64 W8", 32, 64, 64, 1, 8),
        conv("conv1x1 16x16 128->128 W8", 16, 128, 128, 1, 8),
        conv("conv3x3 32x32 16->16 W8", 32, 16, 16, 3, 8),
        conv("conv3x3 16x16 32->32 W8", 16, 32, 32, 3, 8),
        conv("conv3x3 8x8 64->64 W8", 8, 64, 64, 3, 8),
    ];
    let quick = std::env::var_os("KERNEL_SPEED_QUICK").is_some();
    let (rounds, each) = if quick {
        (3, Duration::from_millis(20))
    } else {
        (9, Duration::from_millis(150))
    };
    let isas = isas();
    print!("\n{:<30} {:>9} {:>10}", "layer", "MACs", "ref µs");
    for (name, _) in &isas {
        print!(" {:>13}", format!("{name} µs"));
    }
    print!(" {:>9}", "ref/1st");
    for pair in isas.windows(2) {
        print!(" {:>16}", format!("{}/{}", pair[0].0, pair[1].0));
    }
    println!();
    let only = std::env::var("KERNEL_SPEED_ONLY").unwrap_or_default();
    let mut rng = XorShift32::new(0x5BEE_D001);
    for l in layers
        .into_iter()
        .filter(|l| l.name.contains(only.as_str()))
    {
        let win = l.window;
        let oh = win.output_h(l.input.h as u32).unwrap() as u16;
        let ow = win.output_w(l.input.w as u32).unwrap() as u16;
        let os = Shape::new(oh, ow, l.cout);
        let per_channel = win.kernel_h as usize
            * win.kernel_w as usize
            * if l.depthwise { 1 } else { l.input.c as usize };
        let lo = -(1i32 << (l.bits - 1));
        let w: Vec<i8> = (0..per_channel * l.cout as usize)
            .map(|_| (lo + rng.below(1 << l.bits) as i32) as i8)
            .collect();
        let bias: Vec<i32> = (0..l.cout).map(|_| rng.below(2001) as i32 - 1000).collect();
        // Per-channel stages with shifts that differ (as calibrated ones do), one per-tensor
        // stage for affine weights.
        let rq: Vec<(i32, i8)> = (0..if l.affine { 1 } else { l.cout })
            .map(|_| {
                (
                    (1 << 30) | rng.below(1 << 29) as i32,
                    -7 - rng.below(4) as i8,
                )
            })
            .collect();
        let o = owned(&w, l.bits, &bias, &rq);
        let (scheme, z_w) = if l.affine {
            (WeightScheme::PerTensorAffine, 3)
        } else {
            (WeightScheme::PerChannelSymmetric, 0)
        };
        let p = params(&o, l.bits, scheme, z_w, win, l.input, -17, os);
        let p = super::conv::ConvParams {
            output_zero_point: 4,
            rounding: Rounding::Double,
            ..p
        };
        let x: Vec<i8> = (0..l.input.h as usize * l.input.w as usize * l.input.c as usize)
            .map(|_| rng.next_u32() as i8)
            .collect();
        let (reference, dispatched): (Kernel, Kernel) = if l.depthwise {
            (depthwise_reference, depthwise_conv2d)
        } else {
            (conv2d_reference, conv2d)
        };
        let mut scratch = vec![0i8; per_channel * l.cout as usize];
        let n_out = oh as usize * ow as usize * l.cout as usize;
        let mut want = vec![0i8; n_out];
        reference(&p, &x, &mut want, &mut scratch).unwrap();
        let mut outs = vec![(vec![0i8; n_out], scratch.clone()); isas.len()];
        for ((name, isa), (got, s)) in isas.iter().zip(&mut outs) {
            run_as(*isa, || dispatched(&p, &x, got, s).unwrap());
            assert_eq!(*got, want, "{} {name}", l.name);
        }
        let mut fr = || reference(&p, black_box(&x), &mut want, &mut scratch).unwrap();
        let mut fs: Vec<Box<dyn FnMut() + '_>> = isas
            .iter()
            .zip(&mut outs)
            .map(|(&(_, isa), (got, s))| {
                let (p, x) = (&p, &x);
                Box::new(move || run_as(isa, || dispatched(p, black_box(x), got, s).unwrap()))
                    as Box<dyn FnMut() + '_>
            })
            .collect();
        let mut all: Vec<&mut dyn FnMut()> = vec![&mut fr];
        all.extend(fs.iter_mut().map(|f| &mut **f as &mut dyn FnMut()));
        let t = alternate(rounds, each, &mut all);
        let macs = n_out * per_channel;
        print!("{:<30} {:>9} {:>10.1}", l.name, macs, t[0] * 1e6);
        for t in &t[1..] {
            print!(" {:>13.1}", t * 1e6);
        }
        print!(" {:>8.2}x", t[0] / t[1]);
        for pair in t[1..].windows(2) {
            print!(" {:>15.2}x", pair[0] / pair[1]);
        }
        println!();
    }
}

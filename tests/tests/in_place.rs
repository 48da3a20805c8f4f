//! In-place ops (format 1.6): random models large enough for the planner to write outputs over
//! dying inputs (adds, and convolutions run band by band) must run bit-exact with the golden
//! interpreter, which keeps every tensor apart, and their plans must alias only such pairs.
//!
//! The models of `bit_exact` are mostly too small for in-place ops to pay (a band or an add's
//! chunk is then the whole tensor); these are up to 32×32 with up to 16 channels, ResNet-8's
//! first stack.

use edge_runtime::{Interpreter, Model};
use shared_format::plan::{IN_PLACE_MINOR, aliased_input};
use shared_format::{Op, OpKind, Padding, Window};
use tests::generator::{GenConfig, Rng, generate, input_spec, random_input, single_conv_model};
use tests::golden;

/// Every pair of live tensors that shares a byte is an in-place pair; returns the ops in place.
fn in_place_ops(model: &Model<'_>) -> Vec<OpKind> {
    let records: Vec<_> = model.tensors().iter().collect();
    let ops: Vec<Op<'_>> = model.ops().map(Result::unwrap).collect();
    for (a, ta) in records.iter().enumerate() {
        for (b, tb) in records.iter().enumerate().skip(a + 1) {
            let time = ta.first_op <= tb.last_op && tb.first_op <= ta.last_op;
            let (ra, rb) = (ta.range(), tb.range());
            if time && ra.start < rb.end && rb.start < ra.end {
                assert_eq!(ra, rb, "tensors {a} and {b} overlap partially");
                assert_eq!(ta.last_op, tb.first_op, "{a} is read after {b} is written");
                let op = &ops[tb.first_op as usize];
                assert_eq!(aliased_input(op, model.tensors()), Some(a as u16));
            }
        }
    }
    ops.iter()
        .filter(|op| aliased_input(op, model.tensors()).is_some())
        .map(Op::kind)
        .collect()
}

#[test]
fn random_models_with_in_place_ops_match_golden() {
    let config = GenConfig {
        max_ops: 6,
        max_spatial: 32,
        max_channels: 16,
        mac_budget: 3_000_000,
    };
    let (mut models, mut in_place, mut convs, mut depthwise, mut adds) = (0, 0, 0, 0, 0);
    for seed in 0..1500u64 {
        let Ok(g) = generate(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), config) else {
            continue;
        };
        models += 1;
        let model = Model::from_bytes(&g.blob).expect("generated blobs decode");
        let kinds = in_place_ops(&model);
        if kinds.is_empty() {
            assert!(model.header().minor < IN_PLACE_MINOR, "seed {seed}");
            continue;
        }
        assert_eq!(model.header().minor, IN_PLACE_MINOR, "seed {seed}");
        in_place += 1;
        convs += kinds.iter().filter(|&&k| k == OpKind::Conv2d).count();
        depthwise += kinds
            .iter()
            .filter(|&&k| k == OpKind::DepthwiseConv2d)
            .count();
        adds += kinds.iter().filter(|&&k| k == OpKind::Add).count();

        same_as_golden(
            &g.blob,
            g.seed ^ 0x5A5A,
            Some(&g.input),
            &format!("seed {seed}: {}", g.description),
        );
    }
    eprintln!(
        "{models} models, {in_place} with in-place ops: {convs} conv2d, {depthwise} depthwise, {adds} add"
    );
    assert!(
        in_place >= 50,
        "only {in_place} of {models} models ran in place"
    );
    assert!(adds >= 20, "{adds} adds in place");
}

/// Runs `blob` on two inputs (`first` if given, then random ones; the arena poisoned first) in
/// the runtime and the golden interpreter.
fn same_as_golden(blob: &[u8], seed: u64, first: Option<&[i8]>, what: &str) {
    let model = Model::from_bytes(blob).unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut rng = Rng::new(seed);
    let mut arena: Vec<u8> = (0..model.arena_bytes())
        .map(|_| rng.next_u64() as u8)
        .collect();
    let mut interpreter = Interpreter::new(&model, &mut arena).unwrap();
    let spec = input_spec(&model);
    for k in 0..2 {
        let input = match first {
            Some(first) if k == 0 => first.to_vec(),
            _ => random_input(&mut rng, spec),
        };
        let want = golden::run(&model, &input).expect("golden runs a valid model");
        let got = interpreter.run(&input).expect("runtime runs a valid model");
        assert_eq!(got, &want[..], "{what}: runtime != golden");
    }
}

/// Single convolutions and depthwise convolutions with "same" output rows (stride 1 along the
/// height, any kernel up to 5×5, dilation, asymmetric padding, stride 2 across with doubled
/// channels, 2/4/8-bit weights): the input dies at the op, so the planner runs every one whose
/// band is smaller than the map in place, band by band.
#[test]
fn random_convolutions_run_in_place_band_by_band() {
    let mut rng = Rng::new(0xC0FFEE);
    let (mut total, mut in_place) = (0, 0);
    for case in 0..600u64 {
        let depthwise = rng.chance(0.35);
        let kh = rng.range(1, 5) as u8;
        let kw = rng.range(1, 5) as u8;
        let dh = if rng.chance(0.2) { 2 } else { 1 };
        let eff_h = (kh - 1) * dh + 1;
        let top = rng.range(0, eff_h as i64 - 1) as u8;
        let h = rng.range(4, 40) as u16;
        let (w, cin, cout, stride_w, left, right) = if depthwise || rng.chance(0.7) {
            let c = rng.range(1, 16) as u16;
            let left = rng.range(0, kw as i64 - 1) as u8;
            (
                rng.range(kw as i64, 32) as u16,
                c,
                c,
                1,
                left,
                kw - 1 - left,
            )
        } else {
            // Width halved and channels doubled: the same bytes per row.
            let c = rng.range(1, 8) as u16;
            (2 * rng.range(2, 16) as u16, c, 2 * c, 2, 0, 0)
        };
        let kw = if stride_w == 2 { kw.min(2) } else { kw };
        let window = Window {
            kernel_h: kh,
            kernel_w: kw,
            stride_h: 1,
            stride_w,
            dilation_h: dh,
            dilation_w: 1,
            padding: Padding {
                top,
                bottom: eff_h - 1 - top,
                left,
                right,
            },
        };
        let wbits = rng.pick(&[2u8, 4, 8]);
        let abits = rng.pick(&[8u8, 8, 4]);
        let blob = single_conv_model(case, h, w, cin, cout, window, depthwise, wbits, abits);
        let model = Model::from_bytes(&blob).unwrap();
        total += 1;
        let kinds = in_place_ops(&model);
        if !kinds.is_empty() {
            in_place += 1;
            assert_eq!(model.header().minor, IN_PLACE_MINOR);
        }
        same_as_golden(
            &blob,
            case,
            None,
            &format!("case {case}: {h}×{w}×{cin} → {cout}, {window:?}, W{wbits}A{abits}"),
        );
    }
    eprintln!("{total} convolutions, {in_place} in place");
    assert!(
        in_place >= total / 4,
        "only {in_place} of {total} ran in place"
    );
}

//! Host tests of the Armv7E-M kernels, run on the portable model of their instructions
//! (`instructions`): the output stages against the reference `requantize`, the packed and
//! pooled paths against plain sums, and the model of the convolution's assembly against the
//! host's kernel. The assembly itself runs in the QEMU board tests.

use super::*;
use crate::ops::simd::portable::centred_dot;
use crate::ops::simd::quad_words;
use crate::requant::requantize;
use crate::test_rng::XorShift32;
use shared_format::{Clamp, Rounding};

/// The whole int8 range.
const FULL: Clamp = Clamp {
    min: -128,
    max: 127,
};

/// [`AvgCells`] on the instruction model is TFLM's rounded average for every cell count it
/// takes and every sum of that many int8 values, in both lanes.
#[test]
fn avg_cells_are_rounded_averages() {
    assert!(AvgCells::new(2).is_none() && AvgCells::new(17).is_none());
    for n in 3..=16i32 {
        let d = AvgCells::new(n as usize).unwrap();
        for s in -128 * n..=127 * n {
            let t = (-128 * n).max(-s - 1);
            let lanes = (s as u32 & 0xffff) | (t as u32) << 16;
            let r = d.halves(lanes);
            let want = |v: i32| crate::ops::pool::rounded_average(v as i64, n as i64) + 128;
            assert_eq!((r & 0xffff) as i64, want(s), "{s} / {n}");
            assert_eq!((r >> 16) as i64, want(t), "{t} / {n}");
        }
    }
}

/// The sub-byte kernel (here on the instruction model) forms the same sums as the plain dot
/// product over the unpacked weights, for both widths, every zero point, partial quads and
/// weights not starting at byte 0 of the slice.
#[test]
fn packed_window_matches_unpacked() {
    use shared_format::packing::{pack, unpack_into};
    for bits in [4u8, 2] {
        let g = 32 / bits as usize;
        for (cin, kw, rows, channels) in [(g, 1, 1, 4), (2 * g, 3, 2, 7), (g, 5, 3, 9)] {
            for z_x in [-128i8, -3, 0, 127] {
                let len = kw * cin;
                let w_step = kw * cin + g; // a longer filter row than the run
                let stride = rows * w_step + 2 * g;
                let first = g;
                let total = first + channels * stride;
                let lim = 1i32 << (bits - 1);
                let vals: Vec<i8> = (0..total)
                    .map(|i| ((i * 7 + 3 * cin) as i32 % (2 * lim) - lim) as i8)
                    .collect();
                let packed = pack(&vals, bits).unwrap();
                let mut unpacked = vec![0i8; total];
                unpack_into(&packed, bits, 0, &mut unpacked);
                assert_eq!(unpacked, vals);
                let x_step = len + 5;
                let x: Vec<i8> = (0..rows * x_step).map(|i| (i * 53 + 17) as i8).collect();
                let runs = Runs {
                    rows,
                    len,
                    x_step,
                    w_step,
                };
                let mut got = vec![0i32; channels];
                assert!(window_packed(
                    &x, &packed, bits, first, stride, runs, z_x, &mut got
                ));
                let expect: Vec<i32> = (0..channels)
                    .map(|c| centred_dot(&x, &vals[first + c * stride..], runs, z_x))
                    .collect();
                assert_eq!(got, expect, "bits {bits} cin {cin} kw {kw} z_x {z_x}");
            }
        }
        // Extreme values: every weight at its minimum, every activation at 127, z_x −128.
        let len = 4 * g;
        let vals = vec![-(1i8 << (bits - 1)); 4 * len];
        let packed = pack(&vals, bits).unwrap();
        let x = vec![127i8; len];
        let runs = Runs {
            rows: 1,
            len,
            x_step: len,
            w_step: len,
        };
        let mut got = [0i32; 4];
        assert!(window_packed(
            &x, &packed, bits, 0, len, runs, -128, &mut got
        ));
        let one = centred_dot(&x, &vals, runs, -128);
        assert_eq!(got, [one; 4]);
        // Counts that are not whole words are refused.
        let odd = Runs { len: g / 2, ..runs };
        assert!(!window_packed(&x, &packed, bits, 0, len, odd, 0, &mut got));
    }
}

/// The instruction model of the assembly forms the same sums as the host's kernel for every
/// run length (whole words, single bytes past them) and zero point.
#[test]
fn model_matches_host_kernel() {
    for len in [1usize, 3, 4, 5, 8, 13, 48] {
        for z_x in [-128i8, -7, 0, 127] {
            let runs = Runs {
                rows: 2,
                len,
                x_step: len + 3,
                w_step: len + 1,
            };
            let stride = 2 * (len + 1) + 2;
            let x: Vec<i8> = (0..2 * (len + 3)).map(|i| (i * 37 + 11) as i8).collect();
            let w: Vec<i8> = (0..8 * stride).map(|i| (i * 91 + len) as i8).collect();
            let (mut model, mut host) = ([[0i32; 4]; 2], [[0i32; 4]; 2]);
            quad_words_model(&x, &w, stride, runs, z_x, &mut model);
            quad_words(&x, &w, stride, runs, z_x, &mut host);
            assert_eq!(model, host, "len {len}, z_x {z_x}");
        }
    }
}

/// The fused double-rounding stage ([`DoubleStage`], [`stage_double`]) equals the
/// reference's double-rounding `requantize` of `acc + bias` (wrapping) for every shift it
/// accepts, every multiplier but `i32::MIN` (refused, as are left shifts), extreme
/// accumulators included; and `stage_double` writes the strip's outputs where they belong.
#[test]
fn double_stage_matches_requantize() {
    let mut rng = XorShift32::new(0x0D0B_1E57);
    assert!(DoubleStage::new(i32::MIN, -3, 0).is_none());
    assert!(DoubleStage::new(1 << 30, 1, 0).is_none());
    let mut taken = 0;
    for case in 0..40_000 {
        let m = match case % 7 {
            0 => i32::MAX,
            1 => -(rng.below(1 << 31) as i32),
            2 => rng.below(1 << 10) as i32,
            _ => (1 << 30) | rng.below(1 << 30) as i32,
        };
        let shift = rng.below(70) as i32 - 38;
        let bias = rng.below(u32::MAX) as i32;
        let acc = match case % 5 {
            0 => [i32::MAX, i32::MIN, 0, -1, 1][rng.below(5) as usize],
            1 => rng.below(u32::MAX) as i32,
            _ => rng.below(1 << 20) as i32 - (1 << 19),
        };
        let z_y = rng.below(256) as u8 as i8;
        let Some(st) = DoubleStage::new(m, shift, bias) else {
            assert!(shift.clamp(-31, 30) > 0 || m == i32::MIN);
            continue;
        };
        let want = requantize(
            acc.wrapping_add(bias),
            m,
            shift,
            z_y,
            FULL,
            Rounding::Double,
        );
        assert_eq!(
            st.apply(acc, z_y),
            want,
            "m {m} shift {shift} acc {acc} bias {bias}"
        );
        taken += 1;
    }
    assert!(taken > 15_000, "{taken}");
    // A strip of three pixels, outputs 6 bytes apart.
    let stages = [
        (1 << 30, -1, 5),
        (i32::MAX, 0, -7),
        (1 << 29, -31, 0),
        (123_456, -3, 1),
    ]
    .map(|(m, e, b)| DoubleStage::new(m, e, b).unwrap());
    let acc = [
        [100, -100, 7, 1 << 20],
        [i32::MAX, i32::MIN, -1, 0],
        [3, 4, 5, 6],
    ];
    let mut y = [0i8; 16];
    assert!(stage_double(&acc, &stages, -3, &mut y, 6));
    for (i, a) in acc.iter().enumerate() {
        for (j, s) in stages.iter().enumerate() {
            assert_eq!(y[6 * i + j], s.apply(a[j], -3));
        }
    }
    assert!(!stage_double(&acc, &stages, -3, &mut y[..15], 6));
    assert!(!stage_double(&acc, &stages, -3, &mut y, 3));
}

/// [`NarrowStage`] on the model of its instructions equals the reference's double-rounding
/// `requantize` (whole int8 clamp) for every multiplier, shift, bias and zero point it takes
/// and accumulators up to its bound, both ends included; it refuses negative multipliers,
/// shifts outside `−22..=−1` and bounds reaching 2^30; and [`stage_narrow`] writes a strip's
/// outputs where they belong.
#[test]
fn narrow_stage_matches_requantize() {
    let mut rng = XorShift32::new(0x4A22_0057);
    assert!(NarrowStage::new(-5, -3, 0, 0, 10).is_none());
    assert!(NarrowStage::new(1 << 30, 0, 0, 0, 10).is_none());
    assert!(NarrowStage::new(1 << 30, -23, 0, 0, 10).is_none());
    assert!(NarrowStage::new(1 << 30, 3, 0, 0, 10).is_none());
    assert!(NarrowStage::new(1 << 30, -8, 1 << 29, 0, 1 << 29).is_none());
    assert!(NarrowStage::new(1 << 30, -8, 0, 0, (1 << 30) - 1).is_some());
    assert!(NarrowStage::new(1 << 30, -8, 0, 0, u64::MAX).is_none());
    let mut taken = 0;
    for case in 0..60_000 {
        let m = match case % 7 {
            0 => i32::MAX,
            1 => 0,
            2 => rng.below(1 << 10) as i32,
            3 => rng.below(1 << 31) as i32,
            _ => (1 << 30) | rng.below(1 << 30) as i32,
        };
        let shift = rng.below(30) as i32 - 25;
        let max_acc = [(1u64 << 30) - 1, 1 << 20, 300_000, 5000, 1][rng.below(5) as usize];
        let room = ((1u64 << 30) - 1).saturating_sub(max_acc);
        let bias = match case % 3 {
            0 => 0,
            1 => rng.below(room.min(1 << 31) as u32 + 1) as i32,
            _ => -(rng.below(room.min(1 << 31) as u32 + 1) as i32),
        };
        let z_y = rng.below(256) as u8 as i8;
        let Some(st) = NarrowStage::new(m, shift, bias, z_y, max_acc) else {
            assert!(!(-22..=-1).contains(&shift), "m {m} shift {shift}");
            continue;
        };
        let r = rng.below(max_acc as u32 + 1) as i32;
        for acc in [max_acc as i32, -(max_acc as i32), r, -r, 0, 1, -1] {
            let want = requantize(acc + bias, m, shift, z_y, FULL, Rounding::Double);
            assert_eq!(
                st.apply(acc),
                want,
                "m {m} shift {shift} acc {acc} bias {bias} z_y {z_y}"
            );
        }
        taken += 1;
    }
    assert!(taken > 30_000, "{taken}");
    // Ties of both signs at every shift: acc·m / 2^31 an odd multiple of 2^(r − 1).
    for r in 1..=22 {
        for z_y in [-128i8, -1, 0, 5, 127] {
            let st = NarrowStage::new(1 << 30, -r, 0, z_y, 1 << 29).unwrap();
            for k in -9..=9i32 {
                let acc = k * (1 << r); // SRDHM gives k·2^(r−1)
                let want = requantize(acc, 1 << 30, -r, z_y, FULL, Rounding::Double);
                assert_eq!(st.apply(acc), want, "r {r} k {k} z_y {z_y}");
                let want = requantize(acc - 1, 1 << 30, -r, z_y, FULL, Rounding::Double);
                assert_eq!(st.apply(acc - 1), want, "r {r} k {k} − 1 z_y {z_y}");
            }
        }
    }
    // A strip of three pixels, outputs 6 bytes apart.
    let stages = [
        (1 << 30, -1, 5),
        (i32::MAX, -22, -7),
        (1 << 29, -9, 0),
        (123_456, -3, 1),
    ]
    .map(|(m, e, b)| NarrowStage::new(m, e, b, -3, 1 << 28).unwrap());
    let acc = [
        [100, -100, 7, 1 << 20],
        [1 << 28, -(1 << 28), -1, 0],
        [3, 4, 5, 6],
    ];
    let mut y = [0i8; 16];
    assert!(stage_narrow(&acc, &stages, &mut y, 6));
    for (i, a) in acc.iter().enumerate() {
        for (j, s) in stages.iter().enumerate() {
            assert_eq!(y[6 * i + j], s.apply(a[j]));
        }
    }
    assert!(!stage_narrow(&acc, &stages, &mut y[..15], 6));
    assert!(!stage_narrow(&acc, &stages, &mut y, 3));
}

/// The fused output stages ([`FastStage`], [`PwStage`]) on scaled accumulators equal the
/// reference's single-rounding `requantize` for every shift (left shifts included) they
/// accept, at the ends of their accumulator bound; what they refuse is refused.
#[test]
fn fused_stages_match_requantize() {
    let mut rng = XorShift32::new(0x57A6_E5ED);
    let (mut fast, mut pw) = (0, 0);
    for case in 0..20_000 {
        let m = if case % 50 == 0 {
            i32::MAX
        } else {
            (1 << 30) | rng.below(1 << 30) as i32
        };
        let shift = rng.below(62) as i32 - 31;
        let k = [8u32, 4, 2, 1][rng.below(4) as usize];
        let lim = 1i32 << (k - 1);
        let clamp = Clamp {
            min: -lim as i8,
            max: (lim - 1) as i8,
        };
        let z_y = (rng.below(2 * lim as u32) as i32 - lim) as i8;
        let max_acc = [1u64 << 31, 1 << 20, 5000, 300][rng.below(4) as usize] - 1;
        let accs = [
            max_acc as i32,
            -(max_acc as i32),
            rng.below(max_acc as u32 + 1) as i32,
            -(rng.below(max_acc as u32 + 1) as i32),
            0,
            1,
            -1,
            2,
            -2,
        ];
        let want = |acc| requantize(acc, m, shift, z_y, clamp, Rounding::Single);
        if let Some((st, pre)) = FastStage::single(m, shift, z_y, clamp.min, clamp.max, max_acc) {
            for acc in accs {
                assert_eq!(st.apply(acc << pre), want(acc), "{case} {acc} {st:?} {pre}");
            }
            fast += 1;
        }
        if matches!(k, 2 | 4 | 8)
            && let Some(st) = PwStage::single(m, shift, z_y, k, max_acc)
        {
            for acc in accs {
                let got = match k {
                    8 => st.apply::<8>(acc << st.pre),
                    4 => st.apply::<4>(acc << st.pre),
                    _ => st.apply::<2>(acc << st.pre),
                };
                assert_eq!(got, want(acc), "{case} {acc} {st:?}");
            }
            pw += 1;
        }
    }
    assert!(fast > 5000 && pw > 5000, "{fast} {pw}");
    // A shift past the bound is refused, not wrapped: max_acc·2^pre ≥ 2^31.
    assert!(PwStage::single(1 << 30, 30, 0, 8, 1 << 20).is_none());
    assert!(FastStage::single(1 << 30, 30, 0, -128, 127, 1 << 20).is_none());
    assert!(FastStage::single(1 << 30, 28, 0, -128, 127, 0).is_some());
}

/// [`FastStage::single`] and [`PwStage::single`] past their scaled accumulators' bound (large
/// left shifts, the smaller saturating stages of [`saturating_shifts`]) equal the reference's
/// single-rounding `requantize` for every accumulator within the bound, and refuse a
/// multiplier whose reference quotient would wrap.
#[test]
fn saturating_fast_stage_matches_requantize() {
    let mut rng = XorShift32::new(0x5A7D_0A11);
    let (mut checked, mut pw_checked) = (0, 0);
    for case in 0..3000 {
        let m = (1 << 30) | rng.below(1 << 30) as i32;
        let shift = rng.below(31) as i32;
        let k = [8u32, 4, 2, 1][rng.below(4) as usize];
        let lim = 1i32 << (k - 1);
        let clamp = Clamp {
            min: -lim as i8,
            max: (lim - 1) as i8,
        };
        let z_y = (rng.below(2 * lim as u32) as i32 - lim) as i8;
        let max_acc = [20_000u64, 5000, 300, 2][rng.below(4) as usize];
        // The pointwise kernel's stage, where only the smaller shift takes it.
        if matches!(k, 2 | 4 | 8)
            && PwStage::single_exact(m, shift, z_y, max_acc).is_none()
            && let Some(st) = PwStage::single(m, shift, z_y, k, max_acc)
        {
            let b = max_acc as i32;
            for acc in -b..=b {
                let want = requantize(acc, m, shift, z_y, clamp, Rounding::Single);
                let got = match k {
                    8 => st.apply::<8>(acc << st.pre),
                    4 => st.apply::<4>(acc << st.pre),
                    _ => st.apply::<2>(acc << st.pre),
                };
                assert_eq!(got, want, "{case} {acc} {st:?}");
            }
            pw_checked += 1;
        }
        if FastStage::single_exact(m, shift, z_y, clamp.min, clamp.max, max_acc).is_some() {
            continue;
        }
        let Some((st, pre)) = FastStage::single(m, shift, z_y, clamp.min, clamp.max, max_acc)
        else {
            continue;
        };
        let b = max_acc as i32;
        for acc in -b..=b {
            let want = requantize(acc, m, shift, z_y, clamp, Rounding::Single);
            assert_eq!(st.apply(acc << pre), want, "{case} {acc} {st:?} {pre}");
        }
        checked += 1;
    }
    assert!(checked > 200 && pw_checked > 200, "{checked} {pw_checked}");
    // The 2-bit layer of the quickstart net: shift 15, 49 taps of |w| ≤ 2, |x| ≤ 127.
    assert!(FastStage::single(1_821_285_600, 15, -1, -2, 1, 12_642).is_some());
    // Its pointwise op 74: shift 16, 32 inputs of |w| ≤ 2, |x| ≤ 129.
    assert!(PwStage::single(1_557_051_679, 16, -2, 2, 8256).is_some());
    // A reference quotient past i32 (it wraps there): refused.
    assert!(FastStage::single(1 << 30, 30, 0, -128, 127, 1 << 20).is_none());
}

/// [`stage_single`] with [`PwStage::single`]'s stages (the saturating smaller shifts
/// included) and the bias scaled like the sums ([`SingleStage::new`]) is the reference's single-rounding
/// `requantize` of `b + acc` for accumulators at the ends of and within their bound, every
/// shift, 8-, 4- and 2-bit clamps; it refuses other widths and outputs past `y`.
#[test]
fn single_strip_stage_matches_requantize() {
    let mut rng = XorShift32::new(0x51_6E1E);
    let mut checked = 0;
    for case in 0..4000 {
        let k = [8u32, 4, 2][rng.below(3) as usize];
        let lim = 1i32 << (k - 1);
        let clamp = Clamp {
            min: -lim as i8,
            max: (lim - 1) as i8,
        };
        let z_y = (rng.below(2 * lim as u32) as i32 - lim) as i8;
        let sums = [1u64 << 24, 100_000, 5000, 300][rng.below(4) as usize];
        let mut stages = [SingleStage {
            m: 0,
            bias: 0,
            ra: 0,
            s: 1,
            pre: 0,
        }; 4];
        let mut raw = [(0i32, 0i32, 0i32); 4];
        let mut all = true;
        for j in 0..4 {
            let m = (1 << 30) | rng.below(1 << 30) as i32;
            let shift = rng.below(62) as i32 - 31;
            let b = rng.below(2001) as i32 - 1000;
            let max_acc = u64::from(b.unsigned_abs()) + sums;
            match PwStage::single(m, shift, z_y, k, max_acc) {
                Some(st) => {
                    stages[j] = SingleStage::new(st, b);
                    raw[j] = (m, shift, b);
                }
                None => all = false,
            }
        }
        if !all {
            continue;
        }
        let s = sums as i32;
        let pick_acc = |rng: &mut XorShift32| match rng.below(6) {
            0 => s,
            1 => -s,
            2 => 0,
            _ => rng.below(2 * s as u32 + 1) as i32 - s,
        };
        let acc: Vec<[i32; 4]> = (0..5)
            .map(|_| core::array::from_fn(|_| pick_acc(&mut rng)))
            .collect();
        let mut y = vec![0i8; 6 * acc.len()];
        let ok = match k {
            8 => stage_single::<8>(&acc, &stages, &mut y, 6),
            4 => stage_single::<4>(&acc, &stages, &mut y, 6),
            _ => stage_single::<2>(&acc, &stages, &mut y, 6),
        };
        assert!(ok);
        for (i, a) in acc.iter().enumerate() {
            for j in 0..4 {
                let (m, shift, b) = raw[j];
                let want = requantize(b + a[j], m, shift, z_y, clamp, Rounding::Single);
                assert_eq!(y[6 * i + j], want, "{case} {i} {j} {:?}", stages[j]);
            }
        }
        checked += 1;
    }
    assert!(checked > 300, "{checked}");
    let st = [SingleStage {
        m: 1 << 30,
        bias: 0,
        ra: 0,
        s: 1,
        pre: 0,
    }; 4];
    let acc = [[0i32; 4]; 2];
    assert!(!stage_single::<3>(&acc, &st, &mut [0; 16], 8));
    assert!(!stage_single::<8>(&acc, &st, &mut [0; 11], 8));
    assert!(stage_single::<8>(&acc, &st, &mut [0; 12], 8));
}

/// [`packed_pairs`] equals [`wide_pairs`] of the unpacked weights for every two packed
/// bytes of 2- and 4-bit weights, at every zero point of their codes.
#[test]
fn packed_pairs_match_unpacked() {
    fn check<const BITS: u32>() {
        let lim = 1i32 << (BITS - 1);
        for z_w in -lim..lim {
            let minus_z_w = splat16(-(z_w as i16));
            for h in 0..1u32 << 16 {
                // Field k, sign-extended (`shared_format::packing`: low bits first).
                let f = |k: u32| {
                    let v = ((h >> (BITS * k)) & ((1 << BITS) - 1)) as i32;
                    (if v >= lim { v - 2 * lim } else { v }) as i8 as u8
                };
                let block = |b: u32| {
                    let q =
                        u32::from_le_bytes([f(4 * b), f(4 * b + 1), f(4 * b + 2), f(4 * b + 3)]);
                    wide_pairs(q, minus_z_w)
                };
                let want = if BITS == 4 {
                    [block(0), [0, 0]]
                } else {
                    [block(0), block(1)]
                };
                // Bits above the low 16 are ignored.
                for hh in [h, h | 0xdead_0000] {
                    assert_eq!(
                        packed_pairs::<BITS>(hh, minus_z_w),
                        want,
                        "{BITS} bits, z_w {z_w}, packed {hh:#x}"
                    );
                }
            }
        }
    }
    check::<2>();
    check::<4>();
}

#[test]
fn four_byte_dot_products() {
    let vals = [0i8, 1, -1, 127, -128, 77, -3, 64];
    for a in 0..vals.len() {
        for b in 0..vals.len() {
            let w = [vals[a], vals[b], vals[(a + 3) % 8], vals[(b + 5) % 8]];
            let x = [vals[(a + b) % 8], vals[b], vals[a], vals[(a * b) % 8]];
            let expect: i32 = w.iter().zip(&x).map(|(&w, &x)| w as i32 * x as i32).sum();
            let (ww, xw) = (word(&w), word(&x));
            let got = smlad(sxtb16(ww), sxtb16(xw), 5);
            let got = smlad(sxtb16_ror8(ww), sxtb16_ror8(xw), got);
            assert_eq!(got, expect + 5, "{w:?}·{x:?}");
        }
    }
    // With an offset: the bytes centred on a zero point, Σ w·(x − z).
    for z in [-128i16, -1, 0, 5, 127] {
        let w = [3i8, -128, 127, -7];
        let x = [-128i8, 127, 0, 99];
        let expect: i32 = w
            .iter()
            .zip(&x)
            .map(|(&w, &x)| w as i32 * (x as i32 - z as i32))
            .sum();
        let (ww, xw, off) = (word(&w), word(&x), splat16(-z));
        let got = smlad(sxtb16(ww), sxtab16(off, xw), 0);
        let got = smlad(sxtb16_ror8(ww), sxtab16_ror8(off, xw), got);
        assert_eq!(got, expect, "z = {z}");
    }
    // Wrapping, like the instruction.
    assert_eq!(smlad(0x0001_0001, 0x0001_0001, i32::MAX), i32::MIN + 1);
}

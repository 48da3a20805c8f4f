//! Elementwise Add (TFLM `reference_integer_ops::Add` / `AddElementwise`).
//!
//! Each input is centred, shifted left by `left_shift` (20 for int8) to keep precision, and
//! brought to a common scale with its own multiplier (always < 1); the sum is then requantized to
//! the output like any other op (EDGE_ANCHORS §3.5).

use shared_format::{Clamp, Rounding, TensorRecord};

use super::simd::armv7em;
use super::{KernelError, KernelResult};
use crate::requant::ChannelRequant;

/// One input's quantization: zero point and the Q31 multiplier/shift of `s_i / (2·max(s_1, s_2))`.
#[derive(Debug, Clone, Copy)]
pub struct AddOperand {
    /// Zero point `z_i`.
    pub zero_point: i8,
    /// Q31 multiplier.
    pub multiplier: i32,
    /// Shift (≤ 0).
    pub shift: i32,
}

/// Everything Add needs besides the activations.
#[derive(Debug, Clone, Copy)]
pub struct AddParams {
    /// The two inputs.
    pub inputs: [AddOperand; 2],
    /// Left shift applied to each centred input.
    pub left_shift: u8,
    /// Output Q31 multiplier.
    pub output_multiplier: i32,
    /// Output shift.
    pub output_shift: i32,
    /// Output zero point.
    pub output_zero_point: i8,
    /// Output clamp.
    pub clamp: Clamp,
    /// Requantization rounding of the model.
    pub rounding: Rounding,
}

impl AddParams {
    /// The op's parameters between its input tensors `x` and output tensor `y`.
    pub fn new(
        op: &shared_format::Add,
        x: [&TensorRecord; 2],
        y: &TensorRecord,
        rounding: Rounding,
    ) -> Self {
        let operand = |t: &TensorRecord, i: &shared_format::AddInput| AddOperand {
            zero_point: t.zero_point,
            multiplier: i.multiplier,
            shift: i.shift as i32,
        };
        AddParams {
            inputs: [operand(x[0], &op.inputs[0]), operand(x[1], &op.inputs[1])],
            left_shift: op.left_shift,
            output_multiplier: op.output_multiplier,
            output_shift: op.output_shift as i32,
            output_zero_point: y.zero_point,
            clamp: op.clamp,
            rounding,
        }
    }
}

/// `y = clamp(MBQM(a_1 + a_2, m_o, e_o) + z_y)` with `a_i = MBQM((x_i − z_i)·2^left_shift, m_i, e_i)`.
pub fn add(p: &AddParams, input1: &[i8], input2: &[i8], output: &mut [i8]) -> KernelResult {
    if input1.len() != output.len() || input2.len() != output.len() {
        return Err(KernelError("add operand lengths differ"));
    }
    let [a, b] = p.inputs;
    // left_shift ≤ 20 in a valid blob, so |x − z|·2^20 < 2^28; wrapping_shl keeps a corrupt
    // shift from panicking (it could only come from a blob validation refused).
    let shift = p.left_shift as u32;
    // The three output stages, worked out once (each `scale` is exactly MBQM).
    let stage = |o: &AddOperand| ChannelRequant::new(o.multiplier, o.shift, p.rounding);
    let (sa, sb) = (stage(&a), stage(&b));
    let so = ChannelRequant::new(p.output_multiplier, p.output_shift, p.rounding);
    let centred =
        |x: i8, z: i8, s: &ChannelRequant| s.scale((x as i32 - z as i32).wrapping_shl(shift));
    // Armv7E-M: a large add looks each input's scaling up in a 256-entry table (same values).
    #[cfg(edge_dsp)]
    if output.len() >= TABLE_FROM {
        if !add_narrow(p, input1, input2, output) {
            add_tabled(p, [&sa, &sb, &so], input1, input2, output);
        }
        return Ok(());
    }
    // 64-bit hosts: the same tables (their 2 KiB of stack is nothing there). The two input
    // scalings are two 64-bit multiplies and a rounding per element each on the x86-64
    // baseline, which does not vectorise them; a lookup is one load.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if output.len() >= TABLE_FROM {
        add_tabled(p, [&sa, &sb, &so], input1, input2, output);
        return Ok(());
    }
    if sa.is_plain() && sb.is_plain() && so.is_plain() {
        // The usual case (every multiplier below 1): the short path, one loop per rounding.
        match p.rounding {
            Rounding::Double => add_plain::<true>(p, [&sa, &sb, &so], input1, input2, output),
            Rounding::Single => add_plain::<false>(p, [&sa, &sb, &so], input1, input2, output),
        }
        return Ok(());
    }
    for ((y, &x1), &x2) in output.iter_mut().zip(input1).zip(input2) {
        let sum = centred(x1, a.zero_point, &sa).wrapping_add(centred(x2, b.zero_point, &sb));
        *y = so.apply(sum, p.output_zero_point, p.clamp);
    }
    Ok(())
}

/// Elements from which [`add`] tables its inputs' scaling on Armv7E-M and 64-bit hosts:
/// building the two tables costs 512 scalings and 2 KiB of stack, so only a large add gains.
#[cfg_attr(
    not(any(edge_dsp, target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
const TABLE_FROM: usize = 1024;

/// [`add`] with each input's `MBQM((x − z)·2^left_shift, m, e)`, which depends only on the i8
/// value `x`, looked up in a table of its 256 values (built with the same `scale`, so the
/// outputs are identical). Used for large adds on Armv7E-M (`cfg(edge_dsp)`) and on x86-64
/// and aarch64 hosts; elsewhere only tested, so that 2 KiB of stack stays off small cores.
#[cfg_attr(
    not(any(edge_dsp, target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
fn add_tabled(
    p: &AddParams,
    [sa, sb, so]: [&ChannelRequant; 3],
    input1: &[i8],
    input2: &[i8],
    output: &mut [i8],
) {
    let shift = p.left_shift as u32;
    let table = |z: i8, s: &ChannelRequant| {
        let mut t = [0i32; 256];
        for (i, v) in t.iter_mut().enumerate() {
            let x = i as u8 as i8; // index = the byte of x
            *v = s.scale((x as i32 - z as i32).wrapping_shl(shift));
        }
        t
    };
    let [a, b] = p.inputs;
    let (ta, tb) = (table(a.zero_point, sa), table(b.zero_point, sb));
    let sum = |x1: i8, x2: i8| ta[x1 as u8 as usize].wrapping_add(tb[x2 as u8 as usize]);
    let (z_y, clamp) = (p.output_zero_point, p.clamp);
    // 64-bit hosts: the sums of a block of elements, then the output stage as vectors (the
    // convolutions' `BlockStages`, every lane the same stage): on x86-64 the scalar stage was
    // two thirds of a large add's time.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        use crate::ops::conv::BLOCK;
        let double = p.rounding == Rounding::Double;
        if let Some(v) =
            super::simd::BlockStages::new(&[*so; BLOCK], &[0; BLOCK], double, z_y, clamp)
        {
            let mut acc = [0i32; BLOCK];
            let blocks = output
                .chunks_mut(BLOCK)
                .zip(input1.chunks(BLOCK))
                .zip(input2.chunks(BLOCK));
            for ((ys, x1), x2) in blocks {
                for ((a, &x1), &x2) in acc.iter_mut().zip(x1).zip(x2) {
                    *a = sum(x1, x2);
                }
                v.apply(&acc[..ys.len()], ys);
            }
            return;
        }
    }
    let pairs = output.iter_mut().zip(input1).zip(input2);
    match p.rounding {
        Rounding::Double if so.is_plain() => {
            for ((y, &x1), &x2) in pairs {
                *y = so.apply_plain::<true>(sum(x1, x2), z_y, clamp);
            }
        }
        Rounding::Single if so.is_plain() => {
            for ((y, &x1), &x2) in pairs {
                *y = so.apply_plain::<false>(sum(x1, x2), z_y, clamp);
            }
        }
        _ => {
            for ((y, &x1), &x2) in pairs {
                *y = so.apply(sum(x1, x2), z_y, clamp);
            }
        }
    }
}

/// [`add_tabled`] with the output stage fused into one loop ([`armv7em::add_narrow`]: the tables
/// hold twice each input's term, so their sum is the doubled accumulator a
/// [`armv7em::NarrowStage`] takes), 10 instructions per element on Armv7E-M against about 34.
/// TFLM's adds (double rounding, the whole int8 range, `left_shift` 20, input multipliers
/// below one) fit: `|a| < 2^29`. Returns `false`, touching nothing, where the stage would not
/// be exact (single rounding, another clamp, a left or large right output shift) or the fast
/// table build would not ([`doubled_table`]).
/// Not inlined, so that its tables and stage stay off the frame of [`add`]'s other loops.
#[cfg_attr(not(edge_dsp), allow(dead_code))]
#[inline(never)]
fn add_narrow(p: &AddParams, input1: &[i8], input2: &[i8], output: &mut [i8]) -> bool {
    let full = (p.clamp.min, p.clamp.max) == (i8::MIN, i8::MAX);
    if p.rounding != Rounding::Double || !full || input1.len() != output.len() {
        return false;
    }
    let (m, e, z_y) = (p.output_multiplier, p.output_shift, p.output_zero_point);
    // The stage's own conditions first, so that a refusal costs no tables.
    if armv7em::NarrowStage::new(m, e, 0, z_y, 0).is_none() || input2.len() != output.len() {
        return false;
    }
    let [a, b] = p.inputs;
    let (Some((ta, max_a)), Some((tb, max_b))) = (
        doubled_table(a, p.left_shift),
        doubled_table(b, p.left_shift),
    ) else {
        return false;
    };
    let Some(stage) = armv7em::NarrowStage::new(m, e, 0, z_y, max_a + max_b) else {
        return false;
    };
    armv7em::add_narrow(input1, input2, [&ta, &tb], &stage, output)
}

/// Twice an input's scaled term `MBQM((x − z)·2^left_shift, m, e)` (double rounding) for
/// each byte `x` (as `u8`), and the terms' largest magnitude; `None` unless `left_shift ≤ 21`,
/// `e` in `−30..=0` and `m ≥ 0` (TFLM's adds: 20, `e ≤ 0`, `m ≥ 2^30`), which keep
/// `c = (x − z)·2^left_shift` below 2^29 in magnitude. Then SRDHM is
/// `h = floor((2c·m + 2^31) / 2^32)` (its saturating case needs `c = i32::MIN`) and RDBPOT by
/// `r = −e` is `(h + 2^(r−1) − [h < 0]) >> r` (`h` for `r = 0`), with nothing near overflow,
/// and `[h < 0]` may be `[c < 0]` (they differ only where `h = 0`, whose result is 0 either
/// way): the same values as [`ChannelRequant::scale`] in about half the instructions, which
/// matters for 512 entries per add. The terms grow with `x` (`m ≥ 0`), so the largest
/// magnitude is at `x = −128` or `127`.
fn doubled_table(o: AddOperand, left_shift: u8) -> Option<([i32; 256], u64)> {
    if left_shift > 21 || !(-30..=0).contains(&o.shift) || o.multiplier < 0 {
        return None;
    }
    let (z, m, r) = (
        i32::from(o.zero_point),
        i64::from(o.multiplier),
        (-o.shift) as u32,
    );
    let half = (1i32 << r) >> 1;
    let round_neg = i32::from(r > 0); // the [h < 0] term exists only for r ≥ 1
    let mut t = [0i32; 256];
    for (i, v) in (0..).zip(t.iter_mut()) {
        let x = i32::from(i as u8 as i8); // index = the byte of x
        // |x − z| ≤ 255, so |2c| < 2^30 and |2c·m| < 2^61.
        let c2 = (x - z) << (left_shift + 1);
        let h = ((i64::from(c2) * m + (1 << 31)) >> 32) as i32; // |h| ≤ 2^29
        let neg = round_neg & ((c2 as u32) >> 31) as i32;
        *v = ((h + half - neg) >> r) * 2; // |term| ≤ 2^29
    }
    let most = t[127].unsigned_abs().max(t[128].unsigned_abs()) / 2;
    Some((t, u64::from(most)))
}

/// [`add`] when all three stages [`is_plain`](ChannelRequant::is_plain).
#[inline(always)]
fn add_plain<const DOUBLE: bool>(
    p: &AddParams,
    [sa, sb, so]: [&ChannelRequant; 3],
    input1: &[i8],
    input2: &[i8],
    output: &mut [i8],
) {
    let shift = p.left_shift as u32;
    let [a, b] = p.inputs;
    let centred = |x: i8, z: i8, s: &ChannelRequant| {
        s.scale_plain::<DOUBLE>((x as i32 - z as i32).wrapping_shl(shift))
    };
    for ((y, &x1), &x2) in output.iter_mut().zip(input1).zip(input2) {
        let sum = centred(x1, a.zero_point, sa).wrapping_add(centred(x2, b.zero_point, sb));
        *y = so.apply_plain::<DOUBLE>(sum, p.output_zero_point, p.clamp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TFLM's setup for s_1 = 0.5, s_2 = 0.25, s_y = 1, left_shift 20:
    /// twice_max = 1 → M_1 = 0.5, M_2 = 0.25 → (2^30, 0) and (2^30, −1);
    /// M_o = 1 / 2^20 → (2^30, −19).
    fn params() -> AddParams {
        AddParams {
            inputs: [
                AddOperand {
                    zero_point: 10,
                    multiplier: 1 << 30,
                    shift: 0,
                },
                AddOperand {
                    zero_point: -4,
                    multiplier: 1 << 30,
                    shift: -1,
                },
            ],
            left_shift: 20,
            output_multiplier: 1 << 30,
            output_shift: -19,
            output_zero_point: 1,
            clamp: Clamp {
                min: -128,
                max: 127,
            },
            rounding: Rounding::Double,
        }
    }

    #[test]
    fn tflm_style_multipliers() {
        // Real values: x1 = (20 − 10)·0.5 = 5, x2 = (8 + 4)·0.25 = 3 → 8, plus z_y = 1 → 9.
        // x1 = (11 − 10)·0.5 = 0.5, x2 = (−3 + 4)·0.25 = 0.25 → 0.75 → rounds to 1 → 2.
        // x1 = (−100 − 10)·0.5 = −55, x2 = (−128 + 4)·0.25 = −31 → −86 → −85.
        // x1 = 117·0.5 = 58.5, x2 = 127+4 = 131·0.25 = 32.75 → 91.25 → 91 → 92.
        let p = params();
        let mut y = [0i8; 4];
        add(&p, &[20, 11, -100, 127], &[8, -3, -128, 127], &mut y).unwrap();
        assert_eq!(y, [9, 2, -85, 92]);
    }

    #[test]
    fn clamps_and_rejects_mismatched_lengths() {
        let mut p = params();
        p.clamp = Clamp { min: 0, max: 6 };
        let mut y = [0i8; 2];
        add(&p, &[20, -100], &[8, -128], &mut y).unwrap();
        assert_eq!(y, [6, 0]);
        assert!(add(&p, &[1], &[1, 2], &mut y).is_err());
    }

    /// The fast table build equals `ChannelRequant::scale` (doubled) for every byte on random
    /// zero points, multipliers, shifts and left shifts it takes (refusing negative
    /// multipliers), and its bound is the largest term.
    #[test]
    fn doubled_tables_match_scale() {
        use crate::test_rng::XorShift32;
        let mut rng = XorShift32::new(0x007A_B1E5);
        let mut taken = 0;
        for case in 0..4000 {
            let o = AddOperand {
                zero_point: rng.below(256) as u8 as i8,
                multiplier: match case % 6 {
                    0 => i32::MAX,
                    1 => i32::MIN,
                    2 => rng.next_u32() as i32,
                    3 => rng.below(1 << 12) as i32,
                    _ => (1 << 30) | rng.below(1 << 30) as i32,
                },
                shift: rng.below(36) as i32 - 33,
            };
            let ls = [20u8, 21, 22, 0, rng.below(24) as u8][rng.below(5) as usize];
            let Some((t, most)) = doubled_table(o, ls) else {
                let refused = ls > 21 || !(-30..=0).contains(&o.shift) || o.multiplier < 0;
                assert!(refused, "{o:?} {ls}");
                continue;
            };
            let s = ChannelRequant::new(o.multiplier, o.shift, Rounding::Double);
            let mut want_most = 0u64;
            for (i, &v) in t.iter().enumerate() {
                let x = i as u8 as i8;
                let want = s.scale((x as i32 - o.zero_point as i32) << ls);
                want_most = want_most.max(u64::from(want.unsigned_abs()));
                assert_eq!(v, 2 * want, "{o:?} ls {ls} x {x}");
            }
            assert_eq!(most, want_most, "{o:?} ls {ls}");
            taken += 1;
        }
        assert!(taken > 1500, "{taken}");
    }

    /// The fused path (`add_narrow`, on the host the model of its instructions) equals the
    /// computed one on random TFLM-style adds: zero points, input multipliers below one,
    /// output multipliers and shifts, left shifts and lengths (tails of 0–3 elements); it
    /// refuses single rounding, a narrower clamp and output shifts outside `−22..=−1`, leaving
    /// the output untouched.
    #[test]
    fn narrow_path_matches_computation() {
        use crate::test_rng::XorShift32;
        let mut rng = XorShift32::new(0xADD_5EED);
        let (mut fused, mut refused) = (0, 0);
        for case in 0..3000 {
            let mut p = params();
            for o in &mut p.inputs {
                o.zero_point = rng.below(256) as u8 as i8;
                o.multiplier = match rng.below(4) {
                    0 => 1 << 30,
                    1 => i32::MAX,
                    _ => (1 << 30) | rng.below(1 << 30) as i32,
                };
                o.shift = -(rng.below(5) as i32);
            }
            p.left_shift = [20, 20, 20, 0, 7, 15][rng.below(6) as usize];
            p.output_multiplier = (1 << 30) | rng.below(1 << 30) as i32;
            p.output_shift = match case % 10 {
                0 => rng.below(4) as i32,
                1 => -23 - rng.below(6) as i32,
                _ => -(rng.below(22) as i32 + 1),
            };
            p.output_zero_point = rng.below(256) as u8 as i8;
            p.rounding = if case % 9 == 0 {
                Rounding::Single
            } else {
                Rounding::Double
            };
            if case % 13 == 0 {
                p.clamp = Clamp { min: -10, max: 90 };
            }
            let n = rng.below(70) as usize;
            let x1: Vec<i8> = (0..n).map(|_| rng.below(256) as u8 as i8).collect();
            let x2: Vec<i8> = (0..n).map(|_| rng.below(256) as u8 as i8).collect();
            let mut want = vec![0i8; n];
            add(&p, &x1, &x2, &mut want).unwrap();
            let mut got = vec![7i8; n];
            if add_narrow(&p, &x1, &x2, &mut got) {
                assert_eq!(got, want, "case {case}: {p:?}");
                fused += 1;
            } else {
                assert!(got.iter().all(|&v| v == 7), "case {case}");
                let plain = p.rounding == Rounding::Double
                    && (p.clamp.min, p.clamp.max) == (-128, 127)
                    && (-22..=-1).contains(&p.output_shift);
                assert!(!plain, "case {case}: refused {p:?}");
                refused += 1;
            }
        }
        assert!(fused > 1500 && refused > 300, "{fused} {refused}");
        // Every input pair once, at the extremes of the zero points.
        let mut p = params();
        p.inputs[0].zero_point = -128;
        p.inputs[1].zero_point = 127;
        p.inputs[1].multiplier = i32::MAX;
        let x1: Vec<i8> = (0..65_536).map(|i| (i & 255) as u8 as i8).collect();
        let x2: Vec<i8> = (0..65_536).map(|i| (i >> 8) as u8 as i8).collect();
        let (mut want, mut got) = (vec![0i8; x1.len()], vec![0i8; x1.len()]);
        add(&p, &x1, &x2, &mut want).unwrap();
        assert!(add_narrow(&p, &x1, &x2, &mut got));
        assert_eq!(got, want);
        assert!(!add_narrow(&p, &x1[1..], &x2[1..], &mut got));
    }

    /// The tabled path equals the computed one for every input pair, for both roundings, plain
    /// and general output stages and several zero points and shifts.
    #[test]
    fn tables_match_computation() {
        let xs: Vec<i8> = (-128..=127).collect();
        for (rounding, out_shift, z1, z2) in [
            (Rounding::Double, -19, 10, -4),
            (Rounding::Single, -19, -128, 127),
            (Rounding::Double, 1, 0, 3),
            (Rounding::Single, 0, 5, -5),
        ] {
            let mut p = params();
            p.rounding = rounding;
            p.output_shift = out_shift;
            p.inputs[0].zero_point = z1;
            p.inputs[1].zero_point = z2;
            p.inputs[1].multiplier = 1_518_500_250;
            let stage = |o: &AddOperand| ChannelRequant::new(o.multiplier, o.shift, rounding);
            let so = ChannelRequant::new(p.output_multiplier, p.output_shift, rounding);
            let (sa, sb) = (stage(&p.inputs[0]), stage(&p.inputs[1]));
            for &x2 in &[-128i8, -1, 0, 1, 77, 127] {
                let other = vec![x2; xs.len()];
                let (mut want, mut got) = (vec![0i8; xs.len()], vec![0i8; xs.len()]);
                add(&p, &xs, &other, &mut want).unwrap();
                add_tabled(&p, [&sa, &sb, &so], &xs, &other, &mut got);
                assert_eq!(got, want, "{rounding:?} shift {out_shift} x2 {x2}");
                add_tabled(&p, [&sa, &sb, &so], &other, &xs, &mut got);
                add(&p, &other, &xs, &mut want).unwrap();
                assert_eq!(got, want, "{rounding:?} shift {out_shift} x1 {x2}");
            }
            // A large add (tabled on Armv7E-M and 64-bit hosts) equals the same elements added
            // in pieces too short for the tables (computed).
            let n = 4 * TABLE_FROM + 3;
            let x1: Vec<i8> = (0..n).map(|i| (i * 7 + 3) as u8 as i8).collect();
            let x2: Vec<i8> = (0..n).map(|i| (i * 13 / 5) as u8 as i8).collect();
            let (mut whole, mut pieces) = (vec![0i8; n], vec![0i8; n]);
            add(&p, &x1, &x2, &mut whole).unwrap();
            let short = TABLE_FROM / 2;
            for ((y, a), b) in pieces
                .chunks_mut(short)
                .zip(x1.chunks(short))
                .zip(x2.chunks(short))
            {
                add(&p, a, b, y).unwrap();
            }
            assert_eq!(whole, pieces, "{rounding:?} shift {out_shift}");
        }
    }
}

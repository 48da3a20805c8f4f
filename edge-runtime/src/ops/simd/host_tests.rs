//! Test bodies every host SIMD module runs against the scalar reference: the same cases, the same
//! checks, for SSE2, AVX2 and AVX-512 VNNI (`x86_64::each_isa`) and for NEON with and without
//! `dotprod`, so a case added here covers every instruction set at once. Each module passes its
//! kernel as a closure.

use super::Tap;
use crate::ops::conv::{BLOCK, ConvParams, output_stage};
use crate::requant::ChannelRequant;
use crate::test_rng::XorShift32;
use shared_format::{Clamp, Rounding};

/// A deterministic byte stream covering the extremes (xorshift, then forced corners).
pub(crate) fn bytes(n: usize, seed: u32) -> Vec<i8> {
    let mut rng = XorShift32::new(seed | 1);
    (0..n)
        .map(|i| {
            let s = rng.next_u32();
            match i % 11 {
                0 => -128,
                5 => 127,
                _ => s as i8,
            }
        })
        .collect()
}

/// One depthwise pixel (`pixel(x, w, taps, z_x, z_w, acc)`, false = refused) against the
/// scalar sum: channel counts on both sides of the 16- and 8-channel groups, even and odd tap
/// counts (the lone tap), zero points at the extremes, taps anywhere in the tensors
/// (overlapping, repeated, at the very end); a tap whose channels would leave a tensor is
/// refused with nothing written.
pub(crate) fn depthwise_pixel_equals_centred_sums(
    isa: &str,
    mut pixel: impl FnMut(&[i8], &[i8], &[Tap], i8, i8, &mut [i32]) -> bool,
) {
    let mut rng = XorShift32::new(0xDE97_0001);
    let (x, w) = (bytes(600, 3), bytes(700, 5));
    let mut tried = 0;
    for n in (0..=40).chain([63, 64, 65, 100]) {
        for taps in [0usize, 1, 2, 3, 8, 9, 25] {
            for (z_x, z_w) in [(-128i8, 0i8), (127, -128), (-128, 127), (0, 0), (5, -3)] {
                let list: Vec<Tap> = (0..taps)
                    .map(|_| Tap {
                        x: rng.below((x.len() - n + 1) as u32) as usize,
                        w: rng.below((w.len() - n + 1) as u32) as usize,
                    })
                    .collect();
                let mut got = vec![7i32; n];
                assert!(pixel(&x, &w, &list, z_x, z_w, &mut got));
                for (j, &g) in got.iter().enumerate() {
                    let e = list.iter().fold(0i32, |a, t| {
                        let (wv, xv) = (w[t.w + j] as i32, x[t.x + j] as i32);
                        a.wrapping_add((wv - z_w as i32) * (xv - z_x as i32))
                    });
                    assert_eq!(g, e, "{isa} n {n} taps {taps} z_x {z_x} z_w {z_w} ch {j}");
                }
                tried += 1;
            }
        }
    }
    assert!(tried > 1000);
    let mut acc = [1i32; 16];
    let bad = [Tap { x: 600 - 15, w: 0 }];
    assert!(!pixel(&x, &w, &bad, 0, 0, &mut acc), "{isa}");
    let bad = [Tap {
        x: 0,
        w: usize::MAX,
    }];
    assert!(!pixel(&x, &w, &bad, 0, 0, &mut acc), "{isa}");
    assert_eq!(acc, [1; 16], "{isa}");
}

/// `conv::output_stage`, the scalar reference, over `acc`: its short path where every stage is
/// plain, the general one otherwise (the two equal: `requant`'s `channel_requant_equals_requantize`).
fn scalar_output_stage(
    stage: &[ChannelRequant],
    bias: &[i32],
    acc: &[i32],
    z_y: i8,
    clamp: Clamp,
    rounding: Rounding,
) -> Vec<i8> {
    let o = crate::ops::conv::tests::owned(&[0], 8, &[0], &[(0, 0)]);
    let p = ConvParams {
        output_zero_point: z_y,
        clamp,
        rounding,
        ..crate::ops::conv::tests::params(
            &o,
            8,
            shared_format::WeightScheme::PerChannelSymmetric,
            0,
            shared_format::Window::square(1, 1, 1, 0),
            shared_format::Shape::new(1, 1, 1),
            0,
            shared_format::Shape::new(1, 1, 1),
        )
    };
    let mut want = vec![0i8; acc.len()];
    let plain = stage.iter().all(ChannelRequant::is_plain);
    output_stage(&mut want, stage, bias, acc, plain, &p);
    want
}

/// The vector output stage (`stage(requant, bias, double, z_y, clamp, acc, out)`, false = the
/// stages are not plain and were refused) against the scalar one, output for output: plain
/// stages of both roundings with every shift they allow (double: 0..=31 right; single:
/// −31..=−2), per channel, one for all (uniform groups) or two values, small, typical, negative
/// and extreme multipliers, accumulators and biases at and around i32's ends and the rounding
/// ties, output zero points and clamps at their ends, blocks of 1..=64 lanes; a stage with a
/// left shift is refused.
pub(crate) type StageRun<'a> =
    dyn FnMut(&[ChannelRequant], &[i32], bool, i8, Clamp, &[i32], &mut [i8]) -> bool + 'a;

/// See [`StageRun`].
pub(crate) fn plain_stages_equal_scalar_output_stage(isa: &str, stage_run: &mut StageRun<'_>) {
    let mut rng = XorShift32::new(0x0A7E_57A6);
    let specials = [
        i32::MIN,
        i32::MIN + 1,
        i32::MAX,
        i32::MAX - 1,
        0,
        1,
        -1,
        1 << 30,
        -(1 << 30),
        (1 << 20) + (1 << 19),
        -(1 << 19),
    ];
    for case in 0..4000u32 {
        let double = case % 2 == 0;
        let rounding = if double {
            Rounding::Double
        } else {
            Rounding::Single
        };
        let n = 1 + rng.below(BLOCK as u32) as usize;
        let mode = (case / 2) % 3;
        let shift_of = |r: u32| {
            if double {
                -((r % 32) as i32)
            } else {
                -2 - (r % 30) as i32
            }
        };
        let (s0, s1) = (shift_of(rng.next_u32()), shift_of(rng.next_u32()));
        // Multipliers of a valid blob (0 or at least 2^30) in half the cases, any in the rest.
        let any_m = case % 4 < 2;
        let stage: Vec<ChannelRequant> = (0..n)
            .map(|_| {
                let m = match rng.below(5) {
                    0 => i32::MAX,
                    1 => 0,
                    2 if any_m => rng.next_u32() as i32,
                    _ => (1 << 30) | rng.below(1 << 30) as i32,
                };
                let shift = match mode {
                    0 => shift_of(rng.next_u32()),
                    1 => s0,
                    _ => [s0, s1][rng.below(2) as usize],
                };
                // Double rounding's plain stages exclude i32::MIN (SRDHM's saturating case).
                let m = if double && m == i32::MIN { i32::MAX } else { m };
                ChannelRequant::new(m, shift, rounding)
            })
            .collect();
        assert!(stage.iter().all(ChannelRequant::is_plain));
        let pick = |rng: &mut XorShift32| match rng.below(3) {
            0 => specials[rng.below(specials.len() as u32) as usize],
            1 => (rng.next_u32() as i32) >> rng.below(31),
            _ => rng.next_u32() as i32,
        };
        let bias: Vec<i32> = (0..n).map(|_| pick(&mut rng)).collect();
        let acc: Vec<i32> = (0..n).map(|_| pick(&mut rng)).collect();
        let z_y = [-128i8, 127, 0, rng.next_u32() as i8][rng.below(4) as usize];
        let (a, b) = (rng.next_u32() as i8, rng.next_u32() as i8);
        let clamp = match rng.below(3) {
            0 => Clamp {
                min: -128,
                max: 127,
            },
            1 => Clamp {
                min: a.min(b),
                max: a.max(b),
            },
            _ => Clamp { min: 0, max: 6 },
        };
        let mut got = vec![0i8; n];
        assert!(
            stage_run(&stage, &bias, double, z_y, clamp, &acc, &mut got),
            "{isa} case {case}: plain stages refused"
        );
        let want = scalar_output_stage(&stage, &bias, &acc, z_y, clamp, rounding);
        assert_eq!(got, want, "{isa} case {case}");
    }
    let left = [ChannelRequant::new(1 << 30, 3, Rounding::Double)];
    let clamp = Clamp {
        min: -128,
        max: 127,
    };
    let mut out = [0i8];
    assert!(
        !stage_run(&left, &[0], true, 0, clamp, &[0], &mut out),
        "{isa}: a left shift is not a plain stage"
    );
}

/// Single rounding's stages of every shift (−31..=30: right shifts of 62 down to 1, plain or not,
/// mixed in one block) through the vector output stage (`stage_run` as for [`StageRun`]) against
/// the scalar one. `takes_any`: the level must accept every such block (AVX-512's 64-bit lanes);
/// otherwise it must refuse each block with a stage that is not plain and leave it to the
/// scalar loop.
pub(crate) fn single_stages_equal_scalar_output_stage(
    isa: &str,
    takes_any: bool,
    stage_run: &mut StageRun<'_>,
) {
    let mut rng = XorShift32::new(0x5147_1E00);
    let mut vector = 0;
    for case in 0..3000u32 {
        let n = 1 + rng.below(BLOCK as u32) as usize;
        let stage: Vec<ChannelRequant> = (0..n)
            .map(|_| {
                let m = match rng.below(4) {
                    0 => i32::MAX,
                    1 => 0,
                    2 => rng.next_u32() as i32,
                    _ => (1 << 30) | rng.below(1 << 30) as i32,
                };
                // Mostly the shifts that are not plain (−1..=30), some plain ones beside.
                let shift = match rng.below(4) {
                    0 => -31 + rng.below(30) as i32,
                    _ => -1 + rng.below(32) as i32,
                };
                ChannelRequant::new(m, shift, Rounding::Single)
            })
            .collect();
        let plain = stage.iter().all(ChannelRequant::is_plain);
        let pick = |rng: &mut XorShift32| match rng.below(3) {
            0 => [i32::MIN, i32::MAX, 0, -1, 1][rng.below(5) as usize],
            1 => (rng.next_u32() as i32) >> rng.below(31),
            _ => rng.next_u32() as i32,
        };
        let bias: Vec<i32> = (0..n).map(|_| pick(&mut rng)).collect();
        let acc: Vec<i32> = (0..n).map(|_| pick(&mut rng)).collect();
        let z_y = rng.next_u32() as i8;
        let (a, b) = (rng.next_u32() as i8, rng.next_u32() as i8);
        let clamp = Clamp {
            min: a.min(b),
            max: a.max(b),
        };
        let mut got = vec![0i8; n];
        let taken = stage_run(&stage, &bias, false, z_y, clamp, &acc, &mut got);
        assert_eq!(
            taken,
            plain || takes_any,
            "{isa} case {case}: plain {plain}, takes any {takes_any}"
        );
        if !taken {
            continue;
        }
        vector += usize::from(!plain);
        let want = scalar_output_stage(&stage, &bias, &acc, z_y, clamp, Rounding::Single);
        assert_eq!(got, want, "{isa} case {case}");
    }
    assert_eq!(
        vector > 1000,
        takes_any,
        "{isa}: {vector} blocks that are not plain"
    );
}

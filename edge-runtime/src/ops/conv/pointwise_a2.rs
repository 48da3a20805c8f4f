//! The driver of [`armv7em::pointwise_a2`]: 1×1 convolutions of 2-bit weights over 2-bit
//! activations with 2-bit outputs (a W2A2 model's pointwise layers), four MACs per `SMLAD`
//! (issue 18).

use shared_format::Rounding;
use shared_format::packing::unpack_into;

use super::{ConvParams, KernelError, KernelResult, armv7em};
use armv7em::pointwise_a2 as a2;

/// The shape of one convolution as [`super::conv2d_pointwise`] worked it out.
#[derive(Debug, Clone, Copy)]
pub(super) struct PwShape {
    /// Input width (pixels of an input row).
    pub in_w: usize,
    /// Input channels.
    pub cin: usize,
    /// Output rows.
    pub out_h: usize,
    /// Output columns.
    pub out_w: usize,
    /// Output channels, a multiple of 4.
    pub cout: usize,
}

/// Runs `p` on the 2-bit kernel if it fits it: 2-bit weights, single rounding, outputs of all
/// 2-bit codes (`k` = 2), `C_in` one of [`a2::CINS`], centred weights of at most
/// [`a2::MAX_WEIGHT`], one output stage for every channel (a per-tensor requantization, as this
/// SDK's exporter writes) and for every channel a bound on `|B + M|` within [`a2::MAX_SUM`]
/// (see [`a2`]); `stage` gives each channel's bias and stage, and must exist for
/// every channel (the caller checked). `None` when it does not fit (nothing written) and when an
/// input code lies outside −2..=1 (some outputs may be written): the caller then runs the
/// general kernel, which writes every output, so both end in the reference's outputs.
pub(super) fn conv2d_pointwise_a2(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    shape: PwShape,
    k: u32,
    stage: impl Fn(usize) -> Option<(i32, armv7em::PwStage)>,
) -> Option<KernelResult> {
    let PwShape { cin, cout, .. } = shape;
    if k != 2
        || p.weights.bits != 2
        || p.rounding == Rounding::Double
        || !a2::CINS.contains(&cin)
        || !cout.is_multiple_of(4)
    {
        return None;
    }
    let z_w = i32::from(p.weights.zero_point);
    let z_x = i64::from(p.input_zero_point);
    // Centred 2-bit codes: −2 − z_w ..= 1 − z_w.
    let w_max = i64::from((-2 - z_w).abs().max((1 - z_w).abs()));
    let (_, shared) = stage(0)?;
    // |B| ≤ |b| + |z_x|·C_in·w_max and |M| ≤ C_in·w_max·2.
    let fits = |c: usize| {
        stage(c).is_some_and(|(b, st)| {
            st == shared && i64::from(b).abs() + cin as i64 * w_max * (z_x.abs() + 2) <= a2::MAX_SUM
        })
    };
    if w_max > i64::from(a2::MAX_WEIGHT) || !(0..cout).all(fits) {
        return None;
    }
    run(p, input, output, shape, (stage, shared))
}

/// [`conv2d_pointwise_a2`] once `p` fits: blocks of output channels through a 1 KiB table,
/// each over the pixels a strip at a time ([`a2::pack`], then [`a2::pointwise`]); `shared` is
/// the stage every channel has.
fn run(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    PwShape {
        in_w,
        cin,
        out_h,
        out_w,
        cout,
    }: PwShape,
    (stage, shared): (
        impl Fn(usize) -> Option<(i32, armv7em::PwStage)>,
        armv7em::PwStage,
    ),
) -> Option<KernelResult> {
    let z_w = i32::from(p.weights.zero_point);
    let z_x = i64::from(p.input_zero_point);
    let gw = a2::group_words(cin);
    let per_block = (armv7em::PW_TABLE_WORDS / gw).max(1);
    let strip = a2::PACKED_WORDS / (cin / 4);
    let (s_h, s_w) = (p.window.stride_h as usize, p.window.stride_w as usize);
    // Stride 1: the pixels are contiguous in both tensors, one run; else one per row.
    let (rows, row_len) = if s_h == 1 && s_w == 1 {
        (1, out_h * out_w)
    } else {
        (out_h, out_w)
    };
    let mut table = [0u32; armv7em::PW_TABLE_WORDS];
    let mut packed = [0u32; a2::PACKED_WORDS];
    let mut filter = [0i8; 64];
    let filter = &mut filter[..cin];
    let err = |what| Some(Err(KernelError(what)));
    if let Err(e) = super::filters_fit(p, cin, cout) {
        return Some(Err(e));
    }
    let mut c0 = 0;
    while c0 < cout {
        let groups = ((cout - c0) / 4).min(per_block);
        for (g, t) in table.chunks_exact_mut(gw).take(groups).enumerate() {
            for j in 0..4 {
                let c = c0 + 4 * g + j;
                let Some((b, _)) = stage(c) else {
                    return err("pointwise stage");
                };
                unpack_into(p.weights.data, 2, c * cin, filter);
                let centred = |v: i8| i32::from(v) - z_w;
                for (q, eight) in filter.chunks_exact(8).enumerate() {
                    for (h, four) in eight.chunks_exact(4).enumerate() {
                        t[4 + 8 * q + 2 * j + h] =
                            a2::weight_word(core::array::from_fn(|i| centred(four[i])));
                    }
                }
                let w_sum: i64 = filter.iter().map(|&v| i64::from(v) - i64::from(z_w)).sum();
                // Within MAX_SUM (the check above bounds it), so i32 holds it.
                let bias = (i64::from(b) - z_x * w_sum) as i32;
                t[j] = a2::start(bias);
            }
            t[4 + cin..][..4].copy_from_slice(&[
                shared.m as u32,
                shared.ra as u32,
                shared.s,
                shared.pre,
            ]);
        }
        let table = &table[..groups * gw];
        for r in 0..rows {
            let mut s0 = 0;
            while s0 < row_len {
                let n = strip.min(row_len - s0);
                let Some(x) = input.get((r * s_h * in_w + s0 * s_w) * cin..) else {
                    return err("pointwise input row");
                };
                let geometry = a2::PackRun {
                    pixels: n,
                    cin,
                    x_step: s_w * cin,
                };
                if !a2::pack(x, geometry, &mut packed) {
                    return None;
                }
                let Some(y) = output.get_mut((r * out_w + s0) * cout + c0..) else {
                    return err("pointwise output row");
                };
                if !a2::pointwise(&packed, table, groups, (n, cin), y, cout) {
                    return err("pointwise pixels outside their tensors");
                }
                s0 += n;
            }
        }
        c0 += 4 * groups;
    }
    Some(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{owned, params};
    use super::super::{conv2d_pointwise, conv2d_reference, pointwise_stage};
    use super::*;
    use crate::ops::test_cases::{end_codes, input_shape, output_shape, pick, weight_zero_point};
    use crate::test_rng::XorShift32;
    use shared_format::{Clamp, Shape, WeightScheme, Window};

    /// The 2-bit kernel (on the portable model of its instructions) against the reference
    /// kernel, output for output: 2-bit codes in, 2-bit weights symmetric and affine, strides
    /// 1 and 2, every `C_in` it takes (and one it does not), biases from tiny to past its bound,
    /// left shifts (the stage's `2^pre`, applied to the field once it is out) among the rest,
    /// and now and then one input byte outside −2..=1, which sends the whole convolution to the
    /// general kernel. What it refuses, the general path still computes exactly.
    #[test]
    fn pointwise_a2_matches_reference() {
        let mut rng = XorShift32::new(0x0a2a_2018);
        let (mut taken, mut scaled, mut refused, mut out_of_range) = (0, 0, 0, 0);
        for case in 0..700 {
            let win = Window {
                stride_h: 1 + rng.below(2) as u8,
                stride_w: 1 + rng.below(2) as u8,
                ..Window::square(1, 1, 1, 0)
            };
            let cin = pick(&mut rng, &[8u16, 16, 32, 64, 24]);
            let s = input_shape(&mut rng, 7, cin);
            let cout = pick(&mut rng, &[4u16, 8, 12, 16, 32, 44]);
            let Some(os) = output_shape(win, s, cout) else {
                continue;
            };
            let w = end_codes(&mut rng, 2, cout as usize * cin as usize);
            let planted = case % 9 == 0;
            let mut x = end_codes(&mut rng, 2, s.h as usize * s.w as usize * cin as usize);
            if planted {
                let at = rng.below(x.len() as u32) as usize;
                x[at] = pick(&mut rng, &[2i8, -3, 127, -128]);
            }
            let z_x = pick(&mut rng, &[-2i8, -1, 0, 1, 5]);
            let span = pick(&mut rng, &[30, 600, 3_000, 100_000]);
            let bias: Vec<i32> = (0..cout)
                .map(|_| rng.below(2 * span + 1) as i32 - span as i32)
                .collect();
            let per_channel = case % 2 == 1;
            let rq: Vec<(i32, i8)> = (0..if per_channel { cout } else { 1 })
                .map(|_| {
                    let shift = rng.below(15) as i8 - 12;
                    ((1 << 30) | rng.below(1 << 30) as i32, shift)
                })
                .collect();
            let o = owned(&w, 2, &bias, &rq);
            let (scheme, z_w) = if per_channel {
                (WeightScheme::PerChannelSymmetric, 0)
            } else {
                (
                    WeightScheme::PerTensorAffine,
                    weight_zero_point(&mut rng, 2),
                )
            };
            let mut p = params(&o, 2, scheme, z_w, win, s, z_x, os);
            p.clamp = Clamp { min: -2, max: 1 };
            p.output_zero_point = rng.below(4) as i8 - 2;
            p.rounding = Rounding::Single;
            let mut scratch = vec![0i8; cin as usize];
            let mut want = vec![0i8; os.h as usize * os.w as usize * cout as usize];
            conv2d_reference(&p, &x, &mut want, &mut scratch).unwrap();

            let cin = cin as usize;
            let shape = PwShape {
                in_w: s.w as usize,
                cin,
                out_h: os.h as usize,
                out_w: os.w as usize,
                cout: cout as usize,
            };
            let stage = pointwise_stage(&p, cin, 2);
            let mut got = vec![55i8; want.len()];
            let all_staged = (0..cout as usize).all(|c| stage(c).is_some());
            match conv2d_pointwise_a2(&p, &x, &mut got, shape, 2, &stage) {
                Some(r) => {
                    r.unwrap();
                    // A planted byte may lie in a pixel a stride skips.
                    assert!(all_staged, "case {case} ran what it must refuse");
                    assert_eq!(
                        got, want,
                        "case {case}: C_in {cin} {win:?} z_x {z_x} z_w {z_w}"
                    );
                    taken += 1;
                    scaled += usize::from(rq.iter().any(|r| r.1 >= -1));
                }
                None if planted && a2::CINS.contains(&cin) => out_of_range += 1,
                None => {
                    assert!(
                        got.iter().all(|&v| v == 55),
                        "case {case} wrote while refusing"
                    );
                    refused += 1;
                }
            }
            // Through the dispatch, the result is the reference's whichever path it takes.
            let mut all = vec![55i8; want.len()];
            if let Some(r) = conv2d_pointwise(&p, &x, &mut all) {
                r.unwrap();
                assert_eq!(all, want, "case {case}: dispatch");
            }
        }
        assert!(
            taken > 100 && scaled > 20 && refused > 100 && out_of_range > 30,
            "{taken} taken ({scaled} scaled by 2^pre), {refused} refused, {out_of_range} out of range"
        );
    }

    /// The bounds it refuses on: 4-bit outputs, double rounding, a bias past the field, output
    /// stages that differ between channels.
    #[test]
    fn pointwise_a2_refuses_what_its_fields_cannot_hold() {
        let s = Shape::new(2, 2, 8);
        let w = [1i8; 64];
        let try_with_rq = |bias: i32, k: u32, rounding: Rounding, rq: &[(i32, i8)]| {
            let o = owned(&w, 2, &[bias; 8], rq);
            let mut p = params(
                &o,
                2,
                WeightScheme::PerChannelSymmetric,
                0,
                Window::square(1, 1, 1, 0),
                s,
                0,
                s,
            );
            p.rounding = rounding;
            let lim = 1i8 << (k - 1);
            p.clamp = Clamp {
                min: -lim,
                max: (i16::from(lim) - 1) as i8,
            };
            let shape = PwShape {
                in_w: 2,
                cin: 8,
                out_h: 2,
                out_w: 2,
                cout: 8,
            };
            let stage = pointwise_stage(&p, 8, k);
            conv2d_pointwise_a2(&p, &[1; 32], &mut [0; 32], shape, k, &stage).is_some()
        };
        let try_with = |bias, k, rounding| try_with_rq(bias, k, rounding, &[(1 << 30, -8)]);
        assert!(try_with(100, 2, Rounding::Single));
        assert!(!try_with(100, 4, Rounding::Single));
        assert!(!try_with(100, 2, Rounding::Double));
        // C_in 8, |w'| ≤ 2, |z_x| = 0: |b| + 8·2·2 ≤ 4095.
        assert!(try_with(4095 - 32, 2, Rounding::Single));
        assert!(!try_with(4095 - 31, 2, Rounding::Single));
        let mut rq = [(1 << 30, -8); 8];
        assert!(try_with_rq(100, 2, Rounding::Single, &rq));
        rq[5].1 = -9;
        assert!(!try_with_rq(100, 2, Rounding::Single, &rq));
    }
}

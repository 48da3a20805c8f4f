//! Random valid models for property tests, assembled only through [`ModelBuilder`].
//!
//! A model is a deterministic function of a `u64` seed and an op budget, so every failure prints
//! a `(seed, ops)` pair that rebuilds the same blob ([`generate`]). The proptest [`Strategy`]
//! ([`arb_model`]) draws those two numbers; shrinking lowers the op budget, and because ops are
//! drawn in order from one stream, a smaller budget mostly yields a prefix of the same model.
//!
//! Sizes are kept small (spatial ≤ 8, channels ≤ 6 per conv, a MAC budget per op) so thousands
//! of models run in seconds, while every parameter the format allows is reached: conv and
//! depthwise kernels 1..=16 (square and not), strides 1..=2, dilations 1..=4, asymmetric padding,
//! every weight × activation bit-width pair, both weight schemes, both rounding modes,
//! multipliers over the whole valid range (including 0), shifts from −31 to 30, softmax
//! with TFLM's parameters for input scales from 2^−16 to 2^6 (left shifts up to 31), and means
//! with TFLM's folded parameters (including ratios small enough that the fold's shift cap bites).
//!
//! Multipliers are mostly *calibrated*: the partial model is run (golden interpreter) on the
//! calibration input, and each weighted op's accumulator range is mapped onto its output range,
//! as a host exporter would, so outputs are not mostly saturated; 15% are random valid pairs.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use proptest::prelude::*;
use shared_format::le::i32s_to_le;
use shared_format::packing::pack;
use shared_format::{
    Add, AddInput, BuildError, Clamp, Concat, ConcatInput, Conv2d, DepthwiseConv2d, GlobalAvgPool,
    LeI32s, Linear, Mean, ModelBuilder, Op, Padding, Pool, Requant, Rounding, Shape, Softmax,
    TensorId, TensorSpec, WeightScheme, Weights, Window,
};

/// A small, fast, reproducible PRNG (SplitMix64); the generator needs nothing better.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        assert!(lo <= hi, "empty range {lo}..={hi}");
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// One element of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// TFLM's `QuantizeMultiplier`: the host's one implementation, which the blobs generated here
/// must share with the exporter and importer.
pub use shared_format::multiplier::quantize_multiplier;

/// TFLM's int8 softmax parameters (`CalculateSoftmaxParams`): `PreprocessSoftmaxScaling(beta,
/// input_scale, 5)` then `diff_min = −CalculateInputRadius(5, shift)`, in f64 as TFLM computes
/// them. Returns `(input_multiplier, input_left_shift, diff_min)`, or `None` where TFLM's
/// `QuantizeMultiplierGreaterThanOne` would abort (real multiplier ≤ 1).
pub fn tflm_softmax_params(
    beta: f32,
    input_scale: f32,
    rounding: Rounding,
) -> Option<(i32, i32, i32)> {
    // A single-rounding build caps the multiplier lower: its multiply cannot shift left by 31.
    let cap = match rounding {
        Rounding::Double => (1u64 << 31) as f64 - 1.0,
        Rounding::Single => (1u64 << 30) as f64 - 1.0,
    };
    let real = (beta as f64 * input_scale as f64 * (1u64 << (31 - 5)) as f64).min(cap);
    if real <= 1.0 {
        return None;
    }
    let (m, shift) = quantize_multiplier(real, rounding);
    let radius = (31.0 * (1u64 << (31 - 5)) as f64 / (1u64 << shift) as f64).floor();
    Some((m, shift, -(radius as i32)))
}

/// TFLM's int8 MEAN parameters (`QuantizedMeanOrSum`): `QuantizeMultiplier(s_in / s_out)` in
/// double, then the kernel's fold of `1/cells` written out from the C++:
/// `k = min(floor(log2 cells), 32, 31 + shift)`, `m = (m · 2^k) / cells`, `shift −= k`.
/// `None` where the result has no blob form (a multiplier flushed or folded to zero, a shift
/// outside [−31, 30]).
pub fn tflm_mean_params(
    input_scale: f32,
    output_scale: f32,
    cells: u64,
    rounding: Rounding,
) -> Option<(i32, i32)> {
    let real = input_scale as f64 / output_scale as f64;
    if !real.is_finite() || cells == 0 {
        return None;
    }
    let (m, shift) = quantize_multiplier(real, rounding);
    let log2 = (0..64).rev().find(|&b| cells >> b != 0).expect("cells > 0");
    let k = log2.min(32).min(31 + shift);
    if m == 0 || k < 0 {
        return None;
    }
    let folded = ((m as i128) << k) / cells as i128;
    let shift = shift - k;
    (folded > 0 && (-31..=30).contains(&shift)).then_some((folded as i32, shift))
}

/// What one generated model exercises; the bit-exactness suite sums these to prove coverage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    /// Op kinds (by name).
    pub ops: BTreeSet<&'static str>,
    /// (weight bits, input activation bits) of every weighted op.
    pub weight_act_bits: BTreeSet<(u8, u8)>,
    /// Weight schemes used.
    pub schemes: BTreeSet<&'static str>,
    /// Rounding modes used ("double" / "single").
    pub rounding: BTreeSet<&'static str>,
    /// Convolution kernel sizes (both axes) seen.
    pub kernels: BTreeSet<u8>,
    /// Dilations seen.
    pub dilations: BTreeSet<u8>,
    /// Strides seen.
    pub strides: BTreeSet<u8>,
    /// Whether some window had different padding before and after.
    pub asymmetric_padding: bool,
    /// Whether some conv or depthwise kernel was not square.
    pub non_square_kernel: bool,
    /// Softmax left shifts seen.
    pub softmax_shifts: BTreeSet<i8>,
    /// Whether some mean's TFLM fold had its shift capped at `31 + shift` (a ratio so small
    /// that the multiplier loses precision).
    pub mean_fold_capped: bool,
    /// Activation bit-widths seen.
    pub act_bits: BTreeSet<u8>,
}

impl Features {
    /// Adds `other` to `self`.
    pub fn merge(&mut self, other: &Features) {
        self.ops.extend(&other.ops);
        self.weight_act_bits.extend(&other.weight_act_bits);
        self.schemes.extend(&other.schemes);
        self.rounding.extend(&other.rounding);
        self.kernels.extend(&other.kernels);
        self.dilations.extend(&other.dilations);
        self.strides.extend(&other.strides);
        self.asymmetric_padding |= other.asymmetric_padding;
        self.non_square_kernel |= other.non_square_kernel;
        self.softmax_shifts.extend(&other.softmax_shifts);
        self.mean_fold_capped |= other.mean_fold_capped;
        self.act_bits.extend(&other.act_bits);
    }

    fn window(&mut self, w: &Window) {
        self.kernels.extend([w.kernel_h, w.kernel_w]);
        self.dilations.extend([w.dilation_h, w.dilation_w]);
        self.strides.extend([w.stride_h, w.stride_w]);
        let p = w.padding;
        self.asymmetric_padding |= p.top != p.bottom || p.left != p.right;
    }
}

/// A generated model with an input to run it on.
#[derive(Debug, Clone)]
pub struct GeneratedModel {
    /// Seed it was generated from.
    pub seed: u64,
    /// Op budget it was generated with.
    pub max_ops: usize,
    /// The blob.
    pub blob: Vec<u8>,
    /// A valid input.
    pub input: Vec<i8>,
    /// What it exercises.
    pub features: Features,
    /// One line per op, for failure messages.
    pub description: String,
}

/// Limits of the generator.
#[derive(Debug, Clone, Copy)]
pub struct GenConfig {
    /// Most top-level ops drawn (partners for Add/Concat come on top).
    pub max_ops: usize,
    /// Largest height or width of any tensor.
    pub max_spatial: u16,
    /// Largest channel count a conv or linear produces.
    pub max_channels: u16,
    /// Most multiply-accumulates one op may do (keeps thousands of cases fast).
    pub mac_budget: u64,
}

impl Default for GenConfig {
    fn default() -> Self {
        Self {
            max_ops: 6,
            max_spatial: 8,
            max_channels: 6,
            mac_budget: 40_000,
        }
    }
}

/// Proptest strategy over random valid models.
pub fn arb_model(config: GenConfig) -> impl Strategy<Value = GeneratedModel> {
    (any::<u64>(), 1..=config.max_ops).prop_filter_map(
        "the builder refused the generated model",
        move |(seed, ops)| {
            generate(
                seed,
                GenConfig {
                    max_ops: ops,
                    ..config
                },
            )
            .ok()
        },
    )
}

/// Builds the model of `seed` (deterministic).
pub fn generate(seed: u64, config: GenConfig) -> Result<GeneratedModel, BuildError> {
    let mut g = Gen::new(seed, config);
    let steps = g.rng.range(1, config.max_ops as i64) as usize;
    for _ in 0..steps {
        g.step()?;
    }
    if g.rng.chance(0.25) {
        let x = g.current;
        g.linear(x)?;
    }
    // A classifier's usual last op: probabilities over the logits.
    if g.rng.chance(0.25) {
        let x = g.current;
        g.softmax(x)?;
    }
    let output = g.current;
    let blob = g.b.finish(output, 0.1)?;
    // Mostly the calibration input; sometimes a fresh one the multipliers were not fitted to.
    let input = if g.rng.chance(0.7) {
        g.input.clone()
    } else {
        let spec = g.b.spec(0).expect("input");
        random_input(&mut g.rng, spec)
    };
    Ok(GeneratedModel {
        seed,
        max_ops: config.max_ops,
        blob,
        input,
        features: g.features,
        description: g.desc,
    })
}

/// Random values inside a tensor's bit range; sometimes all at one extreme.
pub fn random_input(rng: &mut Rng, spec: TensorSpec) -> Vec<i8> {
    let n = spec.shape.elements() as usize;
    let (lo, hi) = range_of(spec.bits);
    match rng.below(50) {
        0 => vec![lo as i8; n],
        1 => vec![hi as i8; n],
        _ => (0..n).map(|_| rng.range(lo, hi) as i8).collect(),
    }
}

fn range_of(bits: u8) -> (i64, i64) {
    (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1)
}

struct Gen {
    rng: Rng,
    config: GenConfig,
    b: ModelBuilder,
    rounding: Rounding,
    /// Every tensor produced so far (including the input), with its spec.
    tensors: Vec<(TensorId, TensorSpec)>,
    current: TensorId,
    features: Features,
    desc: String,
    /// The calibration input and every tensor's values on it (what a host calibrates on).
    input: Vec<i8>,
    values: Vec<Vec<i8>>,
}

/// Everything a weighted op needs, owned so the op can borrow it.
struct WeightSet {
    bits: u8,
    scheme: WeightScheme,
    zero_point: i8,
    packed: Vec<u8>,
    bias: Vec<u8>,
    multipliers: Vec<u8>,
    shifts: Vec<u8>,
}

impl WeightSet {
    fn weights(&self) -> Weights<'_> {
        Weights {
            bits: self.bits,
            scheme: self.scheme,
            zero_point: self.zero_point,
            data: &self.packed,
        }
    }

    fn requant(&self) -> Requant<'_> {
        Requant {
            multipliers: LeI32s::new(&self.multipliers),
            shifts: &self.shifts,
        }
    }
}

impl Gen {
    fn new(seed: u64, config: GenConfig) -> Self {
        let mut rng = Rng::new(seed);
        let rounding = if rng.chance(0.5) {
            Rounding::Double
        } else {
            Rounding::Single
        };
        let shape = Shape::new(
            rng.range(1, config.max_spatial as i64) as u16,
            rng.range(1, config.max_spatial as i64) as u16,
            rng.range(1, 4) as u16,
        );
        let input = Self::act_spec_with(&mut rng, shape);
        let mut b = ModelBuilder::new(input, 0.05);
        b.rounding(rounding);
        let mut features = Features::default();
        features.rounding.insert(match rounding {
            Rounding::Double => "double",
            Rounding::Single => "single",
        });
        features.act_bits.insert(input.bits);
        let desc = format!(
            "seed {seed:#x}: {rounding:?} rounding, input {}x{}x{} a{} z{}\n",
            shape.h, shape.w, shape.c, input.bits, input.zero_point
        );
        let values = random_input(&mut rng, input);
        Self {
            rng,
            config,
            b,
            rounding,
            tensors: vec![(0, input)],
            current: 0,
            features,
            desc,
            input: values.clone(),
            values: vec![values],
        }
    }

    fn act_spec_with(rng: &mut Rng, shape: Shape) -> TensorSpec {
        let bits = if rng.chance(0.9) {
            rng.pick(&[2u8, 4, 8])
        } else {
            rng.range(2, 8) as u8
        };
        let (lo, hi) = range_of(bits);
        // Mostly near the middle as calibration would put it; sometimes at either extreme.
        let zero_point = match rng.below(12) {
            0..=1 => 0,
            2 => lo,
            3 => hi,
            _ => rng.range(lo / 2, hi / 2),
        } as i8;
        TensorSpec {
            shape,
            zero_point,
            bits,
        }
    }

    fn spec(&self, id: TensorId) -> TensorSpec {
        self.b.spec(id).expect("declared tensor")
    }

    fn clamp_for(&mut self, spec: TensorSpec) -> Clamp {
        let (lo, hi) = range_of(spec.bits);
        let z = spec.zero_point as i64;
        let (min, max) = match self.rng.below(20) {
            0..=13 => (lo, hi),
            14..=16 => (z, hi), // ReLU
            _ => (self.rng.range(lo, z), self.rng.range(z, hi)),
        };
        Clamp {
            min: min as i8,
            max: max as i8,
        }
    }

    /// Declares an output tensor, pushes the op, makes it current.
    fn emit(
        &mut self,
        op: &Op<'_>,
        spec: TensorSpec,
        line: String,
    ) -> Result<TensorId, BuildError> {
        let id = self.b.push(op)?;
        debug_assert_eq!(self.spec(id), spec);
        // Run the partial model so later ops can be calibrated on real activations.
        let blob = self.b.finish(id, 1.0)?;
        let model = shared_format::Model::from_bytes(&blob)?;
        self.values = crate::golden::run_all(&model, &self.input).expect("valid input");
        self.tensors.push((id, spec));
        self.current = id;
        self.features.ops.insert(op.kind().name());
        self.features.act_bits.insert(spec.bits);
        let _ = writeln!(
            self.desc,
            "  t{id} = {line} -> {}x{}x{} a{} z{} clamp[{}, {}]",
            spec.shape.h,
            spec.shape.w,
            spec.shape.c,
            spec.bits,
            spec.zero_point,
            op.clamp().min,
            op.clamp().max
        );
        Ok(id)
    }

    /// Picks the input of a unary op: mostly the latest tensor, sometimes an earlier one (a
    /// branch, which keeps that tensor alive longer in the memory plan).
    fn pick_input(&mut self) -> TensorId {
        if self.rng.chance(0.75) {
            self.current
        } else {
            self.tensors[self.rng.below(self.tensors.len() as u64) as usize].0
        }
    }

    fn step(&mut self) -> Result<(), BuildError> {
        let x = self.pick_input();
        match self.rng.below(18) {
            0..=3 => self.conv(x, None).map(drop),
            4..=5 => self.depthwise(x, None).map(drop),
            6 => self.pool(x, false, None).map(drop),
            7 => self.pool(x, true, None).map(drop),
            8 => self.global_avg_pool(x).map(drop),
            9..=10 => self.add(x).map(drop),
            11..=12 => self.concat(x).map(drop),
            13..=15 => self.linear(x).map(drop),
            16 => self.mean(x).map(drop),
            // Softmax over any tensor's channels: each position normalised on its own.
            _ => self.softmax(x).map(drop),
        }
    }

    // -- geometry -------------------------------------------------------------------------

    /// Padding before/after along one axis for an input of `len` and an effective kernel
    /// `eff`, such that the output length is in 1..=cap; `None` if this kernel cannot fit.
    fn pads(&mut self, len: i64, eff: i64, stride: i64, cap: i64) -> Option<(u8, u8)> {
        let min_total = (eff - len).max(0);
        let max_total = (2 * (eff - 1)).min((cap - 1) * stride + eff - len);
        if min_total > max_total {
            return None;
        }
        let total = match self.rng.below(3) {
            0 => min_total,
            1 => (eff - 1).clamp(min_total, max_total), // "same"-like
            _ => self.rng.range(min_total, max_total),
        };
        let before_lo = (total - (eff - 1)).max(0);
        let before_hi = total.min(eff - 1);
        let before = match self.rng.below(3) {
            0 => (total / 2).clamp(before_lo, before_hi),
            _ => self.rng.range(before_lo, before_hi),
        };
        let p = (before as u8, (total - before) as u8);
        // Padding must also stay below 256 cells and the effective kernel; both hold here.
        Some(p)
    }

    /// A window with kernel in `kmin..=kmax` and dilation ≤ `dmax` that fits `h × w` and keeps
    /// the output within the spatial cap and `macs_per_cell × out_cells ≤ budget`.
    fn window(
        &mut self,
        h: u16,
        w: u16,
        kmin: u8,
        kmax: u8,
        dmax: u8,
        macs_per_tap: u64,
    ) -> Window {
        let cap = self.config.max_spatial as i64;
        for _ in 0..32 {
            let kh = self.rng.range(kmin as i64, kmax as i64) as u8;
            let kw = if self.rng.chance(0.6) {
                kh
            } else {
                self.rng.range(kmin as i64, kmax as i64) as u8
            };
            let stride_h = self.rng.range(1, 2) as u8;
            let stride_w = if self.rng.chance(0.7) {
                stride_h
            } else {
                self.rng.range(1, 2) as u8
            };
            let dil = |rng: &mut Rng| {
                if dmax == 1 || rng.chance(0.5) {
                    1
                } else {
                    rng.range(2, dmax as i64) as u8
                }
            };
            let dilation_h = dil(&mut self.rng);
            let dilation_w = dil(&mut self.rng);
            let eff_h = (kh as i64 - 1) * dilation_h as i64 + 1;
            let eff_w = (kw as i64 - 1) * dilation_w as i64 + 1;
            let Some((top, bottom)) = self.pads(h as i64, eff_h, stride_h as i64, cap) else {
                continue;
            };
            let Some((left, right)) = self.pads(w as i64, eff_w, stride_w as i64, cap) else {
                continue;
            };
            let window = Window {
                kernel_h: kh,
                kernel_w: kw,
                stride_h,
                stride_w,
                dilation_h,
                dilation_w,
                padding: Padding {
                    top,
                    left,
                    bottom,
                    right,
                },
            };
            let oh = window.output_h(h as u32).expect("fits") as u64;
            let ow = window.output_w(w as u32).expect("fits") as u64;
            if oh * ow * kh as u64 * kw as u64 * macs_per_tap <= self.config.mac_budget {
                return window;
            }
        }
        // Always fits: kernel kmin (1) with the extra cell padded.
        let pad = kmin - 1;
        Window {
            kernel_h: kmin,
            kernel_w: kmin,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            padding: Padding {
                top: pad,
                left: 0,
                bottom: 0,
                right: pad,
            },
        }
    }

    fn out_shape(window: &Window, x: Shape, c: u16) -> Shape {
        Shape::new(
            window.output_h(x.h as u32).expect("fits") as u16,
            window.output_w(x.w as u32).expect("fits") as u16,
            c,
        )
    }

    // -- quantization parameters ----------------------------------------------------------

    /// A (multiplier, shift) pair: mostly a realistic one derived from `real`, sometimes a
    /// random valid one anywhere in the format's range (`max_shift` is 0 for Add inputs).
    fn requant_pair(&mut self, real: f64, max_shift: i32) -> (i32, i32) {
        if self.rng.chance(0.85) {
            let jitter = (self.rng.unit() * -0.7).exp2();
            let (m, e) = quantize_multiplier(real * jitter, self.rounding);
            if (-31..=max_shift).contains(&e) {
                return (m, e);
            }
        }
        let m = match self.rng.below(20) {
            0 => 0,
            1 => 1 << 30,
            2 => i32::MAX,
            _ => self.rng.range(1 << 30, i32::MAX as i64) as i32,
        };
        let e = match self.rng.below(25) {
            0..=19 => self.rng.range(-12, 0) as i32,
            20..=22 => self.rng.range(1, 4) as i32,
            _ => self.rng.pick(&[-31, -30, 20, 29, 30]),
        };
        (m, e.min(max_shift))
    }

    /// Weights, bias and requantization for `cout` channels of `per_channel` weights each.
    /// `channel_fastest` selects depthwise's `[kh][kw][c]` layout (weight `k` of channel `c` at
    /// `k·cout + c`) instead of one contiguous filter per channel.
    fn weight_set(
        &mut self,
        cout: usize,
        per_channel: usize,
        channel_fastest: bool,
        in_bits: u8,
        out_bits: u8,
    ) -> WeightSet {
        let bits = self.rng.pick(&[2u8, 4, 8]);
        let (wlo, whi) = range_of(bits);
        let scheme = if self.rng.chance(0.5) {
            WeightScheme::PerTensorAffine
        } else {
            WeightScheme::PerChannelSymmetric
        };
        let zero_point = match scheme {
            WeightScheme::PerChannelSymmetric => 0,
            WeightScheme::PerTensorAffine => loop {
                let z = self.rng.range(wlo, whi);
                if z != 0 || self.rng.chance(0.1) {
                    break z as i8;
                }
            },
        };
        let extreme = self.rng.chance(0.05);
        let values: Vec<i8> = (0..cout * per_channel)
            .map(|_| {
                if extreme {
                    wlo as i8
                } else {
                    self.rng.range(wlo, whi) as i8
                }
            })
            .collect();
        let packed = pack(&values, bits).expect("values in range");

        // A typical |acc|, to aim realistic multipliers at the output range.
        let typical = (per_channel as f64).sqrt()
            * (1u64 << (bits - 1)) as f64
            * (1u64 << (in_bits - 1)) as f64
            / 2.0
            + 1.0;
        let real = (1u64 << (out_bits - 1)) as f64 / typical;
        let _ = (real, out_bits);

        // Biases within the validator's accumulator bound; in a few ops right at it.
        let zw = (zero_point as i64).abs();
        let mode = self.rng.below(20);
        let bias: Vec<i32> = (0..cout)
            .map(|c| {
                let bound: i64 = (0..per_channel)
                    .map(|k| {
                        let w = if channel_fastest {
                            values[k * cout + c]
                        } else {
                            values[c * per_channel + k]
                        };
                        ((w as i64).abs() + zw) * 255
                    })
                    .sum();
                let room = i32::MAX as i64 - bound;
                let b = match mode {
                    0..=16 => self.rng.range(-(typical as i64), typical as i64),
                    17 => self.rng.range(-(1 << 20), 1 << 20),
                    18 => self.rng.range(-room, room),
                    _ => self.rng.pick(&[-room, room, 0]),
                };
                b.clamp(-room, room) as i32
            })
            .collect();
        WeightSet {
            bits,
            scheme,
            zero_point,
            packed,
            bias: i32s_to_le(&bias),
            multipliers: Vec::new(),
            shifts: Vec::new(),
        }
    }

    /// The accumulators of weighted `op` (reading `x`) on the calibration input.
    fn accumulators(&self, op: &Op<'_>, x: TensorId, out: TensorSpec) -> Vec<i64> {
        let xs = self.spec(x);
        crate::golden::accumulators(
            op,
            &self.values[x as usize],
            xs.shape,
            xs.zero_point,
            out.shape,
        )
        .expect("weighted op")
    }

    /// Fills in the requantization of `ws` from the op's accumulators on the calibration
    /// input, as a host's calibration would: each channel's (or the tensor's) accumulator range
    /// maps onto the output's bit range, and usually the output zero point is re-centred to
    /// match. Returns the (possibly re-centred) output spec.
    fn calibrate(&mut self, ws: &mut WeightSet, acc: &[i64], out: TensorSpec) -> TensorSpec {
        let cout = out.shape.c as usize;
        let (lo, hi) = range_of(out.bits);
        let entries = match ws.scheme {
            WeightScheme::PerTensorAffine => 1,
            WeightScheme::PerChannelSymmetric => cout,
        };
        let mut centres = Vec::new();
        for e in 0..entries {
            let selected = || {
                acc.iter()
                    .enumerate()
                    .filter(move |(i, _)| entries == 1 || i % cout == e)
                    .map(|(_, &a)| a)
            };
            let amin = selected().min().unwrap_or(0);
            let amax = selected().max().unwrap_or(0);
            let real = (hi - lo) as f64 / (amax - amin).max(1) as f64;
            let (m, e) = self.requant_pair(real, 30);
            centres.push((amin + amax) as f64 / 2.0 * m as f64 * (e as f64 - 31.0).exp2());
            ws.multipliers.extend_from_slice(&m.to_le_bytes());
            ws.shifts.push(e as i8 as u8);
        }
        if self.rng.chance(0.2) {
            return out;
        }
        let centre = centres.iter().sum::<f64>() / centres.len() as f64;
        let zero_point = ((lo + hi) as f64 / 2.0 - centre)
            .round()
            .clamp(lo as f64, hi as f64) as i8;
        TensorSpec { zero_point, ..out }
    }

    fn note_weights(&mut self, ws: &WeightSet, in_bits: u8) {
        self.features.weight_act_bits.insert((ws.bits, in_bits));
        self.features.schemes.insert(match ws.scheme {
            WeightScheme::PerTensorAffine => "per_tensor_affine",
            WeightScheme::PerChannelSymmetric => "per_channel_symmetric",
        });
    }

    fn describe_weights(ws: &WeightSet) -> String {
        let m: Vec<i32> = LeI32s::new(&ws.multipliers).iter().collect();
        let e: Vec<i8> = ws.shifts.iter().map(|&s| s as i8).collect();
        format!(
            "w{} {:?} zw{} m{:?} e{:?}",
            ws.bits, ws.scheme, ws.zero_point, m, e
        )
    }

    // -- ops ------------------------------------------------------------------------------

    /// Largest kernel side for the next conv or depthwise: mostly the 1..=7 of most networks,
    /// a quarter of the time anything format 1.2 allows (up to 16).
    fn conv_kernel_max(&mut self) -> u8 {
        if self.rng.chance(0.25) { 16 } else { 7 }
    }

    fn note_conv_window(&mut self, window: &Window) {
        self.features.window(window);
        self.features.non_square_kernel |= window.kernel_h != window.kernel_w;
    }

    fn conv(&mut self, x: TensorId, cout: Option<u16>) -> Result<TensorId, BuildError> {
        let xs = self.spec(x);
        let cout =
            cout.unwrap_or_else(|| self.rng.range(1, self.config.max_channels as i64) as u16);
        let kmax = self.conv_kernel_max();
        let window = self.window(
            xs.shape.h,
            xs.shape.w,
            1,
            kmax,
            4,
            xs.shape.c as u64 * cout as u64,
        );
        let out = Self::act_spec_with(&mut self.rng, Self::out_shape(&window, xs.shape, cout));
        let per_channel = window.kernel_h as usize * window.kernel_w as usize * xs.shape.c as usize;
        let mut ws = self.weight_set(cout as usize, per_channel, false, xs.bits, out.bits);
        let probe = conv_op(x, x, window, &ws, Clamp { min: 0, max: 0 });
        let acc = self.accumulators(&probe, x, out);
        let out = self.calibrate(&mut ws, &acc, out);
        let id = self.b.tensor(out);
        let clamp = self.clamp_for(out);
        let op = conv_op(x, id, window, &ws, clamp);
        self.note_weights(&ws, xs.bits);
        self.note_conv_window(&window);
        let line = format!("conv2d(t{x}) {window:?} {}", Self::describe_weights(&ws));
        self.emit(&op, out, line)
    }

    fn depthwise(&mut self, x: TensorId, fixed: Option<Window>) -> Result<TensorId, BuildError> {
        let xs = self.spec(x);
        let window = match fixed {
            Some(w) => w,
            None => {
                let kmax = self.conv_kernel_max();
                self.window(xs.shape.h, xs.shape.w, 1, kmax, 4, xs.shape.c as u64)
            }
        };
        let c = xs.shape.c;
        let out = Self::act_spec_with(&mut self.rng, Self::out_shape(&window, xs.shape, c));
        let per_channel = window.kernel_h as usize * window.kernel_w as usize;
        let mut ws = self.weight_set(c as usize, per_channel, true, xs.bits, out.bits);
        let probe = depthwise_op(x, x, window, &ws, Clamp { min: 0, max: 0 });
        let acc = self.accumulators(&probe, x, out);
        let out = self.calibrate(&mut ws, &acc, out);
        let id = self.b.tensor(out);
        let clamp = self.clamp_for(out);
        let op = depthwise_op(x, id, window, &ws, clamp);
        self.note_weights(&ws, xs.bits);
        self.note_conv_window(&window);
        let line = format!("depthwise(t{x}) {window:?} {}", Self::describe_weights(&ws));
        self.emit(&op, out, line)
    }

    fn pool(
        &mut self,
        x: TensorId,
        avg: bool,
        fixed: Option<Window>,
    ) -> Result<TensorId, BuildError> {
        let xs = self.spec(x);
        let window = fixed
            .unwrap_or_else(|| self.window(xs.shape.h, xs.shape.w, 1, 3, 1, xs.shape.c as u64));
        // Input and output share scale and zero point.
        let out = TensorSpec {
            shape: Self::out_shape(&window, xs.shape, xs.shape.c),
            ..xs
        };
        let id = self.b.tensor(out);
        let clamp = self.clamp_for(out);
        let pool = Pool {
            input: x,
            output: id,
            window,
            clamp,
        };
        let op = if avg {
            Op::AvgPool(pool)
        } else {
            Op::MaxPool(pool)
        };
        self.features.window(&window);
        let line = format!("{}(t{x}) {window:?}", op.kind().name());
        self.emit(&op, out, line)
    }

    fn global_avg_pool(&mut self, x: TensorId) -> Result<TensorId, BuildError> {
        let xs = self.spec(x);
        let out = TensorSpec {
            shape: Shape::new(1, 1, xs.shape.c),
            ..xs
        };
        let id = self.b.tensor(out);
        let clamp = self.clamp_for(out);
        let op = Op::GlobalAvgPool(GlobalAvgPool {
            input: x,
            output: id,
            clamp,
        });
        self.emit(&op, out, format!("global_avg_pool(t{x})"))
    }

    /// Softmax over `x`'s channels. Mostly the parameters TFLM derives from a random input scale
    /// (realistic logit scales most of the time, anything from 2^−16 to 2^6 otherwise, now and
    /// then a β ≠ 1); sometimes any valid triple, so every `diff_min` cut-off is reached.
    fn softmax(&mut self, x: TensorId) -> Result<TensorId, BuildError> {
        let xs = self.spec(x);
        let out = TensorSpec {
            shape: xs.shape,
            zero_point: -128,
            bits: 8,
        };
        let max_shift = match self.rounding {
            Rounding::Double => 31,
            Rounding::Single => 30,
        };
        let tflm = if self.rng.chance(0.85) {
            let log2_scale = if self.rng.chance(0.7) {
                self.rng.unit() * 7.0 - 7.0
            } else {
                self.rng.unit() * 22.0 - 16.0
            };
            let beta = if self.rng.chance(0.8) {
                1.0
            } else {
                0.25 + self.rng.unit() * 2.0
            };
            tflm_softmax_params(beta as f32, log2_scale.exp2() as f32, self.rounding)
        } else {
            None
        };
        let (m, shift, diff_min) = tflm.unwrap_or_else(|| {
            let m = match self.rng.below(4) {
                0 => 1 << 30,
                1 => i32::MAX,
                _ => self.rng.range(1 << 30, i32::MAX as i64) as i32,
            };
            let shift = self.rng.range(0, max_shift) as i32;
            let radius = Softmax::input_radius(shift as i8) as i64;
            let diff_min = match self.rng.below(3) {
                0 => -radius,
                1 => 0,
                _ => self.rng.range(-radius.min(300), 0),
            };
            (m, shift, diff_min as i32)
        });
        let id = self.b.tensor(out);
        let op = Op::Softmax(Softmax {
            input: x,
            output: id,
            input_multiplier: m,
            input_left_shift: shift as i8,
            diff_min,
        });
        self.features.softmax_shifts.insert(shift as i8);
        let line = format!("softmax(t{x}) m {m} shift {shift} diff_min {diff_min}");
        self.emit(&op, out, line)
    }

    /// Mean over `x`'s rows and columns into an 8-bit `1×1×C`. Mostly TFLM's parameters for a
    /// random scale ratio: near what keeps the mean's range (`2^(8 − bits)` for a `bits`-wide
    /// input), now and then one so small (2^−31 to 2^−25) that TFLM's fold caps its shift, or
    /// large; sometimes any valid pair, so extreme multipliers and shifts (wrapping left shifts
    /// included) are reached.
    fn mean(&mut self, x: TensorId) -> Result<TensorId, BuildError> {
        let xs = self.spec(x);
        let cells = xs.shape.h as u64 * xs.shape.w as u64;
        let zero_point = match self.rng.below(10) {
            0 => -128,
            1 => 127,
            2 => 0,
            _ => self.rng.range(-64, 64),
        } as i8;
        let out = TensorSpec {
            shape: Shape::new(1, 1, xs.shape.c),
            zero_point,
            bits: 8,
        };
        let tflm = if self.rng.chance(0.85) {
            let log2_ratio = match self.rng.below(10) {
                0 => self.rng.unit() * 6.0 - 31.0,
                1 => self.rng.unit() * 40.0 - 20.0,
                _ => (8 - xs.bits) as f64 + self.rng.unit() * 4.0 - 2.0,
            };
            let s_in = (self.rng.unit() * 8.0 - 8.0).exp2() as f32;
            let s_out = (s_in as f64 / log2_ratio.exp2()) as f32;
            tflm_mean_params(s_in, s_out, cells, self.rounding).map(|(m, e)| {
                let (_, shift) = quantize_multiplier(s_in as f64 / s_out as f64, self.rounding);
                let log2 = 63 - cells.leading_zeros() as i32;
                (m, e, 31 + shift < log2)
            })
        } else {
            None
        };
        let (m, e, capped) = tflm.unwrap_or_else(|| {
            let m = match self.rng.below(5) {
                0 => 1,
                1 => i32::MAX,
                2 => self.rng.range(1, 1 << 30) as i32,
                _ => self.rng.range(1 << 30, i32::MAX as i64) as i32,
            };
            let e = match self.rng.below(4) {
                0 => self.rng.pick(&[-31, -30, 29, 30]),
                _ => self.rng.range(-12, 2) as i32,
            };
            (m, e, false)
        });
        let id = self.b.tensor(out);
        let op = Op::Mean(Mean {
            input: x,
            output: id,
            multiplier: m,
            shift: e as i8,
        });
        self.features.mean_fold_capped |= capped;
        let line = format!(
            "mean(t{x}) m {m} shift {e}{}",
            if capped { " (capped)" } else { "" }
        );
        self.emit(&op, out, line)
    }

    fn linear(&mut self, x: TensorId) -> Result<TensorId, BuildError> {
        let xs = self.spec(x);
        let k = xs.shape.elements() as usize;
        let max_out = (self.config.mac_budget / k as u64).clamp(1, 10) as i64;
        let cout = self.rng.range(1, max_out) as u16;
        let out = Self::act_spec_with(&mut self.rng, Shape::new(1, 1, cout));
        let mut ws = self.weight_set(cout as usize, k, false, xs.bits, out.bits);
        let probe = linear_op(x, x, &ws, Clamp { min: 0, max: 0 });
        let acc = self.accumulators(&probe, x, out);
        let out = self.calibrate(&mut ws, &acc, out);
        let id = self.b.tensor(out);
        let clamp = self.clamp_for(out);
        let op = linear_op(x, id, &ws, clamp);
        self.note_weights(&ws, xs.bits);
        let line = format!("linear(t{x}) {}", Self::describe_weights(&ws));
        self.emit(&op, out, line)
    }

    /// A new tensor of the same height and width as `x` (and the same channels unless
    /// `channels` says otherwise), as the second branch of an Add or Concat.
    fn partner(&mut self, x: TensorId, channels: Option<u16>) -> Result<TensorId, BuildError> {
        let same = Window::square(3, 1, 1, 1);
        match (channels, self.rng.below(4)) {
            (Some(c), _) => self.conv(x, Some(c)).and_then(|t| self.fit(t, x)),
            (None, 0) => self.depthwise(x, Some(same)),
            (None, 1) => {
                let avg = self.rng.chance(0.5);
                self.pool(x, avg, Some(same))
            }
            (None, _) => {
                let c = self.spec(x).shape.c;
                let id = self.conv_same(x, c)?;
                Ok(id)
            }
        }
    }

    /// A conv that keeps height and width (odd kernel, stride 1, "same" padding).
    fn conv_same(&mut self, x: TensorId, cout: u16) -> Result<TensorId, BuildError> {
        let xs = self.spec(x);
        let k = self.rng.pick(&[1u8, 3, 5]);
        let d = if k > 1 && self.rng.chance(0.3) { 2 } else { 1 };
        let pad = (k - 1) / 2 * d;
        let window = Window::square(k, 1, d, pad);
        let out = Self::act_spec_with(&mut self.rng, Self::out_shape(&window, xs.shape, cout));
        let per_channel = k as usize * k as usize * xs.shape.c as usize;
        let mut ws = self.weight_set(cout as usize, per_channel, false, xs.bits, out.bits);
        let probe = conv_op(x, x, window, &ws, Clamp { min: 0, max: 0 });
        let acc = self.accumulators(&probe, x, out);
        let out = self.calibrate(&mut ws, &acc, out);
        let id = self.b.tensor(out);
        let clamp = self.clamp_for(out);
        let op = conv_op(x, id, window, &ws, clamp);
        self.note_weights(&ws, xs.bits);
        self.features.window(&window);
        let line = format!("conv2d(t{x}) {window:?} {}", Self::describe_weights(&ws));
        self.emit(&op, out, line)
    }

    /// If `t` does not have `like`'s height and width, replaces it by a same-shape conv of
    /// `like` with `t`'s channel count (the random conv did not keep the shape).
    fn fit(&mut self, t: TensorId, like: TensorId) -> Result<TensorId, BuildError> {
        let (ts, ls) = (self.spec(t).shape, self.spec(like).shape);
        if (ts.h, ts.w) == (ls.h, ls.w) {
            Ok(t)
        } else {
            self.conv_same(like, ts.c)
        }
    }

    fn add(&mut self, x: TensorId) -> Result<TensorId, BuildError> {
        let xs = self.spec(x);
        let candidates: Vec<TensorId> = self
            .tensors
            .iter()
            .filter(|(id, s)| *id != x && s.shape == xs.shape)
            .map(|(id, _)| *id)
            .collect();
        let y = match self.rng.below(10) {
            0 => x, // x + x: both inputs alias one tensor
            1..=4 if !candidates.is_empty() => self.rng.pick(&candidates),
            _ => self.partner(x, None)?,
        };
        let ys = self.spec(y);
        let out = Self::act_spec_with(&mut self.rng, xs.shape);
        let (left_shift, ma, mb, mo) = if self.rng.chance(0.8) {
            // TFLM's Add setup (EDGE_ANCHORS §3.5) from random real scales.
            let scale = |rng: &mut Rng| (rng.unit() * 10.0 - 10.0).exp2();
            let (s1, s2) = (scale(&mut self.rng), scale(&mut self.rng));
            // Output scale so the sum's real range roughly fills the output's bit range.
            let half = |bits: u8| (1u64 << (bits - 1)) as f64;
            let span = s1 * half(xs.bits) + s2 * half(ys.bits);
            let sy = span / half(out.bits) * (self.rng.unit() * 2.0 - 1.0).exp2();
            let twice_max = 2.0 * s1.max(s2);
            let q = |real: f64| quantize_multiplier(real, self.rounding);
            let mo = q(twice_max / ((1u64 << 20) as f64 * sy));
            (20u8, q(s1 / twice_max), q(s2 / twice_max), mo)
        } else {
            let ls = self.rng.range(0, 20) as u8;
            let ma = self.requant_pair(0.5, 0);
            let mb = self.requant_pair(0.5, 0);
            let mo = self.requant_pair(1.0 / (1u64 << ls) as f64, 30);
            (ls, ma, mb, mo)
        };
        let id = self.b.tensor(out);
        let clamp = self.clamp_for(out);
        let op = Op::Add(Add {
            inputs: [
                AddInput {
                    tensor: x,
                    multiplier: ma.0,
                    shift: ma.1 as i8,
                },
                AddInput {
                    tensor: y,
                    multiplier: mb.0,
                    shift: mb.1 as i8,
                },
            ],
            output: id,
            left_shift,
            output_multiplier: mo.0,
            output_shift: mo.1 as i8,
            clamp,
        });
        let line = format!("add(t{x} {ma:?}, t{y} {mb:?}) << {left_shift}, out {mo:?}");
        self.emit(&op, out, line)
    }

    fn concat(&mut self, x: TensorId) -> Result<TensorId, BuildError> {
        let xs = self.spec(x);
        let n = self.rng.range(2, 4) as usize;
        let mut inputs = vec![x];
        while inputs.len() < n {
            let candidates: Vec<TensorId> = self
                .tensors
                .iter()
                .filter(|(_, s)| (s.shape.h, s.shape.w) == (xs.shape.h, xs.shape.w))
                .map(|(id, _)| *id)
                .collect();
            let t = if self.rng.chance(0.5) {
                self.rng.pick(&candidates) // may repeat a tensor: concat(x, x) is valid
            } else {
                let c = self.rng.range(1, 4) as u16;
                self.partner(x, Some(c))?
            };
            inputs.push(t);
        }
        let channels: u16 = inputs.iter().map(|&t| self.spec(t).shape.c).sum();
        let out = Self::act_spec_with(&mut self.rng, Shape::new(xs.shape.h, xs.shape.w, channels));
        let mut list = heapless::Vec::new();
        let mut line = String::from("concat(");
        for &t in &inputs {
            let half = |bits: u8| (1u64 << (bits - 1)) as f64;
            let ratio =
                half(out.bits) / half(self.spec(t).bits) * (self.rng.unit() * 2.0 - 1.0).exp2();
            let (m, e) = self.requant_pair(ratio, 30);
            list.push(ConcatInput {
                tensor: t,
                multiplier: m,
                shift: e as i8,
            })
            .expect("at most 4 inputs");
            let _ = write!(line, "t{t} ({m}, {e}), ");
        }
        line.push(')');
        let id = self.b.tensor(out);
        let clamp = self.clamp_for(out);
        let op = Op::Concat(Concat {
            inputs: list,
            output: id,
            clamp,
        });
        self.emit(&op, out, line)
    }
}

fn conv_op(x: TensorId, id: TensorId, window: Window, ws: &WeightSet, clamp: Clamp) -> Op<'_> {
    Op::Conv2d(Conv2d {
        input: x,
        output: id,
        window,
        weights: ws.weights(),
        bias: LeI32s::new(&ws.bias),
        requant: ws.requant(),
        clamp,
    })
}

fn depthwise_op(x: TensorId, id: TensorId, window: Window, ws: &WeightSet, clamp: Clamp) -> Op<'_> {
    Op::DepthwiseConv2d(DepthwiseConv2d {
        input: x,
        output: id,
        window,
        weights: ws.weights(),
        bias: LeI32s::new(&ws.bias),
        requant: ws.requant(),
        clamp,
    })
}

fn linear_op(x: TensorId, id: TensorId, ws: &WeightSet, clamp: Clamp) -> Op<'_> {
    Op::Linear(Linear {
        input: x,
        output: id,
        weights: ws.weights(),
        bias: LeI32s::new(&ws.bias),
        requant: ws.requant(),
        clamp,
    })
}

// ---------------------------------------------------------------------------------------------
// Fixed single-op models (benchmarks, corpus seeds).

/// A model of one Conv2d (`depthwise = false`) or DepthwiseConv2d on an `h × w × cin` input,
/// with random weights of `wbits` and activations of `abits`, per-channel symmetric weights
/// and realistic requantization.
#[allow(clippy::too_many_arguments)]
pub fn single_conv_model(
    seed: u64,
    h: u16,
    w: u16,
    cin: u16,
    cout: u16,
    window: Window,
    depthwise: bool,
    wbits: u8,
    abits: u8,
) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let act = |shape| TensorSpec {
        shape,
        zero_point: 0,
        bits: abits,
    };
    let input = act(Shape::new(h, w, cin));
    let mut b = ModelBuilder::new(input, 0.05);
    let cout = if depthwise { cin } else { cout };
    let oh = window.output_h(h as u32).expect("window fits") as u16;
    let ow = window.output_w(w as u32).expect("window fits") as u16;
    let out = act(Shape::new(oh, ow, cout));
    let per_channel = window.kernel_h as usize
        * window.kernel_w as usize
        * if depthwise { 1 } else { cin as usize };
    let fixed = fixed_weights(&mut rng, cout as usize, per_channel, wbits, abits);
    let id = b.tensor(out);
    let (lo, hi) = range_of(abits);
    let clamp = Clamp {
        min: lo as i8,
        max: hi as i8,
    };
    let op = if depthwise {
        Op::DepthwiseConv2d(DepthwiseConv2d {
            input: 0,
            output: id,
            window,
            weights: fixed.weights(),
            bias: LeI32s::new(&fixed.bias),
            requant: fixed.requant(),
            clamp,
        })
    } else {
        Op::Conv2d(Conv2d {
            input: 0,
            output: id,
            window,
            weights: fixed.weights(),
            bias: LeI32s::new(&fixed.bias),
            requant: fixed.requant(),
            clamp,
        })
    };
    b.push(&op).expect("push");
    b.finish(id, 0.1).expect("valid single-op model")
}

/// A model of one Linear layer `k → cout`.
pub fn single_linear_model(seed: u64, k: u16, cout: u16, wbits: u8, abits: u8) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let act = |shape| TensorSpec {
        shape,
        zero_point: 0,
        bits: abits,
    };
    let mut b = ModelBuilder::new(act(Shape::new(1, 1, k)), 0.05);
    let fixed = fixed_weights(&mut rng, cout as usize, k as usize, wbits, abits);
    let id = b.tensor(act(Shape::new(1, 1, cout)));
    let (lo, hi) = range_of(abits);
    let op = Op::Linear(Linear {
        input: 0,
        output: id,
        weights: fixed.weights(),
        bias: LeI32s::new(&fixed.bias),
        requant: fixed.requant(),
        clamp: Clamp {
            min: lo as i8,
            max: hi as i8,
        },
    });
    b.push(&op).expect("push");
    b.finish(id, 0.1).expect("valid single-op model")
}

fn fixed_weights(
    rng: &mut Rng,
    cout: usize,
    per_channel: usize,
    wbits: u8,
    abits: u8,
) -> WeightSet {
    let (wlo, whi) = range_of(wbits);
    let values: Vec<i8> = (0..cout * per_channel)
        .map(|_| rng.range(wlo, whi) as i8)
        .collect();
    let typical =
        (per_channel as f64).sqrt() * (1u64 << (wbits - 1)) as f64 * (1u64 << (abits - 1)) as f64
            / 2.0
            + 1.0;
    let real = (1u64 << (abits - 1)) as f64 / typical;
    let (mut mults, mut shifts) = (Vec::new(), Vec::new());
    for _ in 0..cout {
        let (m, e) = quantize_multiplier(real, Rounding::Double);
        mults.push(m);
        shifts.push(e as i8 as u8);
    }
    let bias: Vec<i32> = (0..cout).map(|_| rng.range(-1000, 1000) as i32).collect();
    WeightSet {
        bits: wbits,
        scheme: WeightScheme::PerChannelSymmetric,
        zero_point: 0,
        packed: pack(&values, wbits).expect("in range"),
        bias: i32s_to_le(&bias),
        multipliers: i32s_to_le(&mults),
        shifts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_multiplier_matches_tflm() {
        assert_eq!(quantize_multiplier(0.0, Rounding::Double), (0, 0));
        assert_eq!(quantize_multiplier(0.5, Rounding::Double), (1 << 30, 0));
        assert_eq!(quantize_multiplier(1.0, Rounding::Double), (1 << 30, 1));
        assert_eq!(quantize_multiplier(0.25, Rounding::Double), (1 << 30, -1));
        // 1/√2 → 1518500250 (EDGE_ANCHORS §3.7), shift 0.
        assert_eq!(
            quantize_multiplier(std::f64::consts::FRAC_1_SQRT_2, Rounding::Double),
            (1_518_500_250, 0)
        );
        // q just below 1 rounds up to 2^31 and renormalises.
        assert_eq!(
            quantize_multiplier(1.0 - 1e-12, Rounding::Double),
            (1 << 30, 1)
        );
        // Below 2^-32 flushes to zero.
        assert_eq!(quantize_multiplier(1e-12, Rounding::Double), (0, 0));
        // Single rounding caps the shift at 30.
        assert_eq!(quantize_multiplier(1e12, Rounding::Single), (i32::MAX, 30));
        assert_eq!(quantize_multiplier(1e12, Rounding::Double).1, 40);
    }

    #[test]
    fn generator_builds_valid_models_almost_always() {
        let mut ok = 0;
        for seed in 0..500u64 {
            if generate(seed, GenConfig::default()).is_ok() {
                ok += 1;
            }
        }
        assert!(ok >= 495, "only {ok}/500 generated models were valid");
    }

    /// The generator's TFLM softmax parameters agree with `Softmax::from_scale`, which the
    /// importer uses: two derivations of the same TFLM code (f64 `floor` here, integer shifts
    /// there) over scales from 2^−20 to 2^8.
    #[test]
    fn softmax_params_agree_with_the_format_helper() {
        let mut rng = Rng::new(7);
        for _ in 0..20_000 {
            let scale = (rng.unit() * 28.0 - 20.0).exp2() as f32;
            let beta = if rng.chance(0.5) {
                1.0
            } else {
                rng.unit() as f32 * 3.0
            };
            for rounding in [Rounding::Double, Rounding::Single] {
                let ours = tflm_softmax_params(beta, scale, rounding);
                let theirs = Softmax::from_scale(0, 1, beta, scale, rounding)
                    .map(|s| (s.input_multiplier, s.input_left_shift as i32, s.diff_min));
                assert_eq!(ours, theirs, "beta {beta} scale {scale} {rounding:?}");
            }
        }
        assert_eq!(
            tflm_softmax_params(1.0, 1.0 / 255.0, Rounding::Double),
            Some((1_077_952_640, 19, -3968))
        );
    }

    /// The generator's TFLM mean parameters agree with `Mean::from_scales`, which the importer
    /// uses: two writings of TFLM's fold (i128 and a bit search here, i64 and leading zeros
    /// there) over ratios from 2^−34 to 2^34 and every cell count a blob may have.
    #[test]
    fn mean_params_agree_with_the_format_helper() {
        let mut rng = Rng::new(11);
        let mut capped = 0;
        for _ in 0..20_000 {
            let s_in = (rng.unit() * 20.0 - 10.0).exp2() as f32;
            let s_out = (rng.unit() * 48.0 - 24.0).exp2() as f32;
            let cells = match rng.below(3) {
                0 => rng.range(1, 64),
                1 => rng.range(1, 4096),
                _ => rng.range(1, shared_format::MAX_MEAN_CELLS as i64),
            } as u64;
            for rounding in [Rounding::Double, Rounding::Single] {
                let ours = tflm_mean_params(s_in, s_out, cells, rounding);
                let theirs = Mean::from_scales(0, 1, s_in, s_out, cells, rounding)
                    .map(|m| (m.multiplier, m.shift as i32));
                assert_eq!(ours, theirs, "{s_in} / {s_out} over {cells} {rounding:?}");
                capped += ours.is_some_and(|(m, _)| m < 1 << 29) as u32;
            }
        }
        assert!(capped > 100, "the shift cap bit only {capped} times");
        // s_in / s_out = 1/2 over 7×7: QuantizeMultiplier(0.5) = (2^30, 0), then k = 5.
        assert_eq!(
            tflm_mean_params(0.5, 1.0, 49, Rounding::Double),
            Some((((1i64 << 35) / 49) as i32, -5))
        );
    }

    #[test]
    fn generation_is_deterministic() {
        let a = generate(42, GenConfig::default()).unwrap();
        let b = generate(42, GenConfig::default()).unwrap();
        assert_eq!(a.blob, b.blob);
        assert_eq!(a.input, b.input);
    }
}

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
//! with TFLM's parameters for input scales from 2^−16 to 2^6 (left shifts up to 31), means
//! with TFLM's folded parameters (including ratios small enough that the fold's shift cap bites),
//! muls of equal shapes and of broadcast gates, logistic and hard swish with TFLM's parameters
//! for random scales (and any valid ones), and tables.
//!
//! Multipliers are mostly *calibrated*: the partial model is run (golden interpreter) on the
//! calibration input, and each weighted op's accumulator range is mapped onto its output range,
//! as a host exporter would, so outputs are not mostly saturated; 15% are random valid pairs.
//!
//! [`ModelBuilder`]: shared_format::ModelBuilder

mod branches;
mod elementwise;
mod fixed;
mod geometry;
mod pooling;
mod quant;
mod rng;
mod softmax;
mod state;
mod tflm_params;
mod weighted;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use proptest::prelude::*;
use shared_format::{BuildError, Model, TensorSpec, Window};

pub use fixed::{single_conv_model, single_linear_model};
pub use quant::WeightSet;
pub use rng::Rng;
use state::Gen;
pub use tflm_params::{quantize_multiplier, tflm_mean_params, tflm_softmax_params};
pub use weighted::{conv_op, depthwise_op};

/// The name ([`OpKind::name`]) of every op kind the format has; the suites check that each one
/// is generated, or ran.
///
/// [`OpKind::name`]: shared_format::OpKind::name
pub const OP_KINDS: [&str; 14] = [
    "conv2d",
    "depthwise_conv2d",
    "max_pool",
    "avg_pool",
    "global_avg_pool",
    "add",
    "concat",
    "linear",
    "softmax",
    "mean",
    "mul",
    "logistic",
    "hard_swish",
    "table",
];

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
    /// Whether some mul broadcast a `1×1×C` gate over a larger map.
    pub mul_broadcast: bool,
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
        self.mul_broadcast |= other.mul_broadcast;
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

/// The spec of `model`'s input tensor, for [`random_input`].
pub fn input_spec(model: &Model<'_>) -> TensorSpec {
    let t = model.input_tensor();
    TensorSpec {
        shape: t.shape,
        zero_point: t.zero_point,
        bits: t.bits,
    }
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

//! The elementwise ops of formats 1.4 and 1.5: MUL (same shapes, or a `1×1×C` gate broadcast
//! over a map, in either operand order), LOGISTIC and HARD_SWISH, mostly with the parameters
//! TFLM's Prepare derives from random real scales, and tables of random values.

use shared_format::{
    BuildError, HardSwish, Logistic, MAX_MUL_SHIFT, Mul, Op, Rounding, Shape, TABLE_LEN, Table,
    TensorId, TensorSpec,
};

use super::range_of;
use super::state::Gen;

impl Gen {
    pub(super) fn mul(&mut self, x: TensorId) -> Result<TensorId, BuildError> {
        let xs = self.spec(x);
        let candidates: Vec<TensorId> = self
            .tensors
            .iter()
            .filter(|(id, s)| *id != x && s.shape == xs.shape)
            .map(|(id, _)| *id)
            .collect();
        let (a, b) = match self.rng.below(10) {
            0 => (x, x), // x²: both inputs alias one tensor
            1..=2 if !candidates.is_empty() => (x, self.rng.pick(&candidates)),
            3..=6 => {
                // A squeeze-and-excite gate: the map's global average, broadcast back over it.
                let gate = self.global_avg_pool(x)?;
                self.features.mul_broadcast |= (xs.shape.h, xs.shape.w) != (1, 1);
                if self.rng.chance(0.5) {
                    (x, gate)
                } else {
                    (gate, x)
                }
            }
            _ => (x, self.partner(x, None)?),
        };
        let (sa, sb) = (self.spec(a), self.spec(b));
        let shape = Shape::new(
            sa.shape.h.max(sb.shape.h),
            sa.shape.w.max(sb.shape.w),
            sa.shape.c.max(sb.shape.c),
        );
        let out = Self::act_spec_with(&mut self.rng, shape);
        // The centred product's range onto the output's, as calibration would put it.
        let half = |bits: u8| (1u64 << (bits - 1)) as f64;
        let ratio = half(out.bits) / (half(sa.bits) * half(sb.bits));
        let (multiplier, shift) = self.requant_pair(ratio, MAX_MUL_SHIFT as i32);
        let id = self.b.tensor(out);
        let clamp = self.clamp_for(out);
        let op = Op::Mul(Mul {
            inputs: [a, b],
            output: id,
            multiplier,
            shift: shift as i8,
            clamp,
        });
        let line = format!("mul(t{a}, t{b}) m {multiplier} shift {shift}");
        self.emit(&op, out, line)
    }

    /// The sigmoid, mostly with TFLM's parameters for an input scale from 2^−12 to 2^3 (every
    /// input saturating at the top of that range), sometimes any valid triple.
    pub(super) fn logistic(&mut self, x: TensorId) -> Result<TensorId, BuildError> {
        let xs = self.spec(x);
        let out = TensorSpec {
            shape: xs.shape,
            zero_point: -128,
            bits: 8,
        };
        let id = self.b.tensor(out);
        let tflm = if self.rng.chance(0.85) {
            let scale = (self.rng.unit() * 15.0 - 12.0).exp2() as f32;
            Logistic::from_scale(x, id, scale, self.rounding)
        } else {
            None
        };
        let op = tflm.unwrap_or_else(|| {
            let max_shift = match self.rounding {
                Rounding::Double => 31,
                Rounding::Single => 30,
            };
            let shift = self.rng.range(0, max_shift) as i8;
            let radius = Logistic::input_radius(shift) as i64;
            Logistic {
                input: x,
                output: id,
                input_multiplier: self.rng.range(1 << 30, i32::MAX as i64) as i32,
                input_left_shift: shift,
                input_range_radius: match self.rng.below(3) {
                    0 => radius,
                    1 => 0,
                    _ => self.rng.range(0, radius.min(300)),
                } as i32,
            }
        });
        let line = format!(
            "logistic(t{x}) m {} shift {} radius {}",
            op.input_multiplier, op.input_left_shift, op.input_range_radius
        );
        self.emit(&Op::Logistic(op), out, line)
    }

    /// Hard swish, mostly with TFLM's parameters for random input and output scales (both
    /// reluish exponent signs), sometimes any valid parameters.
    pub(super) fn hard_swish(&mut self, x: TensorId) -> Result<TensorId, BuildError> {
        let xs = self.spec(x);
        let mut out = Self::act_spec_with(&mut self.rng, xs.shape);
        out.bits = 8;
        let id = self.b.tensor(out);
        let tflm = if self.rng.chance(0.85) {
            let s_x = (self.rng.unit() * 12.0 - 10.0).exp2();
            let s_y = s_x * (self.rng.unit() * 8.0 - 5.0).exp2();
            HardSwish::from_scales(x, id, s_x as f32, s_y as f32, self.rounding)
        } else {
            None
        };
        let op = tflm.unwrap_or_else(|| {
            let mut multiplier = || match self.rng.below(8) {
                0 => 0,
                1 => i16::MAX,
                _ => self.rng.range(1 << 14, i16::MAX as i64) as i16,
            };
            let (reluish_multiplier, output_multiplier) = (multiplier(), multiplier());
            HardSwish {
                input: x,
                output: id,
                reluish_multiplier,
                reluish_shift: self.rng.range(-31, 31) as i8,
                output_multiplier,
                output_shift: self.rng.range(-31, 0) as i8,
            }
        });
        let line = format!(
            "hard_swish(t{x}) reluish ({}, {}) output ({}, {})",
            op.reluish_multiplier, op.reluish_shift, op.output_multiplier, op.output_shift
        );
        self.emit(&Op::HardSwish(op), out, line)
    }

    /// A table of random values inside the output's bit range: any function of the input byte.
    pub(super) fn table(&mut self, x: TensorId) -> Result<TensorId, BuildError> {
        let xs = self.spec(x);
        let out = Self::act_spec_with(&mut self.rng, xs.shape);
        let (lo, hi) = range_of(out.bits);
        let values: Vec<u8> = (0..TABLE_LEN)
            .map(|_| self.rng.range(lo, hi) as i8 as u8)
            .collect();
        let id = self.b.tensor(out);
        let op = Op::Table(Table {
            input: x,
            output: id,
            values: &values,
        });
        self.emit(&op, out, format!("table(t{x})"))
    }
}

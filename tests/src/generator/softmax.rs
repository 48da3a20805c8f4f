//! Softmax over channels, mostly with the parameters TFLM derives from a random input scale.

use shared_format::{BuildError, Op, Rounding, Softmax, TensorId, TensorSpec};

use super::state::Gen;
use super::tflm_softmax_params;

impl Gen {
    /// Softmax over `x`'s channels. Mostly the parameters TFLM derives from a random input scale
    /// (realistic logit scales most of the time, anything from 2^−16 to 2^6 otherwise, now and
    /// then a β ≠ 1); sometimes any valid triple, so every `diff_min` cut-off is reached.
    pub(super) fn softmax(&mut self, x: TensorId) -> Result<TensorId, BuildError> {
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
}

//! Unweighted reductions over rows and columns: max and average pools, global average pool, and
//! mean with TFLM's folded parameters.

use shared_format::{
    BuildError, GlobalAvgPool, Mean, Op, Pool, Shape, TensorId, TensorSpec, Window,
};

use super::state::Gen;
use super::{quantize_multiplier, tflm_mean_params};

impl Gen {
    pub(super) fn pool(
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

    pub(super) fn global_avg_pool(&mut self, x: TensorId) -> Result<TensorId, BuildError> {
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

    /// Mean over `x`'s rows and columns into an 8-bit `1×1×C`. Mostly TFLM's parameters for a
    /// random scale ratio: near what keeps the mean's range (`2^(8 − bits)` for a `bits`-wide
    /// input), now and then one so small (2^−31 to 2^−25) that TFLM's fold caps its shift, or
    /// large; sometimes any valid pair, so extreme multipliers and shifts (wrapping left shifts
    /// included) are reached.
    pub(super) fn mean(&mut self, x: TensorId) -> Result<TensorId, BuildError> {
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
}

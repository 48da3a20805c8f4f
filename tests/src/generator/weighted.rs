//! Weighted ops (conv, depthwise, linear): window, weights, calibration and emission.

use shared_format::{
    BuildError, Clamp, Conv2d, DepthwiseConv2d, LeI32s, Linear, Op, Shape, TensorId, Window,
};

use super::quant::WeightSet;
use super::state::Gen;

impl Gen {
    /// Largest kernel side for the next conv or depthwise: mostly the 1..=7 of most networks,
    /// a quarter of the time anything format 1.2 allows (up to 16).
    fn conv_kernel_max(&mut self) -> u8 {
        if self.rng.chance(0.25) { 16 } else { 7 }
    }

    fn note_conv_window(&mut self, window: &Window) {
        self.features.window(window);
        self.features.non_square_kernel |= window.kernel_h != window.kernel_w;
    }

    pub(super) fn conv(&mut self, x: TensorId, cout: Option<u16>) -> Result<TensorId, BuildError> {
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

    pub(super) fn depthwise(
        &mut self,
        x: TensorId,
        fixed: Option<Window>,
    ) -> Result<TensorId, BuildError> {
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

    pub(super) fn linear(&mut self, x: TensorId) -> Result<TensorId, BuildError> {
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

    /// A conv that keeps height and width (odd kernel, stride 1, "same" padding).
    pub(super) fn conv_same(&mut self, x: TensorId, cout: u16) -> Result<TensorId, BuildError> {
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
}

/// A conv of `x` into `id` with the weights of `ws`.
pub fn conv_op(x: TensorId, id: TensorId, window: Window, ws: &WeightSet, clamp: Clamp) -> Op<'_> {
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

/// A depthwise conv of `x` into `id` with the weights of `ws`.
pub fn depthwise_op(
    x: TensorId,
    id: TensorId,
    window: Window,
    ws: &WeightSet,
    clamp: Clamp,
) -> Op<'_> {
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

//! Multi-input ops (add, concat) and the partner branches they draw so that shapes match.

use std::fmt::Write as _;

use shared_format::{Add, AddInput, BuildError, Concat, ConcatInput, Op, Shape, TensorId, Window};

use super::state::Gen;
use super::{Rng, quantize_multiplier};

impl Gen {
    /// A new tensor of the same height and width as `x` (and the same channels unless
    /// `channels` says otherwise), as the second branch of an Add or Concat.
    pub(super) fn partner(
        &mut self,
        x: TensorId,
        channels: Option<u16>,
    ) -> Result<TensorId, BuildError> {
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

    pub(super) fn add(&mut self, x: TensorId) -> Result<TensorId, BuildError> {
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

    pub(super) fn concat(&mut self, x: TensorId) -> Result<TensorId, BuildError> {
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

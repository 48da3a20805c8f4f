//! Window geometry: kernels, strides, dilations and padding that fit the input, the spatial cap
//! and the MAC budget.

use shared_format::{Padding, Shape, Window};

use super::Rng;
use super::state::Gen;

impl Gen {
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
    pub(super) fn window(
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

    pub(super) fn out_shape(window: &Window, x: Shape, c: u16) -> Shape {
        Shape::new(
            window.output_h(x.h as u32).expect("fits") as u16,
            window.output_w(x.w as u32).expect("fits") as u16,
            c,
        )
    }
}

//! Channel concatenation with per-input requantization.
//!
//! TFLM requires every input to share the output's scale and zero point (a pure copy); format 1
//! lets each input carry its own multiplier, so one kernel serves both: input `i` lands in
//! channels `offset_i .. offset_i + C_i` of every output pixel as
//! `clamp(MBQM(x − z_i, m_i, e_i) + z_y)`. The interpreter calls [`concat_input`] once per input,
//! in channel order.

use shared_format::{Clamp, Rounding, TensorRecord};

use super::{KernelError, KernelResult};
use crate::requant::requantize;

/// One input of a concatenation and where its channels go.
#[derive(Debug, Clone, Copy)]
pub struct ConcatSource {
    /// Channels of this input.
    pub channels: usize,
    /// First output channel it fills.
    pub channel_offset: usize,
    /// Input zero point `z_i`.
    pub zero_point: i8,
    /// Q31 multiplier of `s_i / s_out`.
    pub multiplier: i32,
    /// Shift.
    pub shift: i32,
}

/// Parameters shared by every input of one concatenation.
#[derive(Debug, Clone, Copy)]
pub struct ConcatParams {
    /// Channels of the output.
    pub output_channels: usize,
    /// Output zero point.
    pub output_zero_point: i8,
    /// Output clamp.
    pub clamp: Clamp,
    /// Requantization rounding of the model.
    pub rounding: Rounding,
}

impl ConcatParams {
    /// The op's parameters for its output tensor `y`.
    pub fn new(op: &shared_format::Concat, y: &TensorRecord, rounding: Rounding) -> Self {
        ConcatParams {
            output_channels: y.shape.c as usize,
            output_zero_point: y.zero_point,
            clamp: op.clamp,
            rounding,
        }
    }
}

impl ConcatSource {
    /// Input `input`, tensor `x`, placed after `channel_offset` channels of the output.
    pub fn new(
        input: &shared_format::ConcatInput,
        x: &TensorRecord,
        channel_offset: usize,
    ) -> Self {
        ConcatSource {
            channels: x.shape.c as usize,
            channel_offset,
            zero_point: x.zero_point,
            multiplier: input.multiplier,
            shift: input.shift as i32,
        }
    }
}

/// Input elements from which [`concat_input`] tables the requantization of the 256 input values
/// (256 requantizations, then one lookup or a copy per element).
const TABLE_FROM: usize = 1024;

/// Writes one input's requantized channels into their slot of every output pixel.
pub fn concat_input(
    p: &ConcatParams,
    source: &ConcatSource,
    input: &[i8],
    output: &mut [i8],
) -> KernelResult {
    let (c, oc) = (source.channels, p.output_channels);
    let end = source
        .channel_offset
        .checked_add(c)
        .ok_or(KernelError("concat channel offset overflows"))?;
    if c == 0
        || end > oc
        || !output.len().is_multiple_of(oc)
        || !input.len().is_multiple_of(c)
        || input.len() / c != output.len() / oc
    {
        return Err(KernelError("concat shapes disagree"));
    }
    let requant = |x: i8| {
        requantize(
            x as i32 - source.zero_point as i32,
            source.multiplier,
            source.shift,
            p.output_zero_point,
            p.clamp,
            p.rounding,
        )
    };
    if input.len() >= TABLE_FROM {
        // The output depends only on the input byte: its 256 values once, then a lookup per
        // element, or a plain copy when every value maps to itself (shared scale and zero
        // point, TFLM's case).
        let mut table = [0i8; 256];
        for (i, t) in table.iter_mut().enumerate() {
            *t = requant(i as u8 as i8);
        }
        let identity = table.iter().enumerate().all(|(i, &t)| t == i as u8 as i8);
        for (x_px, y_px) in input.chunks_exact(c).zip(output.chunks_exact_mut(oc)) {
            let slot = y_px
                .get_mut(source.channel_offset..end)
                .ok_or(KernelError("concat channel slot"))?;
            if identity {
                slot.copy_from_slice(x_px);
            } else {
                for (y, &x) in slot.iter_mut().zip(x_px) {
                    *y = table[x as u8 as usize];
                }
            }
        }
        return Ok(());
    }
    for (x_px, y_px) in input.chunks_exact(c).zip(output.chunks_exact_mut(oc)) {
        let slot = y_px
            .get_mut(source.channel_offset..end)
            .ok_or(KernelError("concat channel slot"))?;
        for (y, &x) in slot.iter_mut().zip(x_px) {
            *y = requant(x);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_inputs_interleave_per_pixel() {
        let p = ConcatParams {
            output_channels: 3,
            output_zero_point: 2,
            clamp: Clamp {
                min: -128,
                max: 127,
            },
            rounding: Rounding::Double,
        };
        // Input a: 2 pixels × 1 channel, same scale (M = 1 as (2^30, 1)), z = 0.
        // Input b: 2 pixels × 2 channels, half the scale (M = 0.5), z = 1.
        let a = ConcatSource {
            channels: 1,
            channel_offset: 0,
            zero_point: 0,
            multiplier: 1 << 30,
            shift: 1,
        };
        let b = ConcatSource {
            channels: 2,
            channel_offset: 1,
            zero_point: 1,
            multiplier: 1 << 30,
            shift: 0,
        };
        let mut y = [0i8; 6];
        concat_input(&p, &a, &[5, -5], &mut y).unwrap();
        concat_input(&p, &b, &[11, -2, 0, 127], &mut y).unwrap();
        // b: (11−1)/2 = 5 → 7; (−2−1)/2 = −1.5 → −1 (SRDHM ties toward +∞) → 1;
        //    (0−1)/2 = −0.5 → 0 → 2; 126/2 = 63 → 65.
        assert_eq!(y, [7, 7, 1, -3, 2, 65]);
        assert!(concat_input(&p, &b, &[1, 2, 3], &mut y).is_err());
    }

    /// Large inputs take the table (or the copy): the same bytes as requantizing each element.
    #[test]
    fn tabled_inputs_match_per_element() {
        let x: Vec<i8> = (0..3 * TABLE_FROM)
            .map(|i| (i * 77 % 256) as u8 as i8)
            .collect();
        for (z, m, e, z_y, clamp) in [
            (0i8, 1 << 30, 1, 0i8, (-128i8, 127i8)),
            (3, 1 << 30, 1, 3, (-128, 127)),
            (1, 1 << 30, 0, 2, (-128, 127)),
            (-7, 1_500_000_000, 0, -4, (-100, 90)),
        ] {
            let p = ConcatParams {
                output_channels: 5,
                output_zero_point: z_y,
                clamp: Clamp {
                    min: clamp.0,
                    max: clamp.1,
                },
                rounding: Rounding::Single,
            };
            let src = ConcatSource {
                channels: 3,
                channel_offset: 1,
                zero_point: z,
                multiplier: m,
                shift: e,
            };
            let mut y = vec![0i8; x.len() / 3 * 5];
            concat_input(&p, &src, &x, &mut y).unwrap();
            for (px, y_px) in x.chunks_exact(3).zip(y.chunks_exact(5)) {
                for (&xv, &yv) in px.iter().zip(&y_px[1..4]) {
                    let want = requantize(xv as i32 - z as i32, m, e, z_y, p.clamp, p.rounding);
                    assert_eq!(yv, want);
                }
                assert_eq!((y_px[0], y_px[4]), (0, 0));
            }
        }
    }
}

//! Quantization parameters of weighted ops: random packed weights and biases, and
//! requantization calibrated on the partial model's accumulators as a host exporter would.

use shared_format::le::i32s_to_le;
use shared_format::packing::pack;
use shared_format::{LeI32s, Op, Requant, TensorId, TensorSpec, WeightScheme, Weights};

use super::state::Gen;
use super::{quantize_multiplier, range_of};

/// Everything a weighted op needs, owned so the op can borrow it ([`conv_op`],
/// [`depthwise_op`]).
///
/// [`conv_op`]: super::conv_op
/// [`depthwise_op`]: super::depthwise_op
pub struct WeightSet {
    /// Weight bit-width.
    pub bits: u8,
    /// Per-tensor affine or per-channel symmetric.
    pub scheme: WeightScheme,
    /// Weight zero point (0 for per-channel symmetric).
    pub zero_point: i8,
    /// The weights, packed at `bits`.
    pub packed: Vec<u8>,
    /// i32 bias per output channel, little-endian.
    pub bias: Vec<u8>,
    /// i32 requantization multipliers (one, or one per channel), little-endian.
    pub multipliers: Vec<u8>,
    /// Requantization shifts (as `i8`), one per multiplier.
    pub shifts: Vec<u8>,
}

impl WeightSet {
    /// The weights as an op borrows them.
    pub fn weights(&self) -> Weights<'_> {
        Weights {
            bits: self.bits,
            scheme: self.scheme,
            zero_point: self.zero_point,
            data: &self.packed,
        }
    }

    /// The requantization as an op borrows it.
    pub fn requant(&self) -> Requant<'_> {
        Requant {
            multipliers: LeI32s::new(&self.multipliers),
            shifts: &self.shifts,
        }
    }
}

impl Gen {
    /// A (multiplier, shift) pair: mostly a realistic one derived from `real`, sometimes a
    /// random valid one anywhere in the format's range (`max_shift` is 0 for Add inputs).
    pub(super) fn requant_pair(&mut self, real: f64, max_shift: i32) -> (i32, i32) {
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
    pub(super) fn weight_set(
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
    pub(super) fn accumulators(&self, op: &Op<'_>, x: TensorId, out: TensorSpec) -> Vec<i64> {
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
    pub(super) fn calibrate(
        &mut self,
        ws: &mut WeightSet,
        acc: &[i64],
        out: TensorSpec,
    ) -> TensorSpec {
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

    pub(super) fn note_weights(&mut self, ws: &WeightSet, in_bits: u8) {
        self.features.weight_act_bits.insert((ws.bits, in_bits));
        self.features.schemes.insert(match ws.scheme {
            WeightScheme::PerTensorAffine => "per_tensor_affine",
            WeightScheme::PerChannelSymmetric => "per_channel_symmetric",
        });
    }

    pub(super) fn describe_weights(ws: &WeightSet) -> String {
        let m: Vec<i32> = LeI32s::new(&ws.multipliers).iter().collect();
        let e: Vec<i8> = ws.shifts.iter().map(|&s| s as i8).collect();
        format!(
            "w{} {:?} zw{} m{:?} e{:?}",
            ws.bits, ws.scheme, ws.zero_point, m, e
        )
    }
}

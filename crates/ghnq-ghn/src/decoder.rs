//! Decoders (GHN_SPEC §2.5) plus tiling (§2.7) and the differentiable normalisation (§2.8).
//!
//! The ConvDecoder maps a node embedding to a `max_ch × max_ch × S × S` tensor, but only the kernel
//! positions `y < kh, x < kw` and the slots `o < min(O, max_ch)`, `i < min(I, max_ch)` are ever used
//! (top-left crop, then tiling), so only those are computed (§8.3): the first layer's columns for the
//! needed positions and the last layer's columns for the needed slots.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Int, Tensor, TensorData};

/// ConvDecoder: `F = ReLU(W_fc e)` as `4·hid × S × S`, then per position `W_2 ReLU(W_1 F)` → max_ch².
#[derive(Module, Debug)]
pub struct ConvDecoder {
    /// `W_fc`: hid → 4·hid·S² (output index `c·S² + y·S + x`).
    pub fc: Linear,
    /// `W_1` (a 1×1 conv): 4·hid → 8·hid.
    pub conv0: Linear,
    /// `W_2` (a 1×1 conv): 8·hid → max_ch² (output index `max_ch·o + i`).
    pub conv2: Linear,
    /// Classification-layer 1×1 conv over the max_ch output slots: max_ch → classes.
    pub class_layer_predictor: Linear,
    /// Spatial size S of the decoded map.
    #[module(skip)]
    pub max_sp: usize,
    /// Channel slots max_ch.
    #[module(skip)]
    pub max_ch: usize,
}

fn int_tensor(v: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), device)
}

impl ConvDecoder {
    /// Decoder for hidden size `hid`, `max_ch × max_ch × max_sp × max_sp` outputs, `classes` classes.
    pub fn new(
        hid: usize,
        max_ch: usize,
        max_sp: usize,
        classes: usize,
        device: &Device,
    ) -> ConvDecoder {
        ConvDecoder {
            fc: LinearConfig::new(hid, 4 * hid * max_sp * max_sp).init(device),
            conv0: LinearConfig::new(4 * hid, 8 * hid).init(device),
            conv2: LinearConfig::new(8 * hid, max_ch * max_ch).init(device),
            class_layer_predictor: LinearConfig::new(max_ch, classes).init(device),
            max_sp,
            max_ch,
        }
    }

    /// Decode `e` (`[n, hid]`) at kernel positions `kh × kw` and slots `s0 × s1`:
    /// returns `D[:s0, :s1, :kh, :kw]` for every node as `[n, s0, s1, kh, kw]`.
    /// Kernels larger than S repeat the S×S map (modular positions, GHN_SPEC §2.6).
    pub fn decode(&self, e: Tensor<2>, kh: usize, kw: usize, s0: usize, s1: usize) -> Tensor<5> {
        let device = e.device();
        let [n, _] = e.dims();
        let s = self.max_sp;
        let k = kh * kw;
        let c4 = self.conv0.weight.dims()[0];
        // Columns of W_fc for channel c, position p = (y, x): c·S² + y·S + x, ordered (c, p).
        let mut cols = Vec::with_capacity(c4 * k);
        for c in 0..c4 {
            for y in 0..kh {
                for x in 0..kw {
                    cols.push((c * s * s + (y % s) * s + (x % s)) as i64);
                }
            }
        }
        let cols = int_tensor(cols, &device);
        let w_fc = self.fc.weight.val().select(1, cols.clone());
        let mut f = e.matmul(w_fc);
        if let Some(b) = &self.fc.bias {
            f = f + b.val().select(0, cols).unsqueeze_dim(0);
        }
        // [n, c4·K] → [n·K, c4] (per-position feature vectors).
        let f = relu(f)
            .reshape([n, c4, k])
            .swap_dims(1, 2)
            .reshape([n * k, c4]);
        let g = relu(self.conv0.forward(f));
        let m = self.max_ch;
        let outs: Vec<i64> = (0..s0)
            .flat_map(|o| (0..s1).map(move |i| (m * o + i) as i64))
            .collect();
        let outs = int_tensor(outs, &device);
        let mut o = g.matmul(self.conv2.weight.val().select(1, outs.clone()));
        if let Some(b) = &self.conv2.bias {
            o = o + b.val().select(0, outs).unsqueeze_dim(0);
        }
        // [n·K, s0·s1] → [n, K, s0, s1] → [n, s0, s1, K] → [n, s0, s1, kh, kw].
        o.reshape([n, k, s0, s1])
            .permute([0, 2, 3, 1])
            .reshape([n, s0, s1, kh, kw])
    }

    /// Classification weight (§2.5b): `Dcls[k, i] = Σ_j Wc[k, j] ReLU(D[j, i, 0, 0]) + bc[k]` for all
    /// `j < max_ch`, `i < s1`. Returns `[n, classes, s1]`.
    pub fn decode_classifier(&self, e: Tensor<2>, s1: usize) -> Tensor<3> {
        let [n, _] = e.dims();
        let d = self
            .decode(e, 1, 1, self.max_ch, s1)
            .reshape([n, self.max_ch, s1]);
        let d = relu(d).swap_dims(1, 2); // [n, s1, max_ch]
        self.class_layer_predictor.forward(d).swap_dims(1, 2)
    }
}

/// Repeat-then-truncate along `dim` to `target` (`W[o] = P[o mod s]`, GHN_SPEC §2.7).
pub fn tile_dim<const D: usize>(t: Tensor<D>, dim: usize, target: usize) -> Tensor<D> {
    let s = t.dims()[dim];
    if s == target {
        t
    } else if s > target {
        t.narrow(dim, 0, target)
    } else {
        t.repeat_dim(dim, target.div_ceil(s)).narrow(dim, 0, target)
    }
}

/// The fan-in scale of §2.8 for a weight of shape `(O, I, kh, kw)` (`kh = kw = 1`, `four_d = false`
/// for linear weights): `sqrt(β / (I·kh·kw))`, β = 1 for depthwise (`I == 1`) and `kh < kw` convs,
/// else 2.
pub fn fan_in_scale(i: usize, kh: usize, kw: usize, four_d: bool) -> f32 {
    let beta = if four_d && (i == 1 || kh < kw) {
        1.0
    } else {
        2.0
    };
    (beta / (i * kh * kw) as f32).sqrt()
}

/// BatchNorm γ normalisation: `2·σ(0.5·p)` ∈ (0, 2).
pub fn normalize_gamma<const D: usize>(p: Tensor<D>) -> Tensor<D> {
    sigmoid(p * 0.5) * 2.0
}

/// Every bias: `tanh(0.2·p)` ∈ (−1, 1).
pub fn normalize_bias<const D: usize>(p: Tensor<D>) -> Tensor<D> {
    (p * 0.2).tanh()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn tiling_is_modular_repetition() {
        let dev = Device::flex();
        let p = Tensor::<1>::from_floats([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], &dev).reshape([2, 3]);
        let w = tile_dim(tile_dim(p, 0, 5), 1, 7);
        let v = vec(w);
        for o in 0..5 {
            for i in 0..7 {
                assert_eq!(v[o * 7 + i], ((o % 2) * 3 + i % 3) as f32);
            }
        }
        let q = Tensor::<1>::from_floats([0.0, 1.0, 2.0, 3.0], &dev);
        assert_eq!(vec(tile_dim(q.clone(), 0, 2)), vec![0.0, 1.0]);
        assert_eq!(vec(tile_dim(q, 0, 6)), vec![0.0, 1.0, 2.0, 3.0, 0.0, 1.0]);
    }

    #[test]
    fn normalisation_constants() {
        // Regular 3x3 conv with 16 inputs: sqrt(2 / 144); depthwise: sqrt(1 / 9); (1,7) conv: β = 1.
        assert!((fan_in_scale(16, 3, 3, true) - (2.0f32 / 144.0).sqrt()).abs() < 1e-7);
        assert!((fan_in_scale(1, 3, 3, true) - (1.0f32 / 9.0).sqrt()).abs() < 1e-7);
        assert!((fan_in_scale(8, 1, 7, true) - (1.0f32 / 56.0).sqrt()).abs() < 1e-7);
        // Linear (O, I): β = 2, fan-in = I, even when I == 1.
        assert!((fan_in_scale(64, 1, 1, false) - (2.0f32 / 64.0).sqrt()).abs() < 1e-7);
        assert!((fan_in_scale(1, 1, 1, false) - 2.0f32.sqrt()).abs() < 1e-7);
        let dev = Device::flex();
        let p = Tensor::<1>::from_floats([0.0, 100.0, -100.0], &dev);
        let g = vec(normalize_gamma(p.clone()));
        assert!(
            (g[0] - 1.0).abs() < 1e-6 && (g[1] - 2.0).abs() < 1e-6 && g[2].abs() < 1e-6,
            "{g:?}"
        );
        let b = vec(normalize_bias(p));
        assert_eq!(b[0], 0.0);
        assert!((b[1] - 1.0).abs() < 1e-6 && (b[2] + 1.0).abs() < 1e-6);
    }

    /// Cropped decoding equals decoding the full max_ch × max_ch × S × S tensor and cropping.
    #[test]
    fn cropped_decode_equals_full_decode() {
        let dev = Device::flex();
        let dec = ConvDecoder::new(8, 8, 5, 10, &dev);
        let e: Tensor<2> = Tensor::random([2, 8], Distribution::Normal(0.0, 1.0), &dev);
        let full = dec.decode(e.clone(), 5, 5, 8, 8);
        let part = dec.decode(e, 3, 2, 4, 6);
        let crop = full.slice([0..2, 0..4, 0..6, 0..3, 0..2]);
        let d = vec((crop - part).abs());
        assert!(d.iter().all(|&x| x < 1e-5));
    }
}

//! Fixed single-op models (one conv, depthwise or linear layer) for benchmarks and corpus seeds.

use shared_format::le::i32s_to_le;
use shared_format::packing::pack;
use shared_format::{
    Clamp, Conv2d, DepthwiseConv2d, LeI32s, Linear, ModelBuilder, Op, Rounding, Shape, TensorSpec,
    WeightScheme, Window,
};

use super::quant::WeightSet;
use super::{Rng, quantize_multiplier, range_of};

/// A model of one Conv2d (`depthwise = false`) or DepthwiseConv2d on an `h × w × cin` input,
/// with random weights of `wbits` and activations of `abits`, per-channel symmetric weights
/// and realistic requantization.
#[allow(clippy::too_many_arguments)]
pub fn single_conv_model(
    seed: u64,
    h: u16,
    w: u16,
    cin: u16,
    cout: u16,
    window: Window,
    depthwise: bool,
    wbits: u8,
    abits: u8,
) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let act = |shape| TensorSpec {
        shape,
        zero_point: 0,
        bits: abits,
    };
    let input = act(Shape::new(h, w, cin));
    let mut b = ModelBuilder::new(input, 0.05);
    let cout = if depthwise { cin } else { cout };
    let oh = window.output_h(h as u32).expect("window fits") as u16;
    let ow = window.output_w(w as u32).expect("window fits") as u16;
    let out = act(Shape::new(oh, ow, cout));
    let per_channel = window.kernel_h as usize
        * window.kernel_w as usize
        * if depthwise { 1 } else { cin as usize };
    let fixed = fixed_weights(&mut rng, cout as usize, per_channel, wbits, abits);
    let id = b.tensor(out);
    let (lo, hi) = range_of(abits);
    let clamp = Clamp {
        min: lo as i8,
        max: hi as i8,
    };
    let op = if depthwise {
        Op::DepthwiseConv2d(DepthwiseConv2d {
            input: 0,
            output: id,
            window,
            weights: fixed.weights(),
            bias: LeI32s::new(&fixed.bias),
            requant: fixed.requant(),
            clamp,
        })
    } else {
        Op::Conv2d(Conv2d {
            input: 0,
            output: id,
            window,
            weights: fixed.weights(),
            bias: LeI32s::new(&fixed.bias),
            requant: fixed.requant(),
            clamp,
        })
    };
    b.push(&op).expect("push");
    b.finish(id, 0.1).expect("valid single-op model")
}

/// A model of one Linear layer `k → cout`.
pub fn single_linear_model(seed: u64, k: u16, cout: u16, wbits: u8, abits: u8) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let act = |shape| TensorSpec {
        shape,
        zero_point: 0,
        bits: abits,
    };
    let mut b = ModelBuilder::new(act(Shape::new(1, 1, k)), 0.05);
    let fixed = fixed_weights(&mut rng, cout as usize, k as usize, wbits, abits);
    let id = b.tensor(act(Shape::new(1, 1, cout)));
    let (lo, hi) = range_of(abits);
    let op = Op::Linear(Linear {
        input: 0,
        output: id,
        weights: fixed.weights(),
        bias: LeI32s::new(&fixed.bias),
        requant: fixed.requant(),
        clamp: Clamp {
            min: lo as i8,
            max: hi as i8,
        },
    });
    b.push(&op).expect("push");
    b.finish(id, 0.1).expect("valid single-op model")
}

fn fixed_weights(
    rng: &mut Rng,
    cout: usize,
    per_channel: usize,
    wbits: u8,
    abits: u8,
) -> WeightSet {
    let (wlo, whi) = range_of(wbits);
    let values: Vec<i8> = (0..cout * per_channel)
        .map(|_| rng.range(wlo, whi) as i8)
        .collect();
    let typical =
        (per_channel as f64).sqrt() * (1u64 << (wbits - 1)) as f64 * (1u64 << (abits - 1)) as f64
            / 2.0
            + 1.0;
    let real = (1u64 << (abits - 1)) as f64 / typical;
    let (mut mults, mut shifts) = (Vec::new(), Vec::new());
    for _ in 0..cout {
        let (m, e) = quantize_multiplier(real, Rounding::Double);
        mults.push(m);
        shifts.push(e as i8 as u8);
    }
    let bias: Vec<i32> = (0..cout).map(|_| rng.range(-1000, 1000) as i32).collect();
    WeightSet {
        bits: wbits,
        scheme: WeightScheme::PerChannelSymmetric,
        zero_point: 0,
        packed: pack(&values, wbits).expect("in range"),
        bias: i32s_to_le(&bias),
        multipliers: i32s_to_le(&mults),
        shifts,
    }
}

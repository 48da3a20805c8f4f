//! Hand-written nets: the seed paper's §3 macro-architectures, MLPerf Tiny ResNet-8 and a
//! MobileNet-v1-0.25-like net. All are sized for the given input (the number of 2x poolings or
//! stride-2 layers is limited so the last feature map stays at least 2x2).
//!
//! The paper's Fig. 1/2 are images; their text fixes only the structure, so the widths here are ours:
//! a fixed first 3x3 conv (32 channels, BN/ReLU as the variant), then stages of (width, blocks)
//! `(32, 1), (64, 2), (128, 1)` separated by 2x2 max pooling, GAP, Dense(128) → ReLU → Dropout(0.5) →
//! Dense(classes). Convs carry a bias exactly when no BatchNorm follows them (Keras practice; BN's β
//! is the shift otherwise).

use super::generator::max_reductions;
use super::ir::{ArchError, ImageShape, Net, NetBuilder, Op};

/// Names of the predefined nets, in the order [`all`] returns them.
pub const NAMES: [&str; 10] = [
    "Regular_Conv_With_BN",
    "Regular_Conv_No_BN",
    "DWS_Conv_With_BN",
    "DWS_Conv_No_BN",
    "Basic_Residual_With_BN",
    "Basic_Residual_No_BN",
    "MbNetV2_With_BN",
    "MbNetV2_No_BN",
    "ResNet8",
    "MobileNetV1_025",
];

/// Stage layout of the paper's macro-architectures: (width, blocks).
const STAGES: [(usize, usize); 3] = [(32, 1), (64, 2), (128, 1)];
/// Width of the first conv and of the hidden dense layer.
const FIRST: usize = 32;
const HIDDEN: usize = 128;

/// The block family of the paper's macro-architectures (Fig. 1 and Fig. 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// 3x3 conv → (BN) → ReLU.
    RegularConv,
    /// MobileNet block: depthwise 3x3 → (BN) → ReLU → pointwise 1x1 → (BN) → ReLU.
    DwsConv,
    /// ResNet basic block: 3x3 → (BN) → ReLU → 3x3 → (BN), + shortcut (1x1 conv → (BN) when the width
    /// changes), → ReLU.
    BasicResidual,
    /// MobileNet-V2 inverted bottleneck, expansion 6: 1x1 → (BN) → ReLU6 → dw 3x3 → (BN) → ReLU6 →
    /// 1x1 → (BN) (linear), + identity when the width is unchanged.
    InvertedBottleneck,
}

/// Output of a conv: `Dense(cout)` or depthwise (`cout = groups = cin`).
#[derive(Clone, Copy)]
enum Out {
    Dense(usize),
    Depthwise,
}

struct B {
    b: NetBuilder,
    bn: bool,
}

impl B {
    /// conv (bias iff no BN) → optional BN.
    fn conv_bn(
        &mut self,
        name: &str,
        x: usize,
        out: Out,
        k: usize,
        s: usize,
    ) -> Result<usize, ArchError> {
        let cin = self.b.channels(x);
        let (groups, cout) = match out {
            Out::Dense(cout) => (1, cout),
            Out::Depthwise => (cin, cin),
        };
        let op = Op::Conv {
            kernel: k,
            stride: s,
            dilation: 1,
            padding: k / 2,
            groups,
            cin,
            cout,
            bias: !self.bn,
        };
        let c = self.b.push(format!("{name}.conv"), op, vec![x])?;
        if self.bn {
            self.b.bn(format!("{name}.bn"), c)
        } else {
            Ok(c)
        }
    }

    fn conv_bn_relu(
        &mut self,
        name: &str,
        x: usize,
        out: Out,
        k: usize,
        s: usize,
        six: bool,
    ) -> Result<usize, ArchError> {
        let y = self.conv_bn(name, x, out, k, s)?;
        self.b.relu(format!("{name}.relu"), y, six)
    }

    fn block(
        &mut self,
        name: &str,
        kind: Block,
        x: usize,
        cout: usize,
    ) -> Result<usize, ArchError> {
        let cin = self.b.channels(x);
        match kind {
            Block::RegularConv => self.conv_bn_relu(name, x, Out::Dense(cout), 3, 1, false),
            Block::DwsConv => {
                let d = self.conv_bn_relu(&format!("{name}.dw"), x, Out::Depthwise, 3, 1, false)?;
                self.conv_bn_relu(&format!("{name}.pw"), d, Out::Dense(cout), 1, 1, false)
            }
            Block::BasicResidual => self.basic_residual(name, x, cout, 1),
            Block::InvertedBottleneck => {
                let e = self.conv_bn_relu(
                    &format!("{name}.expand"),
                    x,
                    Out::Dense(6 * cin),
                    1,
                    1,
                    true,
                )?;
                let d = self.conv_bn_relu(&format!("{name}.dw"), e, Out::Depthwise, 3, 1, true)?;
                let p = self.conv_bn(&format!("{name}.project"), d, Out::Dense(cout), 1, 1)?;
                if cin == cout {
                    self.b.push(format!("{name}.add"), Op::Add, vec![x, p])
                } else {
                    Ok(p)
                }
            }
        }
    }

    fn basic_residual(
        &mut self,
        name: &str,
        x: usize,
        cout: usize,
        stride: usize,
    ) -> Result<usize, ArchError> {
        let cin = self.b.channels(x);
        let a = self.conv_bn_relu(
            &format!("{name}.conv1"),
            x,
            Out::Dense(cout),
            3,
            stride,
            false,
        )?;
        let c = self.conv_bn(&format!("{name}.conv2"), a, Out::Dense(cout), 3, 1)?;
        let short = if cin != cout || stride != 1 {
            self.conv_bn(&format!("{name}.shortcut"), x, Out::Dense(cout), 1, stride)?
        } else {
            x
        };
        let sum = self
            .b
            .push(format!("{name}.add"), Op::Add, vec![short, c])?;
        self.b.relu(format!("{name}.relu"), sum, false)
    }
}

/// The paper's macro-architecture (§3, Fig. 1 for regular/DWS, Fig. 2 for residual/MbNetV2) with
/// `kind` blocks, with or without BatchNorm.
pub fn paper_net(
    name: &str,
    kind: Block,
    bn: bool,
    input: ImageShape,
    classes: usize,
) -> Result<Net, ArchError> {
    let mut m = B {
        b: NetBuilder::new(name, input, classes),
        bn,
    };
    // "The very first convolution layer stays fixed for all architectures" (Fig. 1 caption).
    let mut x = m.conv_bn_relu("conv0", 0, Out::Dense(FIRST), 3, 1, false)?;
    let pools = max_reductions(input).min(STAGES.len());
    for (s, &(width, blocks)) in STAGES.iter().enumerate() {
        for i in 0..blocks {
            x = m.block(&format!("stage{s}.block{i}"), kind, x, width)?;
        }
        if s < pools {
            x = m.b.push(
                format!("stage{s}.max_pool"),
                Op::MaxPool {
                    kernel: 2,
                    stride: 2,
                    padding: 0,
                },
                vec![x],
            )?;
        }
    }
    let gap = m.b.push("gap", Op::GlobalAvgPool, vec![x])?;
    let fc1 = m.b.linear("dense1", gap, HIDDEN)?;
    let r = m.b.relu("dense1.relu", fc1, false)?;
    let d =
        m.b.push("dense1.dropout", Op::Dropout { p: 0.5 }, vec![r])?;
    m.b.linear("dense2", d, classes)?;
    m.b.finish()
}

/// MLPerf Tiny image-classification ResNet-8 (`resnet_v1_eembc`): 3x3 stem (16), three stages of one
/// basic block at 16/32/64 channels, strides 1/2/2, 1x1 shortcut convs where the shape changes,
/// GAP, Linear. Convs are bias-free and every conv (shortcuts included) is followed by BN.
///
/// Parameters for 32x32x3 and 10 classes, by hand:
/// ```text
/// conv weights: stem 3·16·9 = 432
///   stage 1: 16·16·9 ·2 = 4,608
///   stage 2: 16·32·9 + 32·32·9 + 16·32 (1x1) = 4,608 + 9,216 + 512 = 14,336
///   stage 3: 32·64·9 + 64·64·9 + 32·64 (1x1) = 18,432 + 36,864 + 2,048 = 57,344
///   total conv 76,720
/// BN γ,β: 2·(16 + 16+16 + 32+32+32 + 64+64+64) = 2·336 = 672
/// Linear: 64·10 + 10 = 650
/// total 76,720 + 672 + 650 = 78,042  (the MLPerf figure)
/// ```
/// (The Keras reference instead puts biases on its convs and BN only after non-shortcut convs:
/// 77,706 + 2·240 = 78,186 trainable; the layer structure and MACs are the same.)
pub fn resnet8(input: ImageShape, classes: usize) -> Result<Net, ArchError> {
    let mut m = B {
        b: NetBuilder::new("ResNet8", input, classes),
        bn: true,
    };
    let mut x = m.conv_bn_relu("stem", 0, Out::Dense(16), 3, 1, false)?;
    let reductions = max_reductions(input);
    for (s, &c) in [16usize, 32, 64].iter().enumerate() {
        let stride = if s > 0 && s <= reductions { 2 } else { 1 };
        x = m.basic_residual(&format!("stage{s}"), x, c, stride)?;
    }
    let gap = m.b.push("gap", Op::GlobalAvgPool, vec![x])?;
    m.b.linear("fc", gap, classes)?;
    m.b.finish()
}

/// A MobileNet-v1 with width multiplier 0.25: 3x3 conv (8) then 13 depthwise-separable blocks
/// (16, 32, 32, 64, 64, 128, 128×5, 256, 256), BN and ReLU6 after every conv, GAP, Linear. The
/// ImageNet net halves resolution 5 times; here the earliest stride-2 layers become stride 1 until the
/// last map is at least 2x2 (for 32x32: the stem keeps stride 1, 32 → 16 → 8 → 4 → 2).
pub fn mobilenet_v1_025(input: ImageShape, classes: usize) -> Result<Net, ArchError> {
    const BLOCKS: [(usize, usize); 13] = [
        (16, 1),
        (32, 2),
        (32, 1),
        (64, 2),
        (64, 1),
        (128, 2),
        (128, 1),
        (128, 1),
        (128, 1),
        (128, 1),
        (128, 1),
        (256, 2),
        (256, 1),
    ];
    let mut m = B {
        b: NetBuilder::new("MobileNetV1_025", input, classes),
        bn: true,
    };
    // Five stride-2 places (stem + four blocks); drop the earliest ones the input cannot afford.
    let keep = max_reductions(input).min(5);
    let mut dropped = 5 - keep;
    let mut stride = |s: usize| {
        if s == 2 && dropped > 0 {
            dropped -= 1;
            1
        } else {
            s
        }
    };
    let s0 = stride(2);
    let mut x = m.conv_bn_relu("conv0", 0, Out::Dense(8), 3, s0, true)?;
    for (i, &(c, s)) in BLOCKS.iter().enumerate() {
        let s = stride(s);
        let d = m.conv_bn_relu(&format!("block{i}.dw"), x, Out::Depthwise, 3, s, true)?;
        x = m.conv_bn_relu(&format!("block{i}.pw"), d, Out::Dense(c), 1, 1, true)?;
    }
    let gap = m.b.push("gap", Op::GlobalAvgPool, vec![x])?;
    m.b.linear("fc", gap, classes)?;
    m.b.finish()
}

/// GHN_SPEC §1.5's worked example at CIFAR-10 shapes: one DARTS cell (C = 16) with its two
/// preprocessing convs and BN, `sep_conv_3x3` on state 0 and `max_pool_3x3` on state 1 summed,
/// global average pooling and one FC. Small enough to check a GHN graph node by node (the graph
/// tests and the ppuda parity test both do); not one of [`NAMES`].
pub fn ghn_spec_example() -> Net {
    let build = || -> Result<Net, ArchError> {
        let mut b = NetBuilder::new("worked-example", ImageShape::CIFAR10, 10);
        let stem = b.conv("stem.conv", 0, 48, 3, 1)?;
        let stem = b.bn("stem.bn", stem)?;
        let r0 = b.relu("pre0.relu", stem, false)?;
        let p0 = b.conv("pre0.conv", r0, 16, 1, 1)?;
        let s0 = b.bn("pre0.bn", p0)?;
        let r1 = b.relu("pre1.relu", stem, false)?;
        let p1 = b.conv("pre1.conv", r1, 16, 1, 1)?;
        let s1 = b.bn("pre1.bn", p1)?;
        let x = b.relu("sep.relu1", s0, false)?;
        let x = b.dw_conv("sep.dw1", x, 3, 1, 1)?;
        let x = b.conv("sep.pw1", x, 16, 1, 1)?;
        let x = b.bn("sep.bn1", x)?;
        let x = b.relu("sep.relu2", x, false)?;
        let x = b.dw_conv("sep.dw2", x, 3, 1, 1)?;
        let x = b.conv("sep.pw2", x, 16, 1, 1)?;
        let x = b.bn("sep.bn2", x)?;
        let pool = Op::MaxPool {
            kernel: 3,
            stride: 1,
            padding: 1,
        };
        let m = b.push("maxpool", pool, vec![s1])?;
        let s = b.push("sum", Op::Add, vec![x, m])?;
        let g = b.push("gap", Op::GlobalAvgPool, vec![s])?;
        b.linear("fc", g, 10)?;
        b.finish()
    };
    build().expect("the worked example is a valid net")
}

/// The predefined net called `name` (one of [`NAMES`], case-insensitive).
pub fn by_name(name: &str, input: ImageShape, classes: usize) -> Option<Result<Net, ArchError>> {
    let canonical = NAMES.iter().find(|n| n.eq_ignore_ascii_case(name))?;
    let paper = |kind, bn| paper_net(canonical, kind, bn, input, classes);
    Some(match *canonical {
        "Regular_Conv_With_BN" => paper(Block::RegularConv, true),
        "Regular_Conv_No_BN" => paper(Block::RegularConv, false),
        "DWS_Conv_With_BN" => paper(Block::DwsConv, true),
        "DWS_Conv_No_BN" => paper(Block::DwsConv, false),
        "Basic_Residual_With_BN" => paper(Block::BasicResidual, true),
        "Basic_Residual_No_BN" => paper(Block::BasicResidual, false),
        "MbNetV2_With_BN" => paper(Block::InvertedBottleneck, true),
        "MbNetV2_No_BN" => paper(Block::InvertedBottleneck, false),
        "ResNet8" => resnet8(input, classes),
        _ => mobilenet_v1_025(input, classes),
    })
}

/// All predefined nets, in [`NAMES`] order.
pub fn all(input: ImageShape, classes: usize) -> Result<Vec<Net>, ArchError> {
    NAMES
        .iter()
        .map(|n| by_name(n, input, classes).expect("every NAMES entry is buildable"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(name: &str, input: ImageShape) -> usize {
        by_name(name, input, 10).unwrap().unwrap().param_count()
    }

    #[test]
    fn resnet8_matches_mlperf_count() {
        assert_eq!(count("ResNet8", ImageShape::CIFAR10), 78_042);
        let net = resnet8(ImageShape::CIFAR10, 10).unwrap();
        let shapes = net.shapes().unwrap();
        let gap = net
            .nodes
            .iter()
            .position(|n| n.op == Op::GlobalAvgPool)
            .unwrap();
        assert_eq!(shapes[gap - 1], [8, 8, 64]);
        // 1 channel instead of 3: the stem loses 2·16·9 weights.
        assert_eq!(count("ResNet8", ImageShape::FASHION_MNIST), 78_042 - 288);
        // MACs of the Keras model (about 12.5 M for 32x32x3).
        assert_eq!(net.macs(), 12_501_632);
    }

    #[test]
    fn paper_net_counts() {
        let c = ImageShape::CIFAR10;
        // conv0 3→32 (864) + 32→32 (9,216) + 32→64 (18,432) + 64→64 (36,864) + 64→128 (73,728)
        // = 139,104 weights; dense 128·128+128 + 128·10+10 = 17,802.
        let convs = 864 + 9_216 + 18_432 + 36_864 + 73_728;
        let dense = 128 * 128 + 128 + 128 * 10 + 10;
        let couts = 32 + 32 + 64 + 64 + 128; // 320 output channels: biases or BN γ,β
        assert_eq!(count("Regular_Conv_No_BN", c), convs + dense + couts);
        assert_eq!(count("Regular_Conv_With_BN", c), convs + dense + 2 * couts);
        // DWS: dw 9·cin + pw cin·cout per block, after the fixed conv0.
        let dws = [(32, 32), (32, 64), (64, 64), (64, 128)]
            .iter()
            .map(|&(i, o)| 9 * i + i * o)
            .sum::<usize>();
        let dws_ch = [(32, 32), (32, 64), (64, 64), (64, 128)]
            .iter()
            .map(|&(i, o)| i + o)
            .sum::<usize>();
        assert_eq!(count("DWS_Conv_No_BN", c), 864 + 32 + dws + dws_ch + dense);
        assert_eq!(
            count("DWS_Conv_With_BN", c),
            864 + 64 + dws + 2 * dws_ch + dense
        );
        for n in NAMES {
            for input in [
                ImageShape::CIFAR10,
                ImageShape::FASHION_MNIST,
                ImageShape { h: 8, w: 8, c: 3 },
            ] {
                let net = by_name(n, input, 10).unwrap().unwrap();
                net.validate(None).unwrap();
                assert_eq!(net.has_batch_norm(), !n.ends_with("No_BN"), "{n}");
            }
        }
        assert!(by_name("nope", c, 10).is_none());
        assert_eq!(by_name("resnet8", c, 10).unwrap().unwrap().name, "ResNet8");
    }

    #[test]
    fn mobilenet_v1_025_shape() {
        let net = mobilenet_v1_025(ImageShape::CIFAR10, 10).unwrap();
        let shapes = net.shapes().unwrap();
        let gap = net
            .nodes
            .iter()
            .position(|n| n.op == Op::GlobalAvgPool)
            .unwrap();
        assert_eq!(shapes[gap - 1], [2, 2, 256]);
        // 27 convs: 1 + 13 dw + 13 pw; depth counts the Linear too.
        assert_eq!(net.depth(), 28);
        let big = mobilenet_v1_025(
            ImageShape {
                h: 224,
                w: 224,
                c: 3,
            },
            1000,
        )
        .unwrap();
        let shapes = big.shapes().unwrap();
        assert_eq!(shapes[shapes.len() - 3], [7, 7, 256]);
        // Keras MobileNet(alpha=0.25) without its 1x1-conv classifier: 218,544 conv+BN params
        // (its BN counts γ,β,μ,σ²; ours only γ,β): check the conv weights alone.
        let conv_weights: usize = big
            .nodes
            .iter()
            .filter_map(|n| match n.op {
                Op::Conv { .. } => n.op.weight_shape().map(|s| s.iter().product::<usize>()),
                _ => None,
            })
            .sum();
        assert_eq!(
            conv_weights,
            3 * 8 * 9
                + 8 * 9
                + 8 * 16
                + 16 * 9
                + 16 * 32
                + 32 * 9
                + 32 * 32
                + 32 * 9
                + 32 * 64
                + 64 * 9
                + 64 * 64
                + 64 * 9
                + 64 * 128
                + 5 * (128 * 9 + 128 * 128)
                + 128 * 9
                + 128 * 256
                + 256 * 9
                + 256 * 256
        );
    }
}

//! The quantization flags shared by the commands that export nets (`export`, `eval --bits`).

use ghnq_quant::config::{BnStats, Clip, Precision, QuantConfig};
use ghnq_quant::layers::LayerBits;
use shared_format::{Rounding, WeightScheme};

/// How nets are quantized and exported.
#[derive(clap::Args, Debug)]
pub struct QuantArgs {
    /// Per-output-channel symmetric weights (TFLite's int8 practice) instead of the paper's
    /// per-tensor affine weights.
    #[arg(long)]
    pub per_channel: bool,
    /// Weight range: absolute or percentile[:p] (top/bottom p %, default 1).
    #[arg(long, default_value = "absolute")]
    pub weight_clip: Clip,
    /// Activation range: absolute or percentile[:p].
    #[arg(long, default_value = "absolute")]
    pub act_clip: Clip,
    /// Requantization rounding: single (the default: the float simulation models it exactly) or
    /// double (TFLite Micro's default; within a few logit steps of the simulation).
    /// `ghnq export --format tflite` defaults to double and refuses single.
    #[arg(long, value_parser = parse_rounding)]
    pub rounding: Option<Rounding>,
    /// Mixed precision: per-layer bit-widths overriding the net-wide ones, e.g.
    /// `first=w8a8,last=w8a8` (the stem and the classifier at 8 bits) or `cell1.op0=w8a4`
    /// (a node name from the net's JSON). An override sets the layer's weight bits and the bits
    /// of the activation it writes; `first` and `last` work across a whole split.
    #[arg(long, value_name = "LAYER=wNaM,...", default_value = "")]
    pub layer_bits: LayerBits,
    /// The net whose BatchNorm statistics are folded: `quantized` (the default) measures them in
    /// the quantized simulation as QAT trains it, `float` in the float net (post-training
    /// quantization's practice; at 4 bits it loses most of a QAT net's accuracy).
    #[arg(long, default_value = "quantized")]
    pub bn_stats: BnStats,
}

impl QuantArgs {
    /// The rounding asked for, single if none was.
    pub fn rounding(&self) -> Rounding {
        self.rounding.unwrap_or(Rounding::Single)
    }

    /// The configuration for `precision`.
    pub fn config(&self, precision: Precision) -> QuantConfig {
        QuantConfig {
            scheme: if self.per_channel {
                WeightScheme::PerChannelSymmetric
            } else {
                WeightScheme::PerTensorAffine
            },
            weight_clip: self.weight_clip,
            act_clip: self.act_clip,
            layers: self.layer_bits.clone(),
            bn_stats: self.bn_stats,
            ..QuantConfig::paper(precision)
        }
    }
}

fn parse_rounding(name: &str) -> Result<Rounding, String> {
    match name {
        "single" => Ok(Rounding::Single),
        "double" => Ok(Rounding::Double),
        other => Err(format!("unknown rounding '{other}': single or double")),
    }
}

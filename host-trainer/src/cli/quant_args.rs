//! The quantization flags shared by the commands that export nets (`export`, `eval --bits`).

use ghnq_quant::config::{ActCalib, BnStats, Clip, Precision, QuantConfig, TrainedFor};
use ghnq_quant::layers::LayerBits;
use shared_format::{Rounding, WeightScheme};

/// How nets are quantized and exported.
#[derive(clap::Args, Debug)]
pub struct QuantArgs {
    /// Per-output-channel symmetric weights (TFLite's int8 practice) instead of the paper's
    /// per-tensor affine weights.
    #[arg(long)]
    pub per_channel: bool,
    /// Weight range: absolute or percentile[:p] (top/bottom p %, default 1), for every
    /// bit-width or per bit-width (`w4a4=percentile,w2a2=percentile:2`, so one `eval --bits
    /// float,w8a8,w4a4` shares the float net's pass across ranges). Default: absolute, or the
    /// GHN-QAT checkpoint's own at the bit-width it was finetuned for (its `qat.txt`).
    #[arg(long, value_name = "CLIP|wNaM=CLIP,...")]
    pub weight_clip: Option<ClipChoice>,
    /// Activation range: absolute or percentile[:p], per bit-width as for --weight-clip.
    /// Default as for --weight-clip.
    #[arg(long, value_name = "CLIP|wNaM=CLIP,...")]
    pub act_clip: Option<ClipChoice>,
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
    /// What activation ranges are measured on: `quantized` (every earlier activation already
    /// quantized, as GHN-QAT trains) or `float` (post-training quantization's practice).
    /// Default: quantized for a GHN-QAT checkpoint at the bit-width it was finetuned for, float
    /// otherwise (each measured the better there).
    #[arg(long)]
    pub act_calib: Option<ActCalib>,
}

impl QuantArgs {
    /// The rounding asked for, single if none was.
    pub fn rounding(&self) -> Rounding {
        self.rounding.unwrap_or(Rounding::Single)
    }

    /// [`Self::config_for`] the GHN checkpoint at `ghn`, if any, as its `qat.txt` says it was
    /// finetuned ([`trained_for`]).
    pub fn config_for_ghn(
        &self,
        precision: Precision,
        ghn: Option<&std::path::Path>,
    ) -> QuantConfig {
        let trained = ghn.map(trained_for).unwrap_or_default();
        self.config_for(precision, &trained)
    }

    /// The configuration for `precision` of a GHN-QAT checkpoint finetuned as `trained` says:
    /// at a precision it was trained for, the clipping it was trained under there, unless the
    /// flags ask otherwise.
    pub fn config_for(&self, precision: Precision, trained: &[TrainedFor]) -> QuantConfig {
        let own = trained.iter().find(|t| t.precision == precision);
        QuantConfig {
            scheme: weight_scheme(self.per_channel),
            weight_clip: ClipChoice::at(&self.weight_clip, precision)
                .or(own.map(|t| t.weight_clip))
                .unwrap_or(Clip::Absolute),
            act_clip: ClipChoice::at(&self.act_clip, precision)
                .or(own.map(|t| t.act_clip))
                .unwrap_or(Clip::Absolute),
            layers: self.layer_bits.clone(),
            bn_stats: self.bn_stats,
            act_calib: self.act_calib.unwrap_or(if own.is_some() {
                ActCalib::Quantized
            } else {
                ActCalib::Float
            }),
            ..QuantConfig::paper(precision)
        }
    }
}

/// The weight scheme `--per-channel` asks for: TFLite's per-channel symmetric weights, or the
/// paper's per-tensor affine ones.
pub fn weight_scheme(per_channel: bool) -> WeightScheme {
    if per_channel {
        WeightScheme::PerChannelSymmetric
    } else {
        WeightScheme::PerTensorAffine
    }
}

/// A `--weight-clip`/`--act-clip` value: one clipping for every bit-width, and/or clippings for
/// named bit-widths, which win over it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClipChoice {
    every: Option<Clip>,
    at: Vec<(Precision, Clip)>,
}

impl ClipChoice {
    /// The clipping asked for at `precision`, if any.
    pub fn at(choice: &Option<ClipChoice>, precision: Precision) -> Option<Clip> {
        let c = choice.as_ref()?;
        c.at.iter()
            .find(|(p, _)| *p == precision)
            .map(|&(_, clip)| clip)
            .or(c.every)
    }

    /// The bit-widths named one by one (`w4a4=...`), so that a command can refuse a name it
    /// has no use for rather than ignore it.
    pub fn named(&self) -> impl Iterator<Item = Precision> + '_ {
        self.at.iter().map(|&(p, _)| p)
    }
}

impl std::str::FromStr for ClipChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = ClipChoice::default();
        for item in s.split(',').map(str::trim) {
            match item.split_once('=') {
                Some((p, clip)) => {
                    let p: Precision = p.trim().parse()?;
                    if out.at.iter().any(|(q, _)| *q == p) {
                        return Err(format!("'{s}' names {p} twice"));
                    }
                    out.at.push((p, clip.trim().parse()?));
                }
                None if out.every.is_some() => {
                    return Err(format!(
                        "'{s}' has two clippings for every bit-width; name one per bit-width \
                         as wNaM=CLIP"
                    ));
                }
                None => out.every = Some(item.parse()?),
            }
        }
        Ok(out)
    }
}

/// What the GHN checkpoint at `path` (a run directory or one of its `.bpk` files) was finetuned
/// for, from the `qat.txt` beside it: one entry per bit-width (several for a bit-conditioned
/// GHN), none for a float GHN or anything unreadable.
pub fn trained_for(path: &std::path::Path) -> Vec<TrainedFor> {
    let Some(dir) = (if path.is_dir() {
        Some(path)
    } else {
        path.parent()
    }) else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(dir.join("qat.txt")) else {
        return Vec::new();
    };
    let all = TrainedFor::parse_all(&text);
    for t in &all {
        eprintln!(
            "{} was finetuned with GHN-QAT at {} (weights {:?}, activations {:?}): its exports \
             at {} take those ranges unless --weight-clip/--act-clip say otherwise",
            path.display(),
            t.precision,
            t.weight_clip,
            t.act_clip,
            t.precision
        );
    }
    all
}

fn parse_rounding(name: &str) -> Result<Rounding, String> {
    match name {
        "single" => Ok(Rounding::Single),
        "double" => Ok(Rounding::Double),
        other => Err(format!("unknown rounding '{other}': single or double")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        quant: QuantArgs,
    }

    #[test]
    fn clippings_can_be_named_per_bit_width() {
        let q = Cli::parse_from([
            "x",
            "--weight-clip",
            "w4a4=percentile,w2a2=percentile:2",
            "--act-clip",
            "percentile,w8a8=absolute",
        ])
        .quant;
        let clips = |p: Precision| {
            let c = q.config_for(p, &[]);
            (c.weight_clip, c.act_clip)
        };
        assert_eq!(
            clips(Precision::new(4, 4)),
            (Clip::Percentile(1.0), Clip::Percentile(1.0))
        );
        assert_eq!(
            clips(Precision::new(2, 2)),
            (Clip::Percentile(2.0), Clip::Percentile(1.0))
        );
        assert_eq!(
            clips(Precision::new(8, 8)),
            (Clip::Absolute, Clip::Absolute),
            "unnamed weights keep the default; named activations win over the shared clipping"
        );
        for bad in [
            "w4a4=percentile,w4a4=absolute",
            "percentile,absolute",
            "w9a4=percentile",
            "w4a4=sometimes",
        ] {
            assert!(bad.parse::<ClipChoice>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn a_checkpoint_sets_the_clipping_of_its_own_bit_width_only() {
        let trained = &[TrainedFor {
            precision: Precision::new(4, 4),
            weight_clip: Clip::Percentile(1.0),
            act_clip: Clip::Percentile(2.0),
        }];
        let plain = Cli::parse_from(["x"]).quant;
        let w4a4 = plain.config_for(Precision::new(4, 4), trained);
        assert_eq!(
            (w4a4.weight_clip, w4a4.act_clip),
            (Clip::Percentile(1.0), Clip::Percentile(2.0))
        );
        let w8a8 = plain.config_for(Precision::new(8, 8), trained);
        assert_eq!(
            (w8a8.weight_clip, w8a8.act_clip),
            (Clip::Absolute, Clip::Absolute)
        );
        assert_eq!(
            w4a4.act_calib,
            ActCalib::Quantized,
            "as the checkpoint trained"
        );
        assert_eq!(w8a8.act_calib, ActCalib::Float);
        assert_eq!(
            plain.config_for(Precision::new(4, 4), &[]).act_calib,
            ActCalib::Float
        );
        let float = Cli::parse_from(["x", "--act-calib", "float"]).quant;
        assert_eq!(
            float.config_for(Precision::new(4, 4), trained).act_calib,
            ActCalib::Float
        );
        let asked = Cli::parse_from(["x", "--act-clip", "absolute"]).quant;
        let w4a4 = asked.config_for(Precision::new(4, 4), trained);
        assert_eq!(
            (w4a4.weight_clip, w4a4.act_clip),
            (Clip::Percentile(1.0), Clip::Absolute)
        );
    }
}

//! What to quantize and how: bit-widths (`w4a8`), weight scheme, range clipping and the simulation
//! method — one value shared by QAT, calibration, export and evaluation so they cannot disagree.

use std::fmt;
use std::str::FromStr;

use shared_format::op::WeightScheme;

use super::fake::Method;
use super::layers::LayerBits;
use ghnq_core::arch::Net;

/// Weight and activation bit-widths, written `w<bits>a<bits>` (the paper's W4/A8 is `w4a8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Precision {
    /// Weight bits, 2..=8.
    pub weight_bits: u8,
    /// Activation bits, 2..=8.
    pub act_bits: u8,
}

impl Precision {
    /// The paper's four settings.
    pub const PAPER: [Precision; 4] = [
        Precision::new(8, 8),
        Precision::new(4, 8),
        Precision::new(4, 4),
        Precision::new(2, 2),
    ];

    /// `w{weight_bits}a{act_bits}`.
    pub const fn new(weight_bits: u8, act_bits: u8) -> Precision {
        Precision {
            weight_bits,
            act_bits,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "w{}a{}", self.weight_bits, self.act_bits)
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "'{s}' is not a precision: write w<bits>a<bits> with 2..=8 bits each, e.g. w8a8, w4a4, w2a2"
            )
        };
        let rest = s.trim().to_ascii_lowercase();
        let rest = rest.strip_prefix('w').ok_or_else(bad)?;
        let (w, a) = rest.split_once('a').ok_or_else(bad)?;
        let bits = |t: &str| -> Result<u8, String> {
            t.parse::<u8>()
                .ok()
                .filter(|b| (2..=8).contains(b))
                .ok_or_else(bad)
        };
        Ok(Precision::new(bits(w)?, bits(a)?))
    }
}

/// How a quantization range is taken from values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Clip {
    /// Absolute min and max.
    Absolute,
    /// Clip at the given percentile at both ends (the paper: 1 %).
    Percentile(f32),
}

impl FromStr for Clip {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "absolute" | "minmax" => Ok(Clip::Absolute),
            "percentile" => Ok(Clip::Percentile(1.0)),
            other => other
                .strip_prefix("percentile:")
                .and_then(|p| p.parse::<f32>().ok())
                .filter(|p| (0.0..50.0).contains(p))
                .map(Clip::Percentile)
                .ok_or_else(|| {
                    format!(
                        "'{other}' is not a clipping: absolute, percentile (1 %) or percentile:<p>"
                    )
                }),
        }
    }
}

/// What an activation's range is measured on at calibration: the tensor's values with every
/// earlier activation in float, or already quantized as the device computes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActCalib {
    /// Earlier activations in float (weights quantized): post-training quantization's practice,
    /// and at W4A4 the better of the two for the float GHN's predictions (GHN-Q: 24.3 against
    /// 22.8 % on the 20 validation nets).
    Float,
    /// Earlier activations quantized with each batch's own ranges, as GHN-QAT trains: the ranges
    /// of the net a GHN-QAT prediction was trained as. On the W2A2 GHN-QAT's 20 validation nets
    /// 16.7 % against 13.3 % with [`ActCalib::Float`]; at W4A4 31.3 against 30.9 %.
    Quantized,
}

impl FromStr for ActCalib {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "float" => Ok(ActCalib::Float),
            "quantized" => Ok(ActCalib::Quantized),
            other => Err(format!(
                "'{other}' is not an activation calibration: quantized or float"
            )),
        }
    }
}

/// Which net calibration measures the BatchNorm population statistics the device folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BnStats {
    /// The float net: post-training quantization's practice (the random-init study's QUINT8).
    Float,
    /// The quantized simulation as QAT trains it (quantized weights, each batch's activation
    /// ranges). At 4 bits a layer's pre-BN statistics in the quantized net are far from the
    /// float net's, and a GHN-QAT prediction or a QAT net only ever normalised with the former:
    /// folding the float statistics cost test-000000 30 of its 47 % at W4A4 (`finetune
    /// --deploy-gap`, results/ghn-qat-cpu).
    Quantized,
}

impl FromStr for BnStats {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "float" => Ok(BnStats::Float),
            "quantized" => Ok(BnStats::Quantized),
            other => Err(format!(
                "'{other}' is not a BN statistics source: quantized or float"
            )),
        }
    }
}

/// Everything that decides the quantized net.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantConfig {
    /// Bit-widths of every layer without an override in `layers`.
    pub precision: Precision,
    /// Per-layer overrides (mixed precision).
    pub layers: LayerBits,
    /// Weight scheme.
    pub scheme: WeightScheme,
    /// Weight ranges (per-tensor-affine only; per-channel-symmetric uses each filter's peak).
    pub weight_clip: Clip,
    /// Activation ranges.
    pub act_clip: Clip,
    /// SimQuant or NoiseQuant during training (evaluation always rounds).
    pub method: Method,
    /// Where export's BatchNorm statistics come from.
    pub bn_stats: BnStats,
    /// What export's activation ranges are measured on.
    pub act_calib: ActCalib,
}

impl QuantConfig {
    /// The paper's defaults for a precision: per-tensor affine, absolute ranges, NoiseQuant at
    /// 2 bits (SimQuant was unstable there) and SimQuant otherwise; BN statistics calibrated in
    /// the quantized net (the paper does not say; see [`BnStats`]).
    pub fn paper(precision: Precision) -> QuantConfig {
        QuantConfig {
            precision,
            layers: LayerBits::none(),
            scheme: WeightScheme::PerTensorAffine,
            weight_clip: Clip::Absolute,
            act_clip: Clip::Absolute,
            method: if precision.weight_bits <= 2 || precision.act_bits <= 2 {
                Method::NoiseQuant
            } else {
                Method::SimQuant
            },
            bn_stats: BnStats::Quantized,
            act_calib: ActCalib::Float,
        }
    }

    /// The precision of node `node` of `net` (a convolution or the classifier), with the
    /// per-layer overrides applied.
    pub fn layer_precision(&self, net: &Net, node: usize) -> Precision {
        self.layers.of(net, node, self.precision)
    }

    /// The precision as a label: `w4a4`, or `w4a4[first=w8a8,last=w8a8]` with overrides.
    pub fn label(&self) -> String {
        if self.layers.is_empty() {
            self.precision.to_string()
        } else {
            format!("{}[{}]", self.precision, self.layers)
        }
    }
}

/// What a GHN-QAT checkpoint was finetuned for, read back from the `qat.txt` its run wrote
/// (`ghnq train` writes the run's [`QuantConfig`] there in its `Debug` form, one line per
/// bit-width a bit-conditioned run cycles through, which `--resume` compares). Exports of that
/// checkpoint at such a precision default to its clipping: a GHN trained under 1 % percentile
/// ranges predicts parameters for those ranges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainedFor {
    /// The bit-width it was trained at.
    pub precision: Precision,
    /// Its weight ranges.
    pub weight_clip: Clip,
    /// Its activation ranges.
    pub act_clip: Clip,
}

impl TrainedFor {
    /// Every line of a `qat.txt` that parses (one per bit-width trained for); empty for
    /// anything else.
    pub fn parse_all(text: &str) -> Vec<Self> {
        text.lines().filter_map(Self::parse).collect()
    }

    /// Parses one record of a `qat.txt`; `None` for anything else (a float checkpoint has no
    /// such file).
    pub fn parse(text: &str) -> Option<Self> {
        let field = |name: &str| -> Option<&str> {
            let at = text.find(&format!("{name}: "))? + name.len() + 2;
            let rest = &text[at..];
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            Some(rest[..end].trim())
        };
        let bits = |name: &str| field(name)?.parse::<u8>().ok();
        let clip = |name: &str| match field(name)? {
            "Absolute" => Some(Clip::Absolute),
            p => p
                .strip_prefix("Percentile(")?
                .strip_suffix(')')?
                .parse()
                .ok()
                .map(Clip::Percentile),
        };
        Some(Self {
            precision: Precision::new(bits("weight_bits")?, bits("act_bits")?),
            weight_clip: clip("weight_clip")?,
            act_clip: clip("act_clip")?,
        })
    }
}

/// Bits of the input image and of the logits: always 8. The image comes from an 8-bit sensor
/// and top-5 needs more than 2^A logit levels; every tensor in between uses the activation bits.
pub const IO_BITS: u8 = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precisions_parse_and_print() {
        assert_eq!("w4a8".parse::<Precision>().unwrap(), Precision::new(4, 8));
        assert_eq!("W2A2".parse::<Precision>().unwrap().to_string(), "w2a2");
        for bad in ["w9a8", "w4", "a4w4", "w1a1", "w4a", ""] {
            let e = bad.parse::<Precision>().unwrap_err();
            assert!(e.contains("w<bits>a<bits>"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_runs_qat_record_reads_back() {
        for (w, a, wc, ac) in [
            (4, 4, Clip::Percentile(1.0), Clip::Percentile(0.5)),
            (2, 2, Clip::Absolute, Clip::Absolute),
            (8, 4, Clip::Absolute, Clip::Percentile(2.0)),
        ] {
            let q = QuantConfig {
                weight_clip: wc,
                act_clip: ac,
                ..QuantConfig::paper(Precision::new(w, a))
            };
            // Exactly what `ghnq train` writes.
            let text = format!("{q:?}\n");
            assert_eq!(
                TrainedFor::parse(&text),
                Some(TrainedFor {
                    precision: Precision::new(w, a),
                    weight_clip: wc,
                    act_clip: ac
                }),
                "{text}"
            );
        }
        // The shipped checkpoints' older record (no `layers`, no `bn_stats`) still reads.
        let old = "QuantConfig { precision: Precision { weight_bits: 4, act_bits: 4 }, scheme: \
                   PerTensorAffine, weight_clip: Absolute, act_clip: Absolute, method: SimQuant }";
        assert_eq!(
            TrainedFor::parse(old).map(|t| t.precision),
            Some(Precision::new(4, 4))
        );
        assert_eq!(TrainedFor::parse("hid=32"), None);
        // A bit-conditioned run's record: a line per bit-width, each with its own clipping.
        let per_bits: Vec<QuantConfig> = [(8, Clip::Absolute), (2, Clip::Percentile(1.0))]
            .map(|(b, clip)| QuantConfig {
                weight_clip: clip,
                act_clip: clip,
                ..QuantConfig::paper(Precision::new(b, b))
            })
            .into();
        let text: String = per_bits.iter().map(|q| format!("{q:?}\n")).collect();
        let all = TrainedFor::parse_all(&text);
        assert_eq!(
            all.iter()
                .map(|t| (t.precision, t.weight_clip, t.act_clip))
                .collect::<Vec<_>>(),
            per_bits
                .iter()
                .map(|q| (q.precision, q.weight_clip, q.act_clip))
                .collect::<Vec<_>>()
        );
        assert!(TrainedFor::parse_all("hid=32\n").is_empty());
    }

    #[test]
    fn clips_parse() {
        assert_eq!("absolute".parse::<Clip>().unwrap(), Clip::Absolute);
        assert_eq!("percentile".parse::<Clip>().unwrap(), Clip::Percentile(1.0));
        assert_eq!(
            "percentile:0.5".parse::<Clip>().unwrap(),
            Clip::Percentile(0.5)
        );
        assert!("percentile:60".parse::<Clip>().is_err());
    }

    #[test]
    fn two_bits_default_to_noise_quant() {
        assert_eq!(
            QuantConfig::paper(Precision::new(2, 2)).method,
            Method::NoiseQuant
        );
        assert_eq!(
            QuantConfig::paper(Precision::new(4, 4)).method,
            Method::SimQuant
        );
    }
}

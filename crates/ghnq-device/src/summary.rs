//! `ghnq inspect`'s content: what a blob holds, computed from the validated model.

use std::fmt;

use shared_format::{Model, Op, Rounding, Window, stats};

/// One op's line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OpLine {
    /// Execution index.
    pub index: usize,
    /// Kind name.
    pub kind: String,
    /// Input tensor ids.
    pub inputs: Vec<u16>,
    /// Output tensor id.
    pub output: u16,
    /// Output shape (h, w, c).
    pub shape: [u16; 3],
    /// Kernel, stride, dilation as text (empty for ops without a window).
    pub geometry: String,
    /// Weight storage bits (None for weightless ops).
    pub weight_bits: Option<u8>,
    /// Weight scheme (None for weightless ops).
    pub scheme: Option<String>,
    /// Output activation bits.
    pub activation_bits: u8,
    /// Weights and biases.
    pub params: u64,
    /// Multiply-accumulates per inference.
    pub macs: u64,
}

/// Everything `ghnq inspect` prints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Format version `major.minor`.
    pub format: String,
    /// Rounding mode.
    pub rounding: String,
    /// Header CRC-32.
    pub crc32: String,
    /// Blob size in bytes.
    pub blob_bytes: usize,
    /// Model name from the metadata.
    pub name: String,
    /// Precision label.
    pub precision: String,
    /// Dataset.
    pub dataset: String,
    /// Calibration samples.
    pub calibration_samples: u32,
    /// Architecture hash.
    pub arch_hash: String,
    /// GHN checkpoint hash.
    pub ghn_checkpoint_hash: String,
    /// Input shape and quantization.
    pub input: String,
    /// Output shape and quantization.
    pub output: String,
    /// Ops.
    pub ops: Vec<OpLine>,
    /// Total parameters.
    pub params: u64,
    /// Total MACs.
    pub macs: u64,
    /// Bytes of packed weights, biases and requantization tables.
    pub constant_bytes: u64,
    /// Peak activation bytes.
    pub activation_bytes: usize,
    /// Scratch bytes.
    pub scratch_bytes: usize,
    /// Arena the caller must provide.
    pub arena_bytes: usize,
}

fn geometry(w: &Window) -> String {
    let p = w.padding;
    format!(
        "k{}x{} s{}x{} d{}x{} p{},{},{},{}",
        w.kernel_h,
        w.kernel_w,
        w.stride_h,
        w.stride_w,
        w.dilation_h,
        w.dilation_w,
        p.top,
        p.left,
        p.bottom,
        p.right
    )
}

impl Summary {
    /// Summarises a validated model.
    pub fn new(model: &Model<'_>, blob_bytes: usize) -> Self {
        let tensors = model.tensors();
        let mut ops = Vec::new();
        let mut constant_bytes = 0u64;
        for (index, op) in model.ops().enumerate() {
            let op = op.expect("a validated model decodes");
            let out = tensors.get(op.output()).expect("validated");
            let window = match &op {
                Op::Conv2d(c) => Some(c.window),
                Op::DepthwiseConv2d(d) => Some(d.window),
                Op::MaxPool(p) | Op::AvgPool(p) => Some(p.window),
                _ => None,
            };
            constant_bytes += match &op {
                Op::Conv2d(c) => {
                    (c.weights.data.len()
                        + c.bias.0.len()
                        + c.requant.multipliers.0.len()
                        + c.requant.shifts.len()) as u64
                }
                Op::DepthwiseConv2d(d) => {
                    (d.weights.data.len()
                        + d.bias.0.len()
                        + d.requant.multipliers.0.len()
                        + d.requant.shifts.len()) as u64
                }
                Op::Linear(l) => {
                    (l.weights.data.len()
                        + l.bias.0.len()
                        + l.requant.multipliers.0.len()
                        + l.requant.shifts.len()) as u64
                }
                _ => 0,
            };
            ops.push(OpLine {
                index,
                kind: op.kind().name().into(),
                inputs: op.inputs().to_vec(),
                output: op.output(),
                shape: [out.shape.h, out.shape.w, out.shape.c],
                geometry: window.as_ref().map(geometry).unwrap_or_default(),
                weight_bits: op.weights().map(|w| w.bits),
                scheme: op.weights().map(|w| match w.scheme {
                    shared_format::WeightScheme::PerTensorAffine => {
                        format!("per-tensor z={}", w.zero_point)
                    }
                    shared_format::WeightScheme::PerChannelSymmetric => "per-channel".into(),
                }),
                activation_bits: out.bits,
                params: stats::params(&op, tensors),
                macs: stats::macs(&op, tensors),
            });
        }
        let header = model.header();
        let meta = model.metadata();
        let io = |t: shared_format::TensorRecord, scale: f32| {
            format!(
                "{}x{}x{} int{} scale {scale} zero point {}",
                t.shape.h, t.shape.w, t.shape.c, t.bits, t.zero_point
            )
        };
        Summary {
            format: format!("{}.{}", header.major, header.minor),
            rounding: match header.rounding {
                Rounding::Double => "double (TFLM default)".into(),
                Rounding::Single => "single".into(),
            },
            crc32: format!("{:#010x}", header.crc32),
            blob_bytes,
            name: meta.name.into(),
            precision: meta.precision.into(),
            dataset: meta.dataset.into(),
            calibration_samples: meta.calibration_samples,
            arch_hash: format!("{:016x}", meta.arch_hash),
            ghn_checkpoint_hash: format!("{:016x}", meta.ghn_checkpoint_hash),
            input: io(model.input_tensor(), model.input().scale),
            output: io(model.output_tensor(), model.output().scale),
            params: ops.iter().map(|o| o.params).sum(),
            macs: ops.iter().map(|o| o.macs).sum(),
            ops,
            constant_bytes,
            activation_bytes: model.activation_bytes(),
            scratch_bytes: model.scratch_bytes(),
            arena_bytes: model.arena_bytes(),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_dash = |s: &str| {
            if s.is_empty() {
                "-".to_string()
            } else {
                s.to_string()
            }
        };
        writeln!(
            f,
            "model      {} ({} bytes, format {}, CRC {})",
            or_dash(&self.name),
            self.blob_bytes,
            self.format,
            self.crc32
        )?;
        writeln!(
            f,
            "precision  {}   rounding {}",
            or_dash(&self.precision),
            self.rounding
        )?;
        writeln!(
            f,
            "dataset    {}   calibration samples {}",
            or_dash(&self.dataset),
            self.calibration_samples
        )?;
        writeln!(
            f,
            "hashes     arch {}   ghn checkpoint {}",
            self.arch_hash, self.ghn_checkpoint_hash
        )?;
        writeln!(f, "input      {}", self.input)?;
        writeln!(f, "output     {}", self.output)?;
        writeln!(f)?;
        writeln!(
            f,
            "{:>4}  {:<17} {:<12} {:>4}  {:<14} {:<26} {:>5} {:<16} {:>5} {:>9} {:>11}",
            "op",
            "kind",
            "inputs",
            "out",
            "shape",
            "geometry",
            "wbits",
            "scheme",
            "abits",
            "params",
            "MACs"
        )?;
        for o in &self.ops {
            let inputs = o
                .inputs
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",");
            writeln!(
                f,
                "{:>4}  {:<17} {:<12} {:>4}  {:<14} {:<26} {:>5} {:<16} {:>5} {:>9} {:>11}",
                o.index,
                o.kind,
                inputs,
                o.output,
                format!("{}x{}x{}", o.shape[0], o.shape[1], o.shape[2]),
                or_dash(&o.geometry),
                o.weight_bits.map_or("-".into(), |b| b.to_string()),
                o.scheme.clone().unwrap_or_else(|| "-".into()),
                o.activation_bits,
                o.params,
                o.macs
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "parameters {}   MACs {}   constant bytes {}",
            self.params, self.macs, self.constant_bytes
        )?;
        write!(
            f,
            "arena      {} bytes = {} activations + {} scratch",
            self.arena_bytes, self.activation_bytes, self.scratch_bytes
        )
    }
}

//! Host-side assembly of blobs and bundles. The exporter and the tests build models only through
//! [`ModelBuilder`], which derives tensor lifetimes from the ops, runs the memory planner, and
//! finally decodes its own output with [`Model::from_bytes`]: it cannot emit a blob that a device
//! would refuse.

use std::string::String;
use std::vec::Vec;

use crate::error::FormatError;
use crate::header::{Header, MODEL_MAGIC, Rounding, VECTORS_MAGIC};
use crate::model::{IoSpec, Metadata, Model, Payload};
use crate::op::Op;
use crate::plan::{Buffer, IN_PLACE_MINOR, in_place, place_aliased, scratch_bytes};
use crate::tensor::{Shape, TensorId, TensorRecord, TensorTable};
use crate::vectors::VectorsPayload;

/// Why a model could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BuildError {
    /// An op names a tensor that was never declared.
    #[error("op {op} uses undeclared tensor {tensor}")]
    UnknownTensor {
        /// Op index.
        op: usize,
        /// Tensor id.
        tensor: TensorId,
    },
    /// An op reads a tensor no earlier op produced.
    #[error("op {op} reads tensor {tensor} before any op produces it")]
    NotProduced {
        /// Op index.
        op: usize,
        /// Tensor id.
        tensor: TensorId,
    },
    /// Two ops write the same tensor.
    #[error("op {op} writes tensor {tensor}, which is already produced")]
    ProducedTwice {
        /// Op index.
        op: usize,
        /// Tensor id.
        tensor: TensorId,
    },
    /// A declared tensor no op writes.
    #[error("tensor {0} is declared but no op produces it")]
    NeverProduced(TensorId),
    /// More than 65,535 ops or tensors.
    #[error("too many ops or tensors for format 1 (at most 65,535)")]
    TooLarge,
    /// A tensor larger than 4 GiB.
    #[error("tensor {0} is larger than 4 GiB")]
    TensorTooLarge(TensorId),
    /// postcard could not encode a value.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// The assembled blob failed validation (a parameter out of range, a shape mismatch, …).
    #[error("the assembled blob is invalid: {0}")]
    Invalid(#[from] FormatError),
}

/// An activation tensor to declare: shape, zero point and bit-width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorSpec {
    /// Shape.
    pub shape: Shape,
    /// Zero point.
    pub zero_point: i8,
    /// Bit-width, 2..=8.
    pub bits: u8,
}

/// Assembles a model blob from ops.
#[derive(Debug, Clone)]
pub struct ModelBuilder {
    rounding: Rounding,
    tensors: Vec<TensorSpec>,
    first: Vec<Option<u16>>,
    last: Vec<u16>,
    input_scale: f32,
    ops: Vec<u8>,
    op_count: usize,
    /// The lowest minor format version that has every op pushed so far.
    minor: u16,
    name: String,
    precision: String,
    dataset: String,
    arch_hash: u64,
    ghn_checkpoint_hash: u64,
    calibration_samples: u32,
}

impl ModelBuilder {
    /// Starts a model whose input (tensor 0) is `input`, with real scale `input_scale`.
    pub fn new(input: TensorSpec, input_scale: f32) -> Self {
        Self {
            rounding: Rounding::Double,
            tensors: vec![input],
            first: vec![Some(0)],
            last: vec![0],
            input_scale,
            ops: Vec::new(),
            op_count: 0,
            minor: 0,
            name: String::new(),
            precision: String::new(),
            dataset: String::new(),
            arch_hash: 0,
            ghn_checkpoint_hash: 0,
            calibration_samples: 0,
        }
    }

    /// The model input's id.
    pub const fn input(&self) -> TensorId {
        0
    }

    /// Sets the rounding mode (double rounding, TFLM's default, unless changed).
    pub fn rounding(&mut self, rounding: Rounding) -> &mut Self {
        self.rounding = rounding;
        self
    }

    /// Sets the provenance metadata.
    pub fn metadata(
        &mut self,
        name: &str,
        precision: &str,
        dataset: &str,
        arch_hash: u64,
        ghn_checkpoint_hash: u64,
        calibration_samples: u32,
    ) -> &mut Self {
        self.name = name.into();
        self.precision = precision.into();
        self.dataset = dataset.into();
        self.arch_hash = arch_hash;
        self.ghn_checkpoint_hash = ghn_checkpoint_hash;
        self.calibration_samples = calibration_samples;
        self
    }

    /// Declares an activation tensor, to be produced by a later op.
    pub fn tensor(&mut self, spec: TensorSpec) -> TensorId {
        self.tensors.push(spec);
        self.first.push(None);
        self.last.push(0);
        (self.tensors.len() - 1) as TensorId
    }

    /// The spec of a declared tensor.
    pub fn spec(&self, id: TensorId) -> Option<TensorSpec> {
        self.tensors.get(id as usize).copied()
    }

    /// Number of ops pushed so far.
    pub const fn op_count(&self) -> usize {
        self.op_count
    }

    /// Appends an op; returns its output tensor.
    pub fn push(&mut self, op: &Op<'_>) -> Result<TensorId, BuildError> {
        let index = self.op_count;
        let index16 = u16::try_from(index).map_err(|_| BuildError::TooLarge)?;
        for t in op.inputs() {
            let i = t as usize;
            match self.first.get(i) {
                None => {
                    return Err(BuildError::UnknownTensor {
                        op: index,
                        tensor: t,
                    });
                }
                Some(None) => {
                    return Err(BuildError::NotProduced {
                        op: index,
                        tensor: t,
                    });
                }
                Some(Some(_)) => self.last[i] = self.last[i].max(index16),
            }
        }
        let out = op.output() as usize;
        match self.first.get(out) {
            None => {
                return Err(BuildError::UnknownTensor {
                    op: index,
                    tensor: op.output(),
                });
            }
            Some(Some(_)) => {
                return Err(BuildError::ProducedTwice {
                    op: index,
                    tensor: op.output(),
                });
            }
            Some(None) => {
                self.first[out] = Some(index16);
                self.last[out] = index16;
            }
        }
        self.minor = self.minor.max(op.min_minor());
        postcard::to_extend(op, core::mem::take(&mut self.ops))
            .map(|v| self.ops = v)
            .map_err(|e| BuildError::Encode(e.to_string()))?;
        self.op_count += 1;
        Ok(op.output())
    }

    /// Plans memory, encodes, and validates the blob; `output` is the tensor holding the logits.
    pub fn finish(&self, output: TensorId, output_scale: f32) -> Result<Vec<u8>, BuildError> {
        let op_count = u16::try_from(self.op_count).map_err(|_| BuildError::TooLarge)?;
        let mut buffers = Vec::with_capacity(self.tensors.len());
        for (id, spec) in self.tensors.iter().enumerate() {
            let first = self.first[id].ok_or(BuildError::NeverProduced(id as TensorId))?;
            let last = if id == output as usize {
                op_count
            } else {
                self.last[id]
            };
            let size = u32::try_from(spec.shape.elements())
                .map_err(|_| BuildError::TensorTooLarge(id as TensorId))?;
            buffers.push(Buffer { size, first, last });
        }
        let ops = self.decode_ops(op_count)?;
        let plan = self.plan(&buffers, &ops)?;
        let minor = if plan.in_place {
            self.minor.max(IN_PLACE_MINOR)
        } else {
            self.minor
        };
        let (table, activation_bytes, scratch) = (plan.table, plan.activation_bytes, plan.scratch);
        let payload = Payload {
            input: IoSpec {
                tensor: 0,
                scale: self.input_scale,
            },
            output: IoSpec {
                tensor: output,
                scale: output_scale,
            },
            tensors: &table,
            op_count,
            ops: &self.ops,
            metadata: Metadata {
                name: &self.name,
                arch_hash: self.arch_hash,
                ghn_checkpoint_hash: self.ghn_checkpoint_hash,
                precision: &self.precision,
                calibration_samples: self.calibration_samples,
                dataset: &self.dataset,
            },
        };
        let body = postcard::to_stdvec(&payload).map_err(|e| BuildError::Encode(e.to_string()))?;
        let blob = Header::write_file(
            MODEL_MAGIC,
            minor,
            self.rounding,
            activation_bytes,
            scratch,
            &body,
        );
        Model::from_bytes(&blob)?;
        Ok(blob)
    }

    fn decode_ops(&self, op_count: u16) -> Result<Vec<Op<'_>>, BuildError> {
        let mut rest = self.ops.as_slice();
        let mut ops = Vec::with_capacity(op_count as usize);
        for _ in 0..op_count {
            let (op, tail): (Op<'_>, _) =
                postcard::take_from_bytes(rest).map_err(|e| BuildError::Encode(e.to_string()))?;
            ops.push(op);
            rest = tail;
        }
        Ok(ops)
    }

    /// The tensor table of a placement.
    fn table(&self, buffers: &[Buffer], offsets: &[u32]) -> Vec<u8> {
        let mut table = Vec::with_capacity(self.tensors.len() * crate::tensor::RECORD_LEN);
        for ((spec, buf), offset) in self.tensors.iter().zip(buffers).zip(offsets) {
            let record = TensorRecord {
                shape: spec.shape,
                zero_point: spec.zero_point,
                bits: spec.bits,
                offset: *offset,
                first_op: buf.first,
                last_op: buf.last,
            };
            table.extend_from_slice(&record.to_bytes());
        }
        table
    }

    /// Places the buffers with the ops in `over` writing in place, and sizes the scratch.
    fn evaluate(
        &self,
        buffers: &[Buffer],
        ops: &[Op<'_>],
        over: &[Option<usize>],
    ) -> Result<Plan, BuildError> {
        let (offsets, activation_bytes) = place_aliased(buffers, over);
        let table = self.table(buffers, &offsets);
        let tensors = TensorTable::new(&table)?;
        let most = ops
            .iter()
            .map(|op| scratch_bytes(op, &tensors))
            .max()
            .unwrap_or(0);
        let scratch = u32::try_from(most).map_err(|_| BuildError::TooLarge)?;
        Ok(Plan {
            table,
            activation_bytes,
            scratch,
            in_place: over.iter().any(Option::is_some),
        })
    }

    /// The memory plan: TFLM's greedy placement, with ops writing their output over an input
    /// that dies at them (format 1.6, [`crate::plan::in_place`]) wherever that lowers the arena
    /// (activations plus scratch). Every eligible op starts in place; each is then taken out
    /// again if the arena does not grow without it, so only the ops that pay for their scratch
    /// and their band-wise execution stay. A model that gains nothing keeps the plain plan, and
    /// with it the format minor its ops need.
    fn plan(&self, buffers: &[Buffer], ops: &[Op<'_>]) -> Result<Plan, BuildError> {
        let record = |id: usize| TensorRecord {
            shape: self.tensors[id].shape,
            zero_point: self.tensors[id].zero_point,
            bits: self.tensors[id].bits,
            offset: 0,
            first_op: buffers[id].first,
            last_op: buffers[id].last,
        };
        let mut over = vec![None; buffers.len()];
        let mut candidates = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            let y = op.output() as usize;
            let Some(x) = op.inputs().iter().map(|&x| x as usize).find(|&x| {
                x < buffers.len()
                    && y < buffers.len()
                    && buffers[x].last as usize == index
                    && in_place(op, x as TensorId, &record(x), &record(y))
            }) else {
                continue;
            };
            over[y] = Some(x);
            candidates.push(y);
        }
        let plain = self.evaluate(buffers, ops, &vec![None; buffers.len()])?;
        if candidates.is_empty() {
            return Ok(plain);
        }
        let mut best = self.evaluate(buffers, ops, &over)?;
        for y in candidates {
            let keep = over[y].take();
            let trial = self.evaluate(buffers, ops, &over)?;
            if trial.arena() <= best.arena() {
                best = trial;
            } else {
                over[y] = keep;
            }
        }
        Ok(if best.arena() < plain.arena() {
            best
        } else {
            plain
        })
    }
}

/// A memory plan: the tensor table, the activation peak and the scratch.
struct Plan {
    table: Vec<u8>,
    activation_bytes: u32,
    scratch: u32,
    in_place: bool,
}

impl Plan {
    fn arena(&self) -> u64 {
        self.activation_bytes as u64 + self.scratch as u64
    }
}

/// Assembles a test-vector bundle.
#[derive(Debug, Clone)]
pub struct TestVectorsBuilder {
    model_crc: u32,
    input_len: usize,
    output_len: usize,
    labels: Vec<u8>,
    inputs: Vec<u8>,
    expected: Vec<u8>,
}

impl TestVectorsBuilder {
    /// A bundle for the model whose header CRC is `model_crc`.
    pub fn new(model_crc: u32, input_len: usize, output_len: usize) -> Self {
        Self {
            model_crc,
            input_len,
            output_len,
            labels: Vec::new(),
            inputs: Vec::new(),
            expected: Vec::new(),
        }
    }

    /// Adds one sample; lengths must match the bundle's.
    pub fn push(&mut self, input: &[i8], label: u8, expected: &[i8]) -> Result<(), BuildError> {
        if input.len() != self.input_len || expected.len() != self.output_len {
            return Err(BuildError::Invalid(FormatError::Vectors(
                "sample length differs from the bundle's",
            )));
        }
        self.labels.push(label);
        self.inputs.extend(input.iter().map(|&v| v as u8));
        self.expected.extend(expected.iter().map(|&v| v as u8));
        Ok(())
    }

    /// Number of samples so far.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when no sample was added.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Encodes the bundle.
    pub fn finish(&self) -> Result<Vec<u8>, BuildError> {
        let too_large = |_| BuildError::TooLarge;
        let payload = VectorsPayload {
            model_crc: self.model_crc,
            count: u32::try_from(self.labels.len()).map_err(too_large)?,
            input_len: u32::try_from(self.input_len).map_err(too_large)?,
            output_len: u32::try_from(self.output_len).map_err(too_large)?,
            labels: &self.labels,
            inputs: &self.inputs,
            expected: &self.expected,
        };
        let body = postcard::to_stdvec(&payload).map_err(|e| BuildError::Encode(e.to_string()))?;
        Ok(Header::write_file(
            VECTORS_MAGIC,
            0,
            Rounding::Double,
            0,
            0,
            &body,
        ))
    }
}

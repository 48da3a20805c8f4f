//! Read access to one TFLite subgraph: tensors with their shapes, types, quantization and
//! constant data, resolved once so the op mapping reads plain Rust values.

use super::schema::{self, BuiltinOperator, TensorType};

/// One tensor of the subgraph.
#[derive(Debug, Clone)]
pub struct TensorInfo<'a> {
    /// Name from the file (for messages).
    pub name: String,
    /// Dimensions (TFLite order: NHWC for activations).
    pub shape: Vec<i32>,
    /// The converter's shape signature (−1 marks a dimension it did not know; empty when the
    /// file has none, i.e. every dimension is static).
    pub shape_signature: Vec<i32>,
    /// Element type.
    pub ty: TensorType,
    /// Scales (one per tensor, or one per channel along `quantized_dimension`).
    pub scales: Vec<f32>,
    /// Zero points, as many as scales.
    pub zero_points: Vec<i64>,
    /// Axis of per-channel quantization.
    pub quantized_dimension: i32,
    /// Constant data, if the tensor has a non-empty buffer.
    pub data: Option<&'a [u8]>,
}

impl TensorInfo<'_> {
    /// Number of elements.
    pub fn elements(&self) -> usize {
        self.shape.iter().map(|&d| d.max(0) as usize).product()
    }

    /// The type's schema name, e.g. "INT8".
    pub fn type_name(&self) -> &'static str {
        self.ty.variant_name().unwrap_or("unknown type")
    }
}

/// One operator: its builtin code, inputs and outputs (−1 = optional input absent).
#[derive(Debug, Clone)]
pub struct OpInfo<'a> {
    /// Index in the subgraph.
    pub index: usize,
    /// Builtin code (custom ops have `CUSTOM`).
    pub code: BuiltinOperator,
    /// Name of a custom op.
    pub custom: Option<&'a str>,
    /// Input tensor indices.
    pub inputs: Vec<i32>,
    /// Output tensor indices.
    pub outputs: Vec<i32>,
    /// The flatbuffer table, for the builtin options.
    pub raw: schema::Operator<'a>,
}

impl OpInfo<'_> {
    /// Builtin name for messages (the custom op's name for custom ops).
    pub fn name(&self) -> String {
        match (self.code, self.custom) {
            (BuiltinOperator::CUSTOM, Some(name)) => format!("custom op {name}"),
            (code, _) => code
                .variant_name()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("builtin {}", code.0)),
        }
    }
}

/// The subgraph, resolved.
#[derive(Debug)]
pub struct Graph<'a> {
    /// All tensors, by index.
    pub tensors: Vec<TensorInfo<'a>>,
    /// Operators in execution order.
    pub ops: Vec<OpInfo<'a>>,
    /// Subgraph inputs.
    pub inputs: Vec<i32>,
    /// Subgraph outputs.
    pub outputs: Vec<i32>,
}

/// A structural defect the verifier cannot see (dangling indices).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphDefect {
    /// The model has no subgraph at all.
    #[error("the model has no subgraph")]
    NoSubgraph,
    /// An op whose operator code index is past the model's table.
    #[error("op {op} names operator code {code}, which does not exist")]
    OperatorCode {
        /// Operator index.
        op: usize,
        /// The operator code index it names.
        code: usize,
    },
    /// An op input or output past the tensor table.
    #[error("op {op} names tensor {tensor}, which does not exist")]
    OpTensor {
        /// Operator index.
        op: usize,
        /// The tensor index it names.
        tensor: i32,
    },
    /// A subgraph input or output past the tensor table.
    #[error("the subgraph's input/output list names tensor {tensor}, which does not exist")]
    IoTensor {
        /// The tensor index it names.
        tensor: i32,
    },
}

impl<'a> Graph<'a> {
    /// Resolves subgraph 0 of a verified model.
    pub fn new(model: &schema::Model<'a>) -> Result<Self, GraphDefect> {
        let subgraph = model
            .subgraphs()
            .and_then(|s| (!s.is_empty()).then(|| s.get(0)))
            .ok_or(GraphDefect::NoSubgraph)?;
        let buffers = model.buffers();
        let buffer = |index: u32| -> Option<&'a [u8]> {
            let buffers = buffers?;
            let i = index as usize;
            (i < buffers.len())
                .then(|| buffers.get(i).data().map(|d| d.bytes()))
                .flatten()
                .filter(|d| !d.is_empty())
        };
        let tensors = subgraph
            .tensors()
            .map(|ts| {
                ts.iter()
                    .map(|t| {
                        let q = t.quantization();
                        TensorInfo {
                            name: t.name().unwrap_or("").to_owned(),
                            shape: t.shape().map(|s| s.iter().collect()).unwrap_or_default(),
                            shape_signature: t
                                .shape_signature()
                                .map(|s| s.iter().collect())
                                .unwrap_or_default(),
                            ty: t.type_(),
                            scales: q
                                .and_then(|q| q.scale())
                                .map(|s| s.iter().collect())
                                .unwrap_or_default(),
                            zero_points: q
                                .and_then(|q| q.zero_point())
                                .map(|z| z.iter().collect())
                                .unwrap_or_default(),
                            quantized_dimension: q.map(|q| q.quantized_dimension()).unwrap_or(0),
                            data: buffer(t.buffer()),
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let codes = model.operator_codes();
        let mut ops = Vec::new();
        for (index, op) in subgraph.operators().into_iter().flatten().enumerate() {
            let code_index = op.opcode_index() as usize;
            let code = codes
                .filter(|c| code_index < c.len())
                .map(|c| c.get(code_index))
                .ok_or(GraphDefect::OperatorCode {
                    op: index,
                    code: code_index,
                })?;
            // Files from before schema 3a keep small codes in the deprecated i8 field only.
            let builtin = BuiltinOperator(
                code.builtin_code()
                    .0
                    .max(i32::from(code.deprecated_builtin_code())),
            );
            let indices =
                |v: Option<flatbuffers::Vector<'a, i32>>| -> Result<Vec<i32>, GraphDefect> {
                    let v: Vec<i32> = v.map(|v| v.iter().collect()).unwrap_or_default();
                    match v
                        .iter()
                        .find(|&&t| t < -1 || t as i64 >= tensors.len() as i64)
                    {
                        Some(&bad) => Err(GraphDefect::OpTensor {
                            op: index,
                            tensor: bad,
                        }),
                        None => Ok(v),
                    }
                };
            ops.push(OpInfo {
                index,
                code: builtin,
                custom: code.custom_code(),
                inputs: indices(op.inputs())?,
                outputs: indices(op.outputs())?,
                raw: op,
            });
        }
        let io = |v: Option<flatbuffers::Vector<'a, i32>>| -> Result<Vec<i32>, GraphDefect> {
            let v: Vec<i32> = v.map(|v| v.iter().collect()).unwrap_or_default();
            match v.iter().find(|&&t| t < 0 || t as usize >= tensors.len()) {
                Some(&bad) => Err(GraphDefect::IoTensor { tensor: bad }),
                None => Ok(v),
            }
        };
        Ok(Self {
            inputs: io(subgraph.inputs())?,
            outputs: io(subgraph.outputs())?,
            tensors,
            ops,
        })
    }

    /// The ops reading tensor `t`.
    pub fn readers(&self, t: i32) -> impl Iterator<Item = &OpInfo<'a>> {
        self.ops.iter().filter(move |op| op.inputs.contains(&t))
    }
}

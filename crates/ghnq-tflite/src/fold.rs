//! Static shape arithmetic, evaluated on the host at import time.
//!
//! With a dynamic batch, the TF converter writes Keras `Reshape` and `tf.reshape(x, [-1, n])`
//! heads as `SHAPE → STRIDED_SLICE → PACK → RESHAPE` (sometimes with CONCATENATION or GATHER of
//! the shape vector). TFLM runs the chain at every invoke, on shapes it reads from the file; every
//! value in it is therefore known here. [`fold_static_shapes`] evaluates each op whose outputs are
//! int32 (in an int8 model only shape arithmetic makes int32 tensors) from constant tensors and
//! the file's shapes, in execution order, so that the RESHAPE after it reads a constant shape
//! like any other. An int32 op it cannot evaluate is refused by name, index and reason: the
//! runtime has no int32 tensors, so such a chain cannot run on it.

use std::collections::HashMap;

use super::error::ImportError;
use super::graph::{Graph, OpInfo, TensorInfo};
use super::schema::{ActivationFunctionType, BuiltinOperator, TensorType};

/// Why an int32 op cannot be evaluated at import time (or a shape operand cannot be resolved).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    /// The op lacks an input it needs.
    #[error("input {k} is missing")]
    MissingInput {
        /// Input position.
        k: usize,
    },
    /// An input that is neither constant nor folded: it depends on the model's input.
    #[error(
        "input {k} (tensor {tensor} '{name}', {ty}) is neither a constant int32 tensor nor \
         computed from shapes alone: it depends on the model's input at run time"
    )]
    NotStatic {
        /// Input position.
        k: usize,
        /// Tensor index.
        tensor: i32,
        /// Tensor name.
        name: String,
        /// Tensor type.
        ty: &'static str,
    },
    /// An int8 activation input: the int32 result depends on the data.
    #[error(
        "input {k} (tensor {tensor} '{name}') is an int8 activation: the int32 output depends \
         on the model's input at run time, and the runtime has no int32 tensors"
    )]
    ActivationInput {
        /// Input position.
        k: usize,
        /// Tensor index.
        tensor: i32,
        /// Tensor name.
        name: String,
    },
    /// An operand that must be one value holds several (or none).
    #[error("{what} {values:?} is not a single value")]
    NotScalar {
        /// Which operand.
        what: String,
        /// Its values.
        values: Vec<i32>,
    },
    /// An operand that must be a vector has another rank.
    #[error("{what} of shape {shape:?} is not a vector (only rank-1 shape arithmetic is folded)")]
    NotVector {
        /// Which operand.
        what: String,
        /// Its shape.
        shape: Vec<i32>,
    },
    /// SHAPE of a tensor with a dynamic dimension other than the batch.
    #[error(
        "dimension {dim} of tensor {tensor} '{name}' is dynamic (shape signature {signature:?}); \
         only the batch may be, and it is imported as 1"
    )]
    DynamicDimension {
        /// The dynamic dimension.
        dim: usize,
        /// Tensor index.
        tensor: i32,
        /// Tensor name.
        name: String,
        /// Its shape signature.
        signature: Vec<i32>,
    },
    /// SHAPE with an int64 output.
    #[error("SHAPE with an int64 output is not folded (int32 is)")]
    Int64Shape,
    /// An op without the builtin options its evaluation reads.
    #[error("{op} without its options")]
    MissingOptions {
        /// TFLite builtin name.
        op: &'static str,
    },
    /// STRIDED_SLICE with an ellipsis or new-axis mask.
    #[error("ellipsis and new-axis masks are not folded")]
    SliceMasks,
    /// A STRIDED_SLICE stride of 0.
    #[error("stride 0")]
    ZeroStride,
    /// A shrunk STRIDED_SLICE axis at an index outside the vector.
    #[error("index {index} is outside the {len}-element vector")]
    SliceIndex {
        /// The index (before negative indices are resolved).
        index: i32,
        /// Vector length.
        len: usize,
    },
    /// A SLICE outside the vector.
    #[error("begin {begin}, size {size} do not fit a {len}-element vector")]
    SliceRange {
        /// First element.
        begin: i32,
        /// Element count (−1: to the end).
        size: i32,
        /// Vector length.
        len: i32,
    },
    /// PACK of inputs of different shapes.
    #[error("inputs of different shapes")]
    PackShapes,
    /// PACK along an axis other than a new first one.
    #[error("axis {axis}: only packing along a new first axis is folded")]
    PackAxis {
        /// The axis.
        axis: i32,
    },
    /// A fused activation on int32 CONCATENATION or arithmetic.
    #[error("a fused activation on int32 {what} is not folded")]
    FusedActivation {
        /// "CONCATENATION" or "arithmetic".
        what: &'static str,
    },
    /// CONCATENATION along an axis other than 0.
    #[error("axis {axis}: only shape vectors (axis 0) are folded")]
    ConcatAxis {
        /// The axis.
        axis: i32,
    },
    /// GATHER along an axis other than 0, or with batch dimensions.
    #[error("axis {axis}, batch_dims {batch_dims}: only gathering from a vector is folded")]
    GatherAxis {
        /// The axis.
        axis: i32,
        /// Batch dimensions.
        batch_dims: i32,
    },
    /// A GATHER index outside the params.
    #[error("index {index} is outside the {len}-element params")]
    GatherIndex {
        /// The index.
        index: i32,
        /// Params length.
        len: usize,
    },
    /// RESHAPE, SQUEEZE or EXPAND_DIMS whose output shape does not hold the input's values.
    #[error("output shape {shape:?} does not hold the {values} values")]
    ReshapeOutput {
        /// The recorded output shape.
        shape: Vec<i32>,
        /// Input value count.
        values: usize,
    },
    /// Elementwise operands that need general broadcasting.
    #[error("shapes {a:?} and {b:?} need general broadcasting, which is not folded")]
    Broadcast {
        /// First operand's shape.
        a: Vec<i32>,
        /// Second operand's shape.
        b: Vec<i32>,
    },
    /// int32 overflow in ADD, SUB or MUL.
    #[error("{x} and {y} overflow int32")]
    Overflow {
        /// First operand.
        x: i32,
        /// Second operand.
        y: i32,
    },
    /// An op this module does not evaluate.
    #[error(
        "{op} on int32 tensors is not folded (static shape arithmetic folds SHAPE, \
         STRIDED_SLICE, SLICE, PACK, CONCATENATION, GATHER, RESHAPE, SQUEEZE, EXPAND_DIMS, ADD, \
         SUB and MUL), and the runtime has no int32 tensors"
    )]
    UnsupportedOp {
        /// TFLite builtin name.
        op: String,
    },
    /// A reshape shape with a negative dimension other than one −1.
    #[error("shape {shape:?} has a negative dimension other than one -1")]
    ReshapeUnknowns {
        /// The shape operand.
        shape: Vec<i32>,
    },
    /// A reshape shape whose −1 cannot be resolved.
    #[error("shape {shape:?} cannot hold {elements} elements")]
    ReshapeIndivisible {
        /// The shape operand.
        shape: Vec<i32>,
        /// Input element count.
        elements: usize,
    },
    /// A reshape shape with another element count.
    #[error("shape {shape:?} does not hold the input's {elements} elements")]
    ReshapeElements {
        /// The shape operand.
        shape: Vec<i32>,
        /// Input element count.
        elements: usize,
    },
    /// Shape arithmetic whose output tensor is declared with another type than int32.
    #[error("output '{name}' is {ty}; shape arithmetic is folded in int32")]
    OutputType {
        /// Output tensor name.
        name: String,
        /// Its declared type.
        ty: &'static str,
    },
}

/// The value of one int32 tensor known at import time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Static {
    /// Dimensions (`[]` for a scalar).
    pub shape: Vec<i32>,
    /// Values in row-major order.
    pub values: Vec<i32>,
}

impl Static {
    fn vector(values: Vec<i32>) -> Self {
        Self {
            shape: vec![values.len() as i32],
            values,
        }
    }
}

/// What [`fold_static_shapes`] found: the values of the int32 tensors the folded ops make.
#[derive(Debug, Default)]
pub struct Folded {
    values: HashMap<usize, Static>,
    ops: Vec<usize>,
}

impl Folded {
    /// True when op `index` was evaluated here (it becomes no runtime op).
    pub fn is_folded(&self, index: usize) -> bool {
        self.ops.binary_search(&index).is_ok()
    }

    /// The value of tensor `t` if it is a constant int32 tensor or a folded op's output.
    pub fn value(&self, graph: &Graph<'_>, t: i32) -> Option<Static> {
        let index = usize::try_from(t).ok()?;
        self.values
            .get(&index)
            .cloned()
            .or_else(|| constant(graph.tensors.get(index)?))
    }
}

/// A constant int32 tensor's value.
fn constant(t: &TensorInfo<'_>) -> Option<Static> {
    if t.ty != TensorType::INT32 {
        return None;
    }
    let data = t.data?;
    let values: Vec<i32> = data
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (data.len() % 4 == 0 && values.len() == t.elements()).then(|| Static {
        shape: t.shape.clone(),
        values,
    })
}

/// True for an op that is shape arithmetic: every output is an int32 or int64 tensor.
fn is_shape_arithmetic(graph: &Graph<'_>, op: &OpInfo<'_>) -> bool {
    !op.outputs.is_empty()
        && op.outputs.iter().all(|&t| {
            t >= 0
                && matches!(
                    graph.tensors[t as usize].ty,
                    TensorType::INT32 | TensorType::INT64
                )
        })
}

/// Evaluates every shape-arithmetic op of `graph` in execution order; the first one that is not
/// static (an input computed from activations, a dynamic dimension, an op or option this module
/// does not evaluate) is the error.
pub fn fold_static_shapes(graph: &Graph<'_>) -> Result<Folded, ImportError> {
    let mut folded = Folded::default();
    for op in &graph.ops {
        if !is_shape_arithmetic(graph, op) {
            continue;
        }
        let not_static = |reason| ImportError::NotStatic {
            index: op.index,
            op: op.name(),
            reason,
        };
        let value = evaluate(graph, &folded, op).map_err(not_static)?;
        let out = op.outputs[0] as usize;
        let declared = &graph.tensors[out];
        if declared.ty != TensorType::INT32 {
            return Err(not_static(FoldError::OutputType {
                name: declared.name.clone(),
                ty: declared.type_name(),
            }));
        }
        folded.values.insert(out, value);
        folded.ops.push(op.index);
    }
    Ok(folded)
}

/// Input `k` of `op` as a static value, or why it is not one.
fn input(
    graph: &Graph<'_>,
    folded: &Folded,
    op: &OpInfo<'_>,
    k: usize,
) -> Result<Static, FoldError> {
    let t = *op
        .inputs
        .get(k)
        .filter(|&&t| t >= 0)
        .ok_or(FoldError::MissingInput { k })?;
    folded.value(graph, t).ok_or_else(|| {
        let info = &graph.tensors[t as usize];
        FoldError::NotStatic {
            k,
            tensor: t,
            name: info.name.clone(),
            ty: info.type_name(),
        }
    })
}

/// A static scalar or one-element vector.
fn scalar(s: &Static, what: &str) -> Result<i32, FoldError> {
    match s.values[..] {
        [v] => Ok(v),
        _ => Err(FoldError::NotScalar {
            what: what.to_owned(),
            values: s.values.clone(),
        }),
    }
}

/// A rank-1 static vector (shape vectors are).
fn vector(s: &Static, what: &str) -> Result<Vec<i32>, FoldError> {
    if s.shape.len() != 1 {
        return Err(FoldError::NotVector {
            what: what.to_owned(),
            shape: s.shape.clone(),
        });
    }
    Ok(s.values.clone())
}

fn evaluate(graph: &Graph<'_>, folded: &Folded, op: &OpInfo<'_>) -> Result<Static, FoldError> {
    let input = |k| input(graph, folded, op, k);
    match op.code {
        BuiltinOperator::SHAPE => {
            let t = *op
                .inputs
                .first()
                .filter(|&&t| t >= 0)
                .ok_or(FoldError::MissingInput { k: 0 })?;
            let x = &graph.tensors[t as usize];
            // TFLM reads the file's shape; a dimension the converter marked unknown (−1 in the
            // shape signature) other than the batch is a placeholder, not the model's shape.
            if let Some(d) = x
                .shape_signature
                .iter()
                .enumerate()
                .skip(1)
                .find_map(|(d, &v)| (v < 0).then_some(d))
            {
                return Err(FoldError::DynamicDimension {
                    dim: d,
                    tensor: t,
                    name: x.name.clone(),
                    signature: x.shape_signature.clone(),
                });
            }
            if let Some(o) = op.raw.builtin_options_as_shape_options()
                && o.out_type() != TensorType::INT32
            {
                return Err(FoldError::Int64Shape);
            }
            Ok(Static::vector(x.shape.clone()))
        }
        BuiltinOperator::STRIDED_SLICE => {
            let o = op.raw.builtin_options_as_strided_slice_options().ok_or(
                FoldError::MissingOptions {
                    op: "STRIDED_SLICE",
                },
            )?;
            if o.ellipsis_mask() != 0 || o.new_axis_mask() != 0 {
                return Err(FoldError::SliceMasks);
            }
            let x = vector(&input(0)?, "the sliced tensor")?;
            let begin = scalar(&input(1)?, "begin")?;
            let end = scalar(&input(2)?, "end")?;
            let stride = scalar(&input(3)?, "stride")?;
            let values = strided_slice(
                &x,
                begin,
                end,
                stride,
                o.begin_mask() & 1 != 0,
                o.end_mask() & 1 != 0,
                o.shrink_axis_mask() & 1 != 0,
            )?;
            Ok(if o.shrink_axis_mask() & 1 != 0 {
                Static {
                    shape: vec![],
                    values,
                }
            } else {
                Static::vector(values)
            })
        }
        BuiltinOperator::SLICE => {
            let x = vector(&input(0)?, "the sliced tensor")?;
            let begin = scalar(&input(1)?, "begin")?;
            let size = scalar(&input(2)?, "size")?;
            let n = x.len() as i32;
            let end = if size == -1 { n } else { begin + size };
            if begin < 0 || size < -1 || end > n {
                return Err(FoldError::SliceRange {
                    begin,
                    size,
                    len: n,
                });
            }
            Ok(Static::vector(x[begin as usize..end as usize].to_vec()))
        }
        BuiltinOperator::PACK => {
            let axis = op
                .raw
                .builtin_options_as_pack_options()
                .map_or(0, |o| o.axis());
            let parts: Vec<Static> = (0..op.inputs.len()).map(input).collect::<Result<_, _>>()?;
            let first = &parts[0].shape;
            if parts.iter().any(|p| &p.shape != first) {
                return Err(FoldError::PackShapes);
            }
            if axis != 0 && !(first.is_empty() && axis == -1) {
                return Err(FoldError::PackAxis { axis });
            }
            let mut shape = vec![parts.len() as i32];
            shape.extend_from_slice(first);
            let values = parts.into_iter().flat_map(|p| p.values).collect();
            Ok(Static { shape, values })
        }
        BuiltinOperator::CONCATENATION => {
            let o = op.raw.builtin_options_as_concatenation_options().ok_or(
                FoldError::MissingOptions {
                    op: "CONCATENATION",
                },
            )?;
            if o.fused_activation_function() != ActivationFunctionType::NONE {
                return Err(FoldError::FusedActivation {
                    what: "CONCATENATION",
                });
            }
            if o.axis() != 0 && o.axis() != -1 {
                return Err(FoldError::ConcatAxis { axis: o.axis() });
            }
            let mut values = Vec::new();
            for k in 0..op.inputs.len() {
                values.extend(vector(&input(k)?, &format!("input {k}"))?);
            }
            Ok(Static::vector(values))
        }
        BuiltinOperator::GATHER => {
            let o = op.raw.builtin_options_as_gather_options();
            let (axis, batch_dims) = o.map_or((0, 0), |o| (o.axis(), o.batch_dims()));
            if (axis != 0 && axis != -1) || batch_dims != 0 {
                return Err(FoldError::GatherAxis { axis, batch_dims });
            }
            let params = vector(&input(0)?, "params")?;
            let indices = input(1)?;
            let values = indices
                .values
                .iter()
                .map(|&i| {
                    usize::try_from(i)
                        .ok()
                        .and_then(|i| params.get(i).copied())
                        .ok_or(FoldError::GatherIndex {
                            index: i,
                            len: params.len(),
                        })
                })
                .collect::<Result<_, _>>()?;
            Ok(Static {
                shape: indices.shape,
                values,
            })
        }
        BuiltinOperator::RESHAPE | BuiltinOperator::SQUEEZE | BuiltinOperator::EXPAND_DIMS => {
            let x = input(0)?;
            let out = &graph.tensors[op.outputs[0] as usize];
            if out.elements() != x.values.len() {
                return Err(FoldError::ReshapeOutput {
                    shape: out.shape.clone(),
                    values: x.values.len(),
                });
            }
            Ok(Static {
                shape: out.shape.clone(),
                values: x.values,
            })
        }
        BuiltinOperator::ADD | BuiltinOperator::SUB | BuiltinOperator::MUL => {
            let fused = match op.code {
                BuiltinOperator::ADD => op
                    .raw
                    .builtin_options_as_add_options()
                    .map(|o| o.fused_activation_function()),
                BuiltinOperator::SUB => op
                    .raw
                    .builtin_options_as_sub_options()
                    .map(|o| o.fused_activation_function()),
                _ => op
                    .raw
                    .builtin_options_as_mul_options()
                    .map(|o| o.fused_activation_function()),
            };
            if fused.is_some_and(|a| a != ActivationFunctionType::NONE) {
                return Err(FoldError::FusedActivation { what: "arithmetic" });
            }
            let (a, b) = (input(0)?, input(1)?);
            let shape = match (a.values.len(), b.values.len()) {
                (x, y) if x == y && a.shape == b.shape => a.shape.clone(),
                (_, 1) => a.shape.clone(),
                (1, _) => b.shape.clone(),
                _ => {
                    return Err(FoldError::Broadcast {
                        a: a.shape.clone(),
                        b: b.shape.clone(),
                    });
                }
            };
            let n = a.values.len().max(b.values.len());
            let at = |s: &Static, i: usize| s.values[if s.values.len() == 1 { 0 } else { i }];
            let values = (0..n)
                .map(|i| {
                    let (x, y) = (at(&a, i), at(&b, i));
                    match op.code {
                        BuiltinOperator::ADD => x.checked_add(y),
                        BuiltinOperator::SUB => x.checked_sub(y),
                        _ => x.checked_mul(y),
                    }
                    .ok_or(FoldError::Overflow { x, y })
                })
                .collect::<Result<_, _>>()?;
            Ok(Static { shape, values })
        }
        _ => {
            // An input that depends on activations is the clearer reason, where there is one.
            for k in 0..op.inputs.len() {
                let t = op.inputs[k];
                if t >= 0 && graph.tensors[t as usize].ty == TensorType::INT8 {
                    let info = &graph.tensors[t as usize];
                    return Err(FoldError::ActivationInput {
                        k,
                        tensor: t,
                        name: info.name.clone(),
                    });
                }
            }
            Err(FoldError::UnsupportedOp { op: op.name() })
        }
    }
}

/// TensorFlow's `strided_slice` of a vector (one axis): masks replace begin/end by the ends of
/// the range in the stride's direction; negative indices count from the end; a shrunk axis takes
/// the single element at `begin`.
pub(crate) fn strided_slice(
    x: &[i32],
    begin: i32,
    end: i32,
    stride: i32,
    begin_mask: bool,
    end_mask: bool,
    shrink: bool,
) -> Result<Vec<i32>, FoldError> {
    let n = x.len() as i64;
    if stride == 0 {
        return Err(FoldError::ZeroStride);
    }
    let (s, b, e) = (i64::from(stride), i64::from(begin), i64::from(end));
    let resolve = |v: i64| if v < 0 { v + n } else { v };
    if shrink {
        let i = resolve(b);
        return usize::try_from(i)
            .ok()
            .and_then(|i| x.get(i).copied())
            .map(|v| vec![v])
            .ok_or(FoldError::SliceIndex {
                index: begin,
                len: x.len(),
            });
    }
    let (lo, hi) = if s > 0 { (0, n) } else { (-1, n - 1) };
    let b = if begin_mask {
        if s > 0 { 0 } else { n - 1 }
    } else {
        resolve(b).clamp(lo, hi)
    };
    let e = if end_mask {
        if s > 0 { n } else { -1 }
    } else {
        resolve(e).clamp(lo, hi)
    };
    let mut values = Vec::new();
    let mut i = b;
    while (s > 0 && i < e) || (s < 0 && i > e) {
        values.push(x[i as usize]);
        i += s;
    }
    Ok(values)
}

/// The shape a RESHAPE's shape operand asks for, with one −1 resolved against `elements`, as
/// TFLM's `ReshapeOutput` resolves it.
pub fn resolve_reshape(shape: &[i32], elements: usize) -> Result<Vec<i32>, FoldError> {
    let unknown: Vec<usize> = (0..shape.len()).filter(|&d| shape[d] == -1).collect();
    let known: i64 = shape
        .iter()
        .filter(|&&d| d != -1)
        .map(|&d| i64::from(d))
        .product();
    if shape.iter().any(|&d| d < -1) || unknown.len() > 1 {
        return Err(FoldError::ReshapeUnknowns {
            shape: shape.to_vec(),
        });
    }
    let mut out = shape.to_vec();
    if let [d] = unknown[..] {
        if known == 0 || elements as i64 % known != 0 {
            return Err(FoldError::ReshapeIndivisible {
                shape: shape.to_vec(),
                elements,
            });
        }
        out[d] = (elements as i64 / known) as i32;
    }
    if out.iter().map(|&d| i64::from(d)).product::<i64>() != elements as i64 {
        return Err(FoldError::ReshapeElements {
            shape: shape.to_vec(),
            elements,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_slice_follows_tensorflow() {
        let shape = [1, 4, 4, 8];
        // tf.shape(x)[0] (shrink), tf.shape(x)[:1], tf.shape(x)[1:], tf.shape(x)[::-1], [-1].
        assert_eq!(
            strided_slice(&shape, 0, 1, 1, false, false, true),
            Ok(vec![1])
        );
        assert_eq!(
            strided_slice(&shape, 0, 1, 1, true, false, false),
            Ok(vec![1])
        );
        assert_eq!(
            strided_slice(&shape, 1, 0, 1, false, true, false),
            Ok(vec![4, 4, 8])
        );
        assert_eq!(
            strided_slice(&shape, 0, 0, -1, true, true, false),
            Ok(vec![8, 4, 4, 1])
        );
        assert_eq!(
            strided_slice(&shape, -1, 0, 1, false, false, true),
            Ok(vec![8])
        );
        assert_eq!(
            strided_slice(&shape, 1, 100, 2, false, false, false),
            Ok(vec![4, 8])
        );
        assert_eq!(
            strided_slice(&shape, 4, 5, 1, false, false, true),
            Err(FoldError::SliceIndex { index: 4, len: 4 })
        );
        assert_eq!(
            strided_slice(&shape, 0, 1, 0, false, false, false),
            Err(FoldError::ZeroStride)
        );
    }

    #[test]
    fn reshape_resolves_one_unknown_dimension() {
        assert_eq!(resolve_reshape(&[1, -1], 128), Ok(vec![1, 128]));
        assert_eq!(resolve_reshape(&[-1, 36], 36), Ok(vec![1, 36]));
        assert_eq!(resolve_reshape(&[1, 4, 4, 8], 128), Ok(vec![1, 4, 4, 8]));
        assert!(resolve_reshape(&[-1, -1], 36).is_err());
        assert!(resolve_reshape(&[-1, 5], 36).is_err());
        let e = resolve_reshape(&[1, 35], 36).unwrap_err();
        assert_eq!(
            e,
            FoldError::ReshapeElements {
                shape: vec![1, 35],
                elements: 36
            }
        );
        assert_eq!(
            e.to_string(),
            "shape [1, 35] does not hold the input's 36 elements"
        );
        assert!(resolve_reshape(&[1, -2], 36).is_err());
    }
}

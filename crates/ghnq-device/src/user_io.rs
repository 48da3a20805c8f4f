//! A user's own inputs for a model blob, and its outputs back: `ghnq run --inputs`.
//!
//! Inputs are NHWC samples of the blob's input tensor, many per file: raw int8 bytes, or a NumPy
//! `.npy` array of int8 (used as is) or float32 (quantized with the blob's input scale and zero
//! point, as the exporter quantizes images). Outputs are the runtime's int8 logits, as raw bytes
//! or as an `.npy` of int8, or of float32 dequantized with the output scale and zero point.

use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use edge_runtime::Interpreter;
use npyz::WriterBuilder;
use shared_format::Model;

/// Why a user's input or output file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UserIoError {
    /// Reading or writing the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file's size or shape does not fit the model's input.
    #[error("{path}: {what}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// What was expected and what was found.
        what: String,
    },
    /// An `.npy` array whose shape is not a batch of the model's input.
    #[error("{path}: {source}")]
    SampleShape {
        /// The file.
        path: PathBuf,
        /// The shape found and the one expected.
        source: SampleShapeError,
    },
    /// An `.npy` element type other than int8 or float32.
    #[error("{path}: dtype {dtype}: int8 (`|i1`) or float32 (`<f4`) expected")]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The file's dtype.
        dtype: String,
    },
    /// The runtime refused the blob or a sample.
    #[error("running sample {sample}: {what}")]
    Run {
        /// The sample.
        sample: usize,
        /// The runtime's error.
        what: String,
    },
}

/// An input array shape that is not `(N, h, w, c)`, `(h, w, c)`, `(N, h·w·c)` or `(h·w·c)` of
/// the model's input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "shape {shape:?}: the model takes (N, {}, {}, {}) NHWC samples{}",
    .expected[0],
    .expected[1],
    .expected[2],
    if *.nchw { "; this looks like NCHW: transpose to (N, H, W, C)" } else { "" }
)]
pub struct SampleShapeError {
    /// The array's shape.
    pub shape: Vec<usize>,
    /// The model's input `(h, w, c)`.
    pub expected: [usize; 3],
    /// The shape is `(N, c, h, w)`: NCHW, the most likely mistake.
    pub nchw: bool,
}

/// `(h, w, c)` of the model's input.
fn input_hwc(model: &Model<'_>) -> [usize; 3] {
    let s = model.input_tensor().shape;
    [usize::from(s.h), usize::from(s.w), usize::from(s.c)]
}

/// The samples of `path` for `model`, each the model's input tensor as int8 NHWC.
pub fn read_inputs(path: &Path, model: &Model<'_>) -> Result<Vec<Vec<i8>>, UserIoError> {
    let io = |source| UserIoError::Io {
        path: path.to_path_buf(),
        source,
    };
    let shape_err = |what: String| UserIoError::Shape {
        path: path.to_path_buf(),
        what,
    };
    let [h, w, c] = input_hwc(model);
    let per = h * w * c;
    let values: Vec<i8> = if path.extension().is_some_and(|e| e == "npy") {
        let file = std::fs::File::open(path).map_err(io)?;
        let npy = npyz::NpyFile::new(BufReader::new(file)).map_err(io)?;
        let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
        check_shape(&shape, [h, w, c]).map_err(|source| UserIoError::SampleShape {
            path: path.to_path_buf(),
            source,
        })?;
        let dtype = match npy.dtype() {
            npyz::DType::Plain(t) => t.to_string(),
            other => other.descr(),
        };
        match dtype.as_str() {
            "|i1" | "<i1" | ">i1" => npy.into_vec::<i8>().map_err(io)?,
            "<f4" => {
                let input = model.input_tensor();
                let scale = model.input().scale;
                let (zp, lo, hi) = (
                    f32::from(input.zero_point),
                    f32::from(input.qmin()),
                    f32::from(input.qmax()),
                );
                npy.into_vec::<f32>()
                    .map_err(io)?
                    .into_iter()
                    .map(|x| ((x / scale).round() + zp).clamp(lo, hi) as i8)
                    .collect()
            }
            _ => {
                return Err(UserIoError::Dtype {
                    path: path.to_path_buf(),
                    dtype,
                });
            }
        }
    } else {
        let bytes = std::fs::read(path).map_err(io)?;
        if bytes.is_empty() || bytes.len() % per != 0 {
            return Err(shape_err(format!(
                "{} bytes: raw int8 inputs come in samples of {h}x{w}x{c} = {per} bytes (NHWC)",
                bytes.len()
            )));
        }
        bytes.into_iter().map(|b| b as i8).collect()
    };
    Ok(values.chunks_exact(per).map(<[i8]>::to_vec).collect())
}

/// Accepts `(N, h, w, c)`, `(h, w, c)`, `(N, h·w·c)` and `(h·w·c)`; names the expected layout
/// otherwise (and NCHW, the most likely mistake, by name).
fn check_shape(shape: &[usize], [h, w, c]: [usize; 3]) -> Result<(), SampleShapeError> {
    let per = h * w * c;
    let ok = match shape {
        [n, a, b, d] => *n > 0 && [*a, *b, *d] == [h, w, c],
        [a, b, d] => [*a, *b, *d] == [h, w, c],
        [n, k] => *n > 0 && *k == per,
        [k] => *k == per,
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(SampleShapeError {
        shape: shape.to_vec(),
        expected: [h, w, c],
        nchw: matches!(shape, [_, a, b, d] if [*a, *b, *d] == [c, h, w] && c != w),
    })
}

/// The runtime's int8 outputs for every sample.
pub fn run_all(model: &Model<'_>, samples: &[Vec<i8>]) -> Result<Vec<Vec<i8>>, UserIoError> {
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interp = Interpreter::new(model, &mut arena).map_err(|e| UserIoError::Run {
        sample: 0,
        what: e.to_string(),
    })?;
    samples
        .iter()
        .enumerate()
        .map(|(i, x)| {
            interp
                .run(x)
                .map(<[i8]>::to_vec)
                .map_err(|e| UserIoError::Run {
                    sample: i,
                    what: e.to_string(),
                })
        })
        .collect()
}

/// An `.npy` file of `shape` holding `values`, in memory (written atomically by the caller).
fn npy_bytes<T: npyz::Serialize + npyz::AutoSerialize>(
    shape: &[u64],
    values: impl Iterator<Item = T>,
) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    {
        let mut out = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(BufWriter::new(&mut bytes))
            .begin_nd()?;
        out.extend(values)?;
        out.finish()?;
    }
    Ok(bytes)
}

/// Writes `outputs` to `path`: raw int8 bytes, or an `.npy` `(N, K)` of int8, or of float32
/// dequantized with the model's output scale and zero point when `dequantize`.
pub fn write_outputs(
    path: &Path,
    model: &Model<'_>,
    outputs: &[Vec<i8>],
    dequantize: bool,
) -> Result<(), UserIoError> {
    let io = |source| UserIoError::Io {
        path: path.to_path_buf(),
        source,
    };
    let k = outputs.first().map_or(0, Vec::len) as u64;
    let n = outputs.len() as u64;
    let flat = outputs.iter().flatten().copied();
    if path.extension().is_some_and(|e| e == "npy") {
        let bytes = if dequantize {
            let scale = model.output().scale;
            let zp = f32::from(model.output_tensor().zero_point);
            npy_bytes(&[n, k], flat.map(|q| scale * (f32::from(q) - zp)))
        } else {
            npy_bytes(&[n, k], flat)
        }
        .map_err(io)?;
        ghnq_core::atomic::write(path, &bytes).map_err(io)
    } else if dequantize {
        Err(UserIoError::Shape {
            path: path.to_path_buf(),
            what: "dequantized outputs are float32: write them to an .npy file".into(),
        })
    } else {
        let bytes: Vec<u8> = flat.map(|q| q as u8).collect();
        ghnq_core::atomic::write(path, &bytes).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_checked_and_nchw_is_named() {
        let hwc = [32, 32, 3];
        for ok in [
            vec![5, 32, 32, 3],
            vec![32, 32, 3],
            vec![5, 3072],
            vec![3072],
        ] {
            assert!(check_shape(&ok, hwc).is_ok(), "{ok:?}");
        }
        let e = check_shape(&[5, 3, 32, 32], hwc).unwrap_err();
        assert!(e.nchw, "{e}");
        let text = e.to_string();
        assert!(
            text.contains("NCHW") && text.contains("(N, 32, 32, 3)"),
            "{text}"
        );
        let e = check_shape(&[5, 28, 28, 1], hwc).unwrap_err();
        assert!(!e.nchw, "{e}");
        let text = e.to_string();
        assert!(
            !text.contains("NCHW") && text.contains("(N, 32, 32, 3)"),
            "{text}"
        );
        assert!(check_shape(&[0, 3072], hwc).is_err());
    }
}

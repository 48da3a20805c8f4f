//! TensorFlow Lite Micro's reference interpreter, run from the test suite.
//!
//! PyPI's `tflite-micro` builds TFLM's reference kernels for x86, bit-exact with TFLM on devices.
//! `cargo xtask setup` installs it in a venv at `<target dir>/tflm-venv`; [`Tflm`] drives
//! `crates/ghnq-tflite/tflm/run_tflm.py` with that venv's python, exchanging int8 tensors through temporary
//! files. The MLPerf Tiny reference models it runs stay outside the repository
//! ([`mlperf_model`]).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// Overrides the python that has `tflite_micro` (default: the venv `cargo xtask setup` makes).
pub const PYTHON_ENV: &str = "GHNQ_TFLM_PYTHON";

/// Why TFLM could not be run, or failed.
#[allow(missing_docs)] // The variants' fields are spelled out by their #[error] messages.
#[derive(Debug, thiserror::Error)]
pub enum TflmError {
    /// The python is missing or cannot `import tflite_micro`.
    #[error(
        "TFLite Micro is not available: `{} -c \"import tflite_micro\"` {reason}. \
         Run `cargo xtask setup` (it installs tflite-micro in <target dir>/tflm-venv), \
         or set {PYTHON_ENV} to a python that has it",
        python.display()
    )]
    NotInstalled { python: PathBuf, reason: String },
    /// Reading or writing a file, or starting a process, failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// `run_tflm.py` exited with an error (its message is in `stderr`).
    #[error("`{command}` failed with {status}: {stderr}")]
    Script {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    /// `run_tflm.py` succeeded but its result is not what it promises.
    #[error("`{command}` gave unexpected output: {detail}")]
    BadOutput { command: String, detail: String },
}

/// A python with `tflite_micro` and the script that drives it.
#[derive(Debug, Clone)]
pub struct Tflm {
    python: PathBuf,
    script: PathBuf,
}

impl Tflm {
    /// Finds the venv's python ([`PYTHON_ENV`] overrides; else `<target dir>/tflm-venv/bin/python`,
    /// the target dir being `CARGO_TARGET_DIR` or `<workspace>/target`) and checks that
    /// `import tflite_micro` works; the error says to run `cargo xtask setup`.
    pub fn locate() -> Result<Self, TflmError> {
        let python = match std::env::var_os(PYTHON_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => target_dir().join("tflm-venv").join("bin").join("python"),
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tflm/run_tflm.py");
        if !script.is_file() {
            return Err(TflmError::Io {
                what: format!("the TFLM driver script {}", script.display()),
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        let not_installed = |reason: String| TflmError::NotInstalled {
            python: python.clone(),
            reason,
        };
        let out = Command::new(&python)
            .args(["-c", "import tflite_micro"])
            .output()
            .map_err(|e| not_installed(format!("cannot start ({e})")))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.trim().lines().last().unwrap_or("").to_string();
            return Err(not_installed(format!(
                "failed with {} ({last})",
                out.status
            )));
        }
        Ok(Self { python, script })
    }

    /// The python this runs TFLM with.
    pub fn python(&self) -> &Path {
        &self.python
    }

    /// Runs `samples` inputs of `model`'s input 0 (int8, concatenated; `inputs.len()` must be
    /// `samples` times its size) and returns output 0 of each, flattened and concatenated.
    pub fn run(&self, model: &Path, inputs: &[i8], samples: usize) -> Result<Vec<i8>, TflmError> {
        self.run_io(model, inputs, samples, None)
    }

    /// [`Tflm::run`] for a float-interface model (float32 input 0 and output 0 around int8
    /// QUANTIZE / DEQUANTIZE): each int8 input goes in as float32 `(q - zp) · scale` of
    /// `input` (scale, zero point), which TFLM's QUANTIZE maps back to `q` exactly, and each
    /// float32 output comes back as the int8 code of `output` that TFLM's DEQUANTIZE read.
    pub fn run_float_io(
        &self,
        model: &Path,
        inputs: &[i8],
        samples: usize,
        input: (f32, i8),
        output: (f32, i8),
    ) -> Result<Vec<i8>, TflmError> {
        self.run_io(model, inputs, samples, Some([input, output]))
    }

    fn run_io(
        &self,
        model: &Path,
        inputs: &[i8],
        samples: usize,
        float_io: Option<[(f32, i8); 2]>,
    ) -> Result<Vec<i8>, TflmError> {
        let dir = tempfile::Builder::new()
            .prefix("ghnq-tflm-")
            .tempdir()
            .map_err(|source| TflmError::Io {
                what: "could not create a temporary directory".into(),
                source,
            })?;
        let inputs_path = dir.path().join("inputs.bin");
        let outputs_path = dir.path().join("outputs.bin");
        let bytes: Vec<u8> = inputs.iter().map(|v| v.to_le_bytes()[0]).collect();
        std::fs::write(&inputs_path, bytes).map_err(|source| TflmError::Io {
            what: format!("could not write {}", inputs_path.display()),
            source,
        })?;
        let samples = samples.to_string();
        let mut args = vec![
            model.as_os_str().to_owned(),
            inputs_path.as_os_str().to_owned(),
            samples.into(),
            outputs_path.as_os_str().to_owned(),
        ];
        if let Some(io) = float_io {
            // Rust writes the shortest decimal that reads back as the same f32.
            args.push("--float-io".into());
            for (scale, zero_point) in io {
                args.push(scale.to_string().into());
                args.push(zero_point.to_string().into());
            }
        }
        let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        self.script(&args)?;
        let outputs = std::fs::read(&outputs_path).map_err(|source| TflmError::Io {
            what: format!("could not read TFLM's outputs {}", outputs_path.display()),
            source,
        })?;
        Ok(outputs
            .into_iter()
            .map(|b| i8::from_le_bytes([b]))
            .collect())
    }

    /// Mean milliseconds per inference of `model` over `iterations` invokes, after one warm-up,
    /// on a fixed random input (the script's `--bench`).
    pub fn bench(&self, model: &Path, iterations: usize) -> Result<f64, TflmError> {
        self.timed("--bench", "tflm_ms_per_inference ", model, iterations)?
            .ok_or_else(|| TflmError::BadOutput {
                command: "run_tflm.py --bench".into(),
                detail: "TFLM reported itself unavailable".into(),
            })
    }

    /// Mean milliseconds per inference of LiteRT (XNNPACK, one thread), or `None` when
    /// `ai-edge-litert` is not installed in the venv (setup leaves it out: it is a speed
    /// reference, not a check).
    pub fn bench_litert(&self, model: &Path, iterations: usize) -> Result<Option<f64>, TflmError> {
        self.timed(
            "--bench-litert",
            "litert_ms_per_inference ",
            model,
            iterations,
        )
    }

    /// Runs a timing mode of the script and parses its `<prefix><ms>` line (`None` if the
    /// script printed an `…_unavailable` line instead).
    fn timed(
        &self,
        mode: &str,
        prefix: &str,
        model: &Path,
        iterations: usize,
    ) -> Result<Option<f64>, TflmError> {
        let n = iterations.to_string();
        let (command, stdout) =
            self.script(&[OsStr::new(mode), model.as_os_str(), OsStr::new(&n)])?;
        if stdout.lines().any(|l| l.ends_with("_unavailable")) {
            return Ok(None);
        }
        let bad = |detail: String| TflmError::BadOutput {
            command: command.clone(),
            detail,
        };
        let value = stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .ok_or_else(|| bad(format!("no `{}` line in {stdout:?}", prefix.trim())))?;
        let ms: f64 = value
            .trim()
            .parse()
            .map_err(|e| bad(format!("`{value}` is not a number ({e})")))?;
        if !ms.is_finite() || ms < 0.0 {
            return Err(bad(format!("{ms} ms per inference")));
        }
        Ok(Some(ms))
    }

    /// Runs the script with `args`; returns its command line and standard output.
    fn script(&self, args: &[&OsStr]) -> Result<(String, String), TflmError> {
        let mut cmd = Command::new(&self.python);
        cmd.arg(&self.script).args(args);
        let command = std::iter::once(self.python.as_os_str())
            .chain(std::iter::once(self.script.as_os_str()))
            .chain(args.iter().copied())
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let out = cmd.output().map_err(|source| TflmError::Io {
            what: format!("could not start `{command}`"),
            source,
        })?;
        if !out.status.success() {
            return Err(TflmError::Script {
                command,
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok((command, String::from_utf8_lossy(&out.stdout).into_owned()))
    }
}

/// One of the MLPerf Tiny reference models (`pretrainedResnet_quant.tflite`,
/// `kws_ref_model.tflite`, `vww_96_int8.tflite`, `ad01_int8.tflite`) in `mlperf-tiny/` of the
/// shared data folder (`ghnq_core::shared_data`), where they stay: never copied into the
/// repository.
pub fn mlperf_model(name: &str) -> PathBuf {
    ghnq_core::shared_data::file(&format!("mlperf-tiny/{name}"))
}

/// `CARGO_TARGET_DIR`, else `<workspace>/target`. A relative `CARGO_TARGET_DIR` is taken from
/// the workspace root, as `cargo xtask setup` does: tests run in their package directory and
/// cannot know where cargo was invoked.
fn target_dir() -> PathBuf {
    let root = ghnq_core::shared_data::workspace_root();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

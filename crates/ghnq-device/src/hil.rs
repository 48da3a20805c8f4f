//! `ghnq hil`: validate models on a board. For an emulated board the firmware is built with the
//! models embedded and booted under QEMU; the device's counts are then checked against the host
//! runtime's over the same bundles, and the ELF's flash and RAM are read back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use firmware::host::{self, Board, Entry, MemoryUse, StreamReport};
use serde::Serialize;
use shared_format::{Model, TestVectors};

use super::{DeviceError, read_file, vectors_run};

type Result<T> = std::result::Result<T, DeviceError>;

/// The blob and bundle of `entry`, decoded (errors name the files).
fn decode<'a>(
    entry: &Entry,
    blob: &'a [u8],
    bundle: &'a [u8],
) -> Result<(Model<'a>, TestVectors<'a>)> {
    let model = Model::from_bytes(blob).map_err(|source| DeviceError::Blob {
        path: entry.model.clone(),
        source,
    })?;
    let vectors = TestVectors::from_bytes(bundle).map_err(|source| DeviceError::Bundle {
        path: entry.vectors.clone(),
        source,
    })?;
    Ok((model, vectors))
}

fn elf_sizes(elf: &Path) -> Result<MemoryUse> {
    host::memory_use(elf).map_err(|source| DeviceError::Elf {
        elf: elf.to_path_buf(),
        source,
    })
}

/// One model's row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct HilRow {
    /// Board name.
    pub board: String,
    /// Model metadata name.
    pub model: String,
    /// Precision label.
    pub precision: String,
    /// Samples run on the device.
    pub samples: u32,
    /// Device top-1 count.
    pub top1: u32,
    /// Device top-5 count.
    pub top5: u32,
    /// The host runtime's top-1 count over the same bundle.
    pub host_top1: usize,
    /// The host runtime's top-5 count.
    pub host_top5: usize,
    /// Samples whose device logits differ from the host's (must be 0).
    pub disagreements: u32,
    /// `instructions`, `cycles` or `nanoseconds`.
    pub unit: String,
    /// Per inference.
    pub per_inference: u64,
    /// MACs of one inference.
    pub macs: u64,
    /// MACs per unit.
    pub macs_per_unit: f64,
    /// Flash bytes of the firmware (code + embedded models and vectors).
    pub flash: u64,
    /// Static RAM bytes (arena included).
    pub ram: u64,
    /// The device's counts for the first sample by op class (empty where the firmware does
    /// not profile: the streaming modes).
    pub profile: Vec<super::op_profile::OpClassProfile>,
}

/// What `ghnq hil` found.
#[derive(Debug, Clone, Serialize)]
pub struct HilReport {
    /// Board name.
    pub board: String,
    /// Core.
    pub core: String,
    /// `pass`, `disagree` or `error`.
    pub status: String,
    /// One row per model.
    pub rows: Vec<HilRow>,
    /// Failures the firmware reported, per model.
    pub failures: Vec<String>,
    /// Flash and RAM budget of the board.
    pub flash_budget: u64,
    /// RAM budget.
    pub ram_budget: u64,
    /// Firmware image.
    pub elf: PathBuf,
}

impl HilReport {
    /// Every model ran, agreed with the host byte for byte and counted the same top-1/top-5.
    pub fn passed(&self) -> bool {
        self.status == "pass"
            && self.failures.is_empty()
            && self.rows.iter().all(|r| {
                r.disagreements == 0
                    && r.top1 as usize == r.host_top1
                    && r.top5 as usize == r.host_top5
            })
    }
}

/// Builds the firmware of `board` with `entries` embedded (checking first that they fit), boots
/// it under QEMU and compares its report with the host runtime's counts. With `defmt`, the
/// firmware reports as defmt frames, decoded by defmt-print.
pub fn run(
    sdk: &Path,
    board: &Board,
    entries: &[Entry],
    timeout: Duration,
    defmt: bool,
) -> Result<HilReport> {
    let mut host_counts = Vec::new();
    for entry in entries {
        let blob = read_file(&entry.model)?;
        let bundle = read_file(&entry.vectors)?;
        let (model, vectors) = decode(entry, &blob, &bundle)?;
        let host = vectors_run::run(&model, &vectors, None).map_err(|e| DeviceError::HostRun {
            model: entry.model.clone(),
            source: Box::new(e),
        })?;
        if !host.same_model {
            return Err(DeviceError::OtherModel {
                bundle: entry.vectors.clone(),
                model: entry.model.clone(),
            });
        }
        host_counts.push((host.top1, host.top5, super::op_profile::op_classes(&model)));
    }
    host::preflight(board, entries)?;
    let elf = if defmt {
        host::build_defmt(sdk, board, entries)?
    } else {
        host::build(sdk, board, entries, None)?
    };
    let used = elf_sizes(&elf)?;
    let boot = if defmt {
        host::boot_defmt(board, &elf, timeout)?
    } else {
        host::boot(board, &elf, entries, timeout)?
    };
    let report = &boot.report;
    if report.status.is_none() {
        return Err(DeviceError::NoReport {
            board: board.name.into(),
            code: boot.code,
            stdout: boot.stdout.clone(),
            stderr: boot.stderr.clone(),
        });
    }
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (model, (host_top1, host_top5, classes)) in report.models.iter().zip(host_counts) {
        if let Some(failure) = &model.failure {
            failures.push(format!("{}: {failure}", model.name));
        }
        let Some(r) = model.result else { continue };
        rows.push(HilRow {
            board: board.name.into(),
            model: model.name.clone(),
            precision: model.precision.clone(),
            samples: r.samples,
            top1: r.top1,
            top5: r.top5,
            host_top1,
            host_top5,
            disagreements: r.disagreements,
            unit: report.unit.clone(),
            per_inference: r.per_inference,
            macs: r.macs,
            macs_per_unit: r.macs_per_unit(),
            flash: used.flash,
            ram: used.ram,
            profile: super::op_profile::profile(&classes, &model.ops),
        });
    }
    Ok(HilReport {
        board: board.name.into(),
        core: board.core.into(),
        status: report.status.clone().unwrap_or_default(),
        rows,
        failures,
        flash_budget: board.flash,
        ram_budget: board.ram,
        elf,
    })
}

/// Streaming mode on an emulated board: the firmware holds only `entry`'s model, QEMU wires its
/// UART to a local socket, and every sample of the bundle crosses it as a postcard COBS frame.
pub fn run_streaming(
    sdk: &Path,
    board: &Board,
    entry: &Entry,
    timeout: Duration,
) -> Result<HilReport> {
    if !board.streams {
        return Err(DeviceError::NoStreaming(board.name.into()));
    }
    let (bundle, host_counts) = host_bundle(entry)?;
    let vectors = TestVectors::from_bytes(&bundle).map_err(|source| DeviceError::Bundle {
        path: entry.vectors.clone(),
        source,
    })?;
    let elf = host::build_streaming(sdk, board, &entry.model)?;
    let used = elf_sizes(&elf)?;
    let (streamed, run) = host::boot_streaming(board, &elf, timeout, |link| {
        host::validate_stream(link, &vectors)
    })?;
    let streamed = streamed.map_err(|source| DeviceError::Stream {
        board: board.name.into(),
        detail: format!("firmware output: {}", run.stdout.trim()),
        source,
    })?;
    Ok(stream_report(
        board,
        streamed,
        host_counts,
        used,
        elf,
        "pass",
    ))
}

/// Streaming mode on a flashed real board at `port` (a serial port, 8N1 at `baud`). Builds the streaming firmware first so its ELF can be flashed (the path is in the
/// report).
pub fn run_port(
    sdk: &Path,
    board: &Board,
    entry: &Entry,
    port: &Path,
    baud: u32,
) -> Result<HilReport> {
    if !board.streams {
        return Err(DeviceError::NoStreaming(board.name.into()));
    }
    let (bundle, host_counts) = host_bundle(entry)?;
    let vectors = TestVectors::from_bytes(&bundle).map_err(|source| DeviceError::Bundle {
        path: entry.vectors.clone(),
        source,
    })?;
    let elf = host::build_streaming(sdk, board, &entry.model)?;
    let used = elf_sizes(&elf)?;
    // 8N1, no flow control; a generous timeout because one frame waits for a whole inference.
    let mut link = serialport::new(port.to_string_lossy(), baud)
        .data_bits(serialport::DataBits::Eight)
        .parity(serialport::Parity::None)
        .stop_bits(serialport::StopBits::One)
        .flow_control(serialport::FlowControl::None)
        .timeout(Duration::from_secs(30))
        .open()
        .map_err(|source| DeviceError::Port {
            port: port.to_path_buf(),
            baud,
            source,
        })?;
    let streamed =
        host::validate_stream(&mut link, &vectors).map_err(|source| DeviceError::Stream {
            board: board.name.into(),
            detail: format!(
                "on {}; is the streaming firmware flashed? ({})",
                port.display(),
                elf.display()
            ),
            source,
        })?;
    Ok(stream_report(
        board,
        streamed,
        host_counts,
        used,
        elf,
        "pass",
    ))
}

/// Reads a bundle and the host runtime's top-1/top-5 over it, checking it belongs to the model.
fn host_bundle(entry: &Entry) -> Result<(Vec<u8>, (usize, usize))> {
    let blob = read_file(&entry.model)?;
    let bundle = read_file(&entry.vectors)?;
    let (model, vectors) = decode(entry, &blob, &bundle)?;
    let host = vectors_run::run(&model, &vectors, None)?;
    if !host.same_model {
        return Err(DeviceError::OtherModel {
            bundle: entry.vectors.clone(),
            model: entry.model.clone(),
        });
    }
    let counts = (host.top1, host.top5);
    Ok((bundle, counts))
}

fn stream_report(
    board: &Board,
    streamed: StreamReport,
    (host_top1, host_top5): (usize, usize),
    used: MemoryUse,
    elf: PathBuf,
    status: &str,
) -> HilReport {
    let r = streamed.result;
    let failures = streamed
        .mismatches
        .iter()
        .take(4)
        .map(|(sample, position, got, expected)| {
            format!(
                "sample {sample}: logit {position} is {got} on the device, {expected} on the host"
            )
        })
        .collect();
    HilReport {
        board: board.name.into(),
        core: board.core.into(),
        status: if r.disagreements == 0 {
            status.into()
        } else {
            "disagree".into()
        },
        rows: vec![HilRow {
            board: board.name.into(),
            model: streamed.hello.name,
            precision: streamed.hello.precision,
            samples: r.samples,
            top1: r.top1,
            top5: r.top5,
            host_top1,
            host_top5,
            disagreements: r.disagreements,
            unit: streamed.hello.unit,
            per_inference: r.per_inference,
            macs: r.macs,
            macs_per_unit: r.macs_per_unit(),
            flash: used.flash,
            ram: used.ram,
            profile: Vec::new(),
        }],
        failures,
        flash_budget: board.flash,
        ram_budget: board.ram,
        elf,
    }
}

//! Hardware-in-the-loop under QEMU: every emulated board runs the W8A8, W4A4 and W2A2 suite
//! models over 200 samples each and must reproduce the host runtime's logits byte for byte.
//!
//! Each board's firmware is built once (`firmware::host::build`) with the three models, their
//! bundles and a batch of property-test generator models embedded, into `target/boards`, so
//! reruns are incremental. Mobile SoCs get two: a bare-metal Cortex-A55 on QEMU's virt machine
//! (instructions counted like the MCUs) and the aarch64 Linux harness under qemu-aarch64 (wall
//! clock only); the real boards (nRF52840-DK, Pico) are built and size-checked; streaming over
//! the UART is checked on the MPS2. QEMU must be installed: `cargo xtask test` runs
//! `cargo xtask setup` first, which installs it; a missing QEMU fails these tests rather than
//! skipping them.
//!
//! `cargo test -p tests --test hil -- --nocapture` prints each board's table.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use firmware::host::{self, Board, BoardReport, Entry, MemoryUse};
use shared_format::TestVectors;
use shared_format::vectors::rank_of;
use tests::hil_models::{PRECISIONS, model, pointwise_chain, random_suite, vectors};

/// Samples per suite-CNN model.
const SAMPLES: usize = 200;
/// Samples per generator model.
const RANDOM_SAMPLES: usize = 8;

/// Models from the property-test generator appended to every board's suite: they reach
/// parameters the suite CNN does not (dilation, asymmetric padding, single rounding, shifts up to
/// 30, zero multipliers, weight zero points, the elementwise ops of format 1.4–1.5). 150 where
/// flash allows, 24 on the 256 KiB parts (about 1.4 KB each with its bundle; the micro:bit's
/// firmware holds every kernel too, and format 1.5's ops and generator left 30 models 832 bytes
/// over its flash).
fn random_models(board: &Board) -> u64 {
    if board.flash >= 1024 * 1024 { 150 } else { 24 }
}
const TIMEOUT: Duration = Duration::from_secs(240);

/// Builds of one boards workspace are serialised (cargo would block on its lock anyway) and each
/// ELF is copied out, so a later build with other embedded data cannot change it under a boot.
static BUILD: Mutex<()> = Mutex::new(());
/// Suite files are written by one test at a time.
static SUITE: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn hil_dir() -> PathBuf {
    root().join("target").join("hil")
}

/// Writes `bytes` unless the file already holds them: an unchanged file keeps its mtime, so
/// cargo does not rebuild the firmware that embeds it.
fn write_if_changed(path: &Path, bytes: &[u8]) {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Input side of the suite a board gets: 16x16x3 where flash allows, 8x8x3 on the 256 KiB parts
/// (three bundles of 200 16x16x3 samples are 461 KB).
fn side(board: &Board) -> u16 {
    if board.flash >= 1024 * 1024 { 16 } else { 8 }
}

/// The three precisions of the suite CNN.
fn suite(side: u16) -> Vec<Entry> {
    let _guard = SUITE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = hil_dir().join(format!("suite-{side}px"));
    PRECISIONS
        .iter()
        .enumerate()
        .map(|(i, precision)| {
            let blob = model(*precision, side);
            let bundle = vectors(&blob, SAMPLES, 1000 + i as u64);
            let entry = Entry {
                model: dir.join(format!("{}.ghnq", precision.name)),
                vectors: dir.join(format!("{}.ghnv", precision.name)),
            };
            write_if_changed(&entry.model, &blob);
            write_if_changed(&entry.vectors, &bundle);
            entry
        })
        .collect()
}

/// The suite CNN's three precisions followed by the W2A2 pointwise chain (boards of 1 MiB of
/// flash or more) and the random models (the chain is checked as they are: `RANDOM_SAMPLES`
/// samples, 0 disagreements).
fn full_suite(board: &Board) -> Vec<Entry> {
    let mut entries = suite(side(board));
    // The chain is there for the DSP kernels; the 256 KiB parts (portable kernels only) have no
    // flash left for it beside their random models.
    if board.flash >= 1024 * 1024 {
        entries.push(chain_entry(side(board)));
    }
    entries.extend(random_entries(
        "random",
        random_models(board),
        RANDOM_SAMPLES,
    ));
    entries
}

/// [`pointwise_chain`]: every input width of the 2-bit pointwise kernel (issue 18), written
/// under `target/hil/suite-<side>px`.
fn chain_entry(side: u16) -> Entry {
    let _guard = SUITE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = hil_dir().join(format!("suite-{side}px"));
    let blob = pointwise_chain(side);
    let bundle = vectors(&blob, RANDOM_SAMPLES, 1100);
    let entry = Entry {
        model: dir.join("pointwise-w2a2.ghnq"),
        vectors: dir.join("pointwise-w2a2.ghnv"),
    };
    write_if_changed(&entry.model, &blob);
    write_if_changed(&entry.vectors, &bundle);
    entry
}

/// `count` generator models with `samples` samples each, written under `target/hil/<dir>`.
fn random_entries(dir: &str, count: u64, samples: usize) -> Vec<Entry> {
    let _guard = SUITE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = hil_dir().join(dir);
    let mut entries = Vec::new();
    for (name, blob, bundle) in random_suite(count, samples) {
        let entry = Entry {
            model: dir.join(format!("{name}.ghnq")),
            vectors: dir.join(format!("{name}.ghnv")),
        };
        write_if_changed(&entry.model, &blob);
        write_if_changed(&entry.vectors, &bundle);
        entries.push(entry);
    }
    entries
}

/// Builds `board` with `entries` and copies the ELF to `target/hil/elf/<board>-<tag>`.
fn build(
    board: &Board,
    entries: &[Entry],
    tag: &str,
    arena: Option<usize>,
) -> (PathBuf, MemoryUse) {
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let elf = host::build(&root(), board, entries, arena)
        .unwrap_or_else(|e| panic!("building {}: {e}", board.name));
    let copy = hil_dir().join("elf").join(format!("{}-{tag}", board.name));
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&elf, &copy).unwrap();
    let used = host::memory_use(&copy).unwrap();
    (copy, used)
}

fn validate_board(name: &str) {
    let board = host::board(name).unwrap_or_else(|| panic!("unknown board {name}"));
    let entries = full_suite(board);
    host::preflight(board, &entries).unwrap_or_else(|e| panic!("{e}"));
    let (elf, used) = build(board, &entries, "suite", None);
    assert!(
        used.flash <= board.flash && used.ram <= board.ram,
        "{name}: {used:?} exceeds the board"
    );

    let run = host::boot(board, &elf, &entries, TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let report = &run.report;
    let context = || {
        format!(
            "{name}: exit {:?}\n{}\n{}",
            run.code, run.stdout, run.stderr
        )
    };
    assert_eq!(run.code, Some(0), "{}", context());
    assert_eq!(report.status.as_deref(), Some("pass"), "{}", context());
    assert_eq!(report.board, name);
    let unit = if board.emulator.is_some_and(|e| e.user_mode) {
        "nanoseconds"
    } else {
        "instructions"
    };
    assert_eq!(report.unit, unit);
    assert_eq!(report.models.len(), entries.len(), "{}", context());

    println!("{} (count = {})", table_header(), report.unit);
    let cnn = PRECISIONS.len();
    for (entry, model) in entries.iter().zip(&report.models).take(cnn) {
        let result = model
            .result
            .unwrap_or_else(|| panic!("{}: no result for {}\n{}", name, model.name, context()));
        let (host_top1, host_top5) = host_counts(&entry.vectors);
        assert_eq!(
            result.samples as usize, SAMPLES,
            "{name} {}",
            model.precision
        );
        assert_eq!(
            result.disagreements, 0,
            "{name} {}: mismatches {:?}",
            model.precision, model.mismatches
        );
        assert_eq!(
            (result.top1, result.top5),
            (host_top1, host_top5),
            "{name} {}: top-1/top-5 differ from the host's",
            model.precision
        );
        assert_eq!(
            (result.host_top1, result.host_top5),
            (host_top1, host_top5),
            "{name} {}",
            model.precision
        );
        assert!(
            result.per_inference > 0,
            "{name}: the instruction counter did not move"
        );
        assert_eq!(
            model.ops.len(),
            11,
            "{name} {}: per-op profile",
            model.precision
        );
        // Instruction counts are exact, so the per-op profile of sample 0 must add up to about
        // one inference (samples differ only in data-dependent branches).
        let op_sum: u64 = model.ops.iter().map(|o| o.count).sum();
        if unit == "instructions" {
            let per = result.per_inference;
            assert!(
                op_sum <= per * 11 / 10 && op_sum >= per * 9 / 10,
                "{name}: per-op counts add to {op_sum}, an inference is {per}"
            );
        }
        println!("{}", table_row(board, report, model, &result, used));
    }

    let mut samples = 0;
    for (entry, model) in entries.iter().zip(&report.models).skip(cnn) {
        let result = model
            .result
            .unwrap_or_else(|| panic!("{}: no result for {}\n{}", name, model.name, context()));
        assert_eq!(
            result.samples as usize, RANDOM_SAMPLES,
            "{name} {}",
            model.name
        );
        assert_eq!(
            result.disagreements,
            0,
            "{name} {} ({}): mismatches (sample, position, device, host) {:?}",
            model.name,
            entry.model.display(),
            model.mismatches
        );
        assert_eq!(
            (result.top1, result.top5),
            host_counts(&entry.vectors),
            "{name} {}",
            model.name
        );
        samples += result.samples;
    }
    println!(
        "{name}: {} generator models and chains, {samples} samples, 0 disagreements with the host",
        entries.len() - cnn
    );
}

/// Top-1 and top-5 of the host's logits in a bundle, counted here independently of the device.
fn host_counts(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    let bundle = TestVectors::from_bytes(&bytes).unwrap();
    bundle.iter().fold((0, 0), |(t1, t5), s| {
        let rank = rank_of(s.expected, usize::from(s.label));
        (t1 + u32::from(rank < 1), t5 + u32::from(rank < 5))
    })
}

fn table_header() -> String {
    format!(
        "{:<13} {:<24} {:<6} {:>7} {:>6} {:>6} {:>9} {:>14} {:>10} {:>9} {:>9}",
        "board",
        "core",
        "model",
        "samples",
        "top-1",
        "top-5",
        "disagree",
        "count/infer",
        "MACs/count",
        "flash",
        "RAM"
    )
}

fn table_row(
    board: &Board,
    _report: &BoardReport,
    model: &host::ModelReport,
    r: &host::ResultLine,
    used: MemoryUse,
) -> String {
    format!(
        "{:<13} {:<24} {:<6} {:>7} {:>6} {:>6} {:>9} {:>14} {:>10.3} {:>9} {:>9}",
        board.name,
        board.core,
        model.precision,
        r.samples,
        r.top1,
        r.top5,
        r.disagreements,
        r.per_inference,
        r.macs_per_unit(),
        used.flash,
        used.ram
    )
}

#[test]
fn mps2_an386_cortex_m4f() {
    validate_board("mps2-an386");
}

#[test]
fn mps2_an500_cortex_m7() {
    validate_board("mps2-an500");
}

#[test]
fn lm3s6965evb_cortex_m3() {
    validate_board("lm3s6965evb");
}

#[test]
fn microbit_cortex_m0() {
    validate_board("microbit");
}

#[test]
fn mps2_an505_cortex_m33() {
    validate_board("mps2-an505");
}

#[test]
fn riscv_virt_rv32imac() {
    validate_board("riscv-virt");
}

/// Mobile SoCs, bare metal: a Cortex-A55 (built with the dot-product extension) on QEMU's virt
/// machine, counted in instructions by the PMU cycle counter under `-icount shift=0`.
#[test]
fn aarch64_virt_cortex_a55() {
    validate_board("aarch64-virt");
}

/// Mobile SoCs: the std harness, cross-built for aarch64 Linux, under qemu-aarch64 user mode.
#[test]
fn aarch64_linux_user_mode() {
    validate_board("aarch64-linux");
}

/// A corrupt blob, vectors made for another model and an arena too small are each reported
/// with its kind and the firmware exits with status 2 — no panic (which would exit 101).
#[test]
fn firmware_reports_errors_instead_of_panicking() {
    let board = host::board("lm3s6965evb").unwrap();
    let good = suite(side(board));
    let dir = hil_dir().join("errors");
    let mut corrupt = std::fs::read(&good[0].model).unwrap();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x5a;
    let entries = [
        Entry {
            model: dir.join("corrupt.ghnq"),
            vectors: good[0].vectors.clone(),
        },
        Entry {
            model: good[1].model.clone(),
            vectors: good[2].vectors.clone(),
        },
        good[0].clone(),
    ];
    write_if_changed(&entries[0].model, &corrupt);
    let (elf, _) = build(board, &entries, "errors", Some(64));
    let run = host::boot(board, &elf, &entries, TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("exit {:?}\n{}\n{}", run.code, run.stdout, run.stderr);
    assert_eq!(run.code, Some(2), "{context}");
    assert_eq!(run.report.status.as_deref(), Some("error"), "{context}");
    let kinds: Vec<&str> = run
        .report
        .models
        .iter()
        .map(|m| {
            m.failure
                .as_deref()
                .and_then(|f| f.split(':').next())
                .unwrap_or("none")
        })
        .collect();
    assert_eq!(kinds, ["format", "vectors_model", "arena"], "{context}");
    assert!(
        run.report.models[2]
            .failure
            .as_ref()
            .unwrap()
            .contains("needs"),
        "{context}"
    );
}

/// Real boards (nRF52840-DK, Raspberry Pi Pico) are built with the full 16x16 suite through their
/// HAL crates, and the linker's memory.x check (the real chips' flash and RAM) passes.
#[test]
fn real_boards_build_within_their_memory() {
    for name in ["nrf52840-dk", "rp-pico"] {
        let board = host::board(name).unwrap();
        assert!(board.emulator.is_none());
        let entries = suite(side(board));
        host::preflight(board, &entries).unwrap_or_else(|e| panic!("{e}"));
        let (_, used) = build(board, &entries, "suite", None);
        println!(
            "{name}: flash {} of {} bytes, RAM {} of {}",
            used.flash, board.flash, used.ram, board.ram
        );
        assert!(
            used.flash <= board.flash && used.ram <= board.ram,
            "{name}: {used:?}"
        );
        assert!(
            used.flash > 3 * 150_000,
            "{name}: the three bundles are embedded ({used:?})"
        );
    }
}

/// A suite that cannot fit is refused before anything is built or flashed, with the sizes.
#[test]
fn a_suite_too_large_for_the_board_is_refused_with_its_sizes() {
    let microbit = host::board("microbit").unwrap();
    let error = host::preflight(microbit, &suite(16))
        .expect_err("461 KB of vectors cannot fit 256 KiB of flash");
    let message = error.to_string();
    assert!(
        message.starts_with("flash does not fit microbit: needs "),
        "{message}"
    );
    assert!(message.contains("the board has 262144"), "{message}");
}

/// Streaming mode: the board holds only the model and gets the 200 samples one by one as
/// postcard COBS frames on its UART (a TCP socket under QEMU); its logits must equal the host's.
#[test]
fn streaming_over_the_uart_matches_the_host() {
    let board = host::board("mps2-an386").unwrap();
    // One precision: bytes cross QEMU's UART model one at a time, about 10 s per 200 samples.
    let entries = suite(side(board));
    for entry in entries.iter().skip(2) {
        let elf = {
            let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
            let elf = host::build_streaming(&root(), board, &entry.model)
                .unwrap_or_else(|e| panic!("{e}"));
            let name = entry
                .model
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let copy = hil_dir()
                .join("elf")
                .join(format!("{}-stream-{name}", board.name));
            std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
            std::fs::copy(&elf, &copy).unwrap();
            copy
        };
        let bytes = std::fs::read(&entry.vectors).unwrap();
        let vectors = TestVectors::from_bytes(&bytes).unwrap();
        let (streamed, run) = host::boot_streaming(board, &elf, TIMEOUT, |link| {
            host::validate_stream(link, &vectors)
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let streamed = streamed.unwrap_or_else(|e| panic!("{e}\n{}\n{}", run.stdout, run.stderr));
        assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
        let r = streamed.result;
        assert_eq!(
            (r.samples as usize, r.disagreements),
            (SAMPLES, 0),
            "{:?}",
            streamed.mismatches
        );
        assert_eq!((r.top1, r.top5), host_counts(&entry.vectors));
        assert_eq!((r.top1, r.top5), (r.host_top1, r.host_top5));
        assert_eq!(streamed.hello.board, "mps2-an386");
        assert!(r.per_inference > 0);
        println!(
            "streamed {} on {}: {} samples, top-1 {}, top-5 {}, 0 disagreements, {} {}/inference",
            streamed.hello.precision,
            streamed.hello.board,
            r.samples,
            r.top1,
            r.top5,
            r.per_inference,
            streamed.hello.unit
        );
    }
}

/// Soak: many more generator models (`GHNQ_HIL_SOAK`, default 1000, 4 samples each) on the
/// RV32, Cortex-M4 and Cortex-M0 boards. `cargo test -p tests --test hil -- --ignored --nocapture`.
#[test]
#[ignore = "soak test, about a minute; run with --ignored"]
fn soak_generator_models_on_rv32_m4_and_m0() {
    let count = std::env::var("GHNQ_HIL_SOAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let entries = random_entries("soak", count, 4);
    // The Cortex-M0 (no 64-bit multiply, no divide) gets the first 150, all its flash holds.
    for (name, take) in [
        ("riscv-virt", entries.len()),
        ("mps2-an386", entries.len()),
        ("microbit", 150),
    ] {
        let board = host::board(name).unwrap();
        let entries = &entries[..take.min(entries.len())];
        let (elf, _) = build(board, entries, "soak", None);
        let run = host::boot(board, &elf, entries, TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
        let bad: Vec<String> = entries
            .iter()
            .zip(&run.report.models)
            .filter(|(_, m)| m.failure.is_some() || m.result.is_none_or(|r| r.disagreements != 0))
            .map(|(e, m)| format!("{}: {:?} {:?}", e.model.display(), m.failure, m.mismatches))
            .collect();
        assert!(bad.is_empty(), "{name}: {bad:#?}");
        assert_eq!(run.code, Some(0), "{name}: {}", run.stderr);
        assert_eq!(run.report.models.len(), entries.len());
        println!(
            "{name}: {} generator models × 4 samples, 0 disagreements",
            entries.len()
        );
    }
}

/// defmt: the micro:bit (the smallest flash) reports as defmt frames over semihosting, decoded
/// on the host by defmt-print into the same lines, with the same counts. (The image is barely
/// smaller: failure messages and the panic handler still link `core::fmt`.)
#[test]
fn microbit_reports_through_defmt() {
    let board = host::board("microbit").unwrap();
    let entries = suite(side(board));
    let (elf, with_defmt) = {
        let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        let elf = host::build_defmt(&root(), board, &entries).unwrap_or_else(|e| panic!("{e}"));
        let copy = hil_dir().join("elf").join(format!("{}-defmt", board.name));
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::copy(&elf, &copy).unwrap();
        let used = host::memory_use(&copy).unwrap();
        (copy, used)
    };
    let (_, with_text) = build(board, &entries, "text", None);
    let run = host::boot_defmt(board, &elf, TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("exit {:?}\n{}\n{}", run.code, run.stdout, run.stderr);
    assert_eq!(run.code, Some(0), "{context}");
    assert_eq!(run.report.status.as_deref(), Some("pass"), "{context}");
    assert_eq!(run.report.models.len(), entries.len(), "{context}");
    for (entry, model) in entries.iter().zip(&run.report.models) {
        let r = model.result.unwrap_or_else(|| panic!("{context}"));
        assert_eq!(
            (r.samples as usize, r.disagreements),
            (SAMPLES, 0),
            "{context}"
        );
        assert_eq!((r.top1, r.top5), host_counts(&entry.vectors));
    }
    println!(
        "microbit flash: {} bytes with defmt, {} with text over semihosting",
        with_defmt.flash, with_text.flash
    );
    assert!(
        with_defmt.flash < with_text.flash,
        "{with_defmt:?} vs {with_text:?}"
    );
}

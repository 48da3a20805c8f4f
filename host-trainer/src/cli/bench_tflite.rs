//! `ghnq bench tflite --model m.tflite`: the edge runtime beside TFLM's reference interpreter
//! (and LiteRT, if installed) on the host, in one run, and the runtime on an emulated board.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use firmware::host::{BOARDS, Entry};
use ghnq_device::random_vectors::random_vectors;
use ghnq_device::{hil, read_file};
use ghnq_tflite::{self as tflite, tflm::Tflm};
use rand::{Rng, SeedableRng};
use shared_format::Model;

/// What `ghnq bench tflite` measures.
pub struct Options<'a> {
    /// The .tflite model.
    pub model: &'a Path,
    /// Timed inferences per interpreter (after one warm-up).
    pub iterations: usize,
    /// Emulated board for instructions per inference (`none` skips it).
    pub board: &'a str,
    /// SDK checkout holding `boards/`.
    pub sdk: PathBuf,
}

pub fn run(o: Options<'_>) -> Result<()> {
    let bytes = read_file(o.model)?;
    let name = o
        .model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let imported = tflite::import(&bytes, &name)
        .with_context(|| format!("cannot import {}", o.model.display()))?;
    let model = Model::from_bytes(&imported.blob)?;
    let macs = ghnq_device::summary::Summary::new(&model, imported.blob.len()).macs;
    println!(
        "{}: {} runtime ops, {:.2} M MACs, arena {} B (activations and scratch: the runtime needs nothing else)",
        o.model.display(),
        imported.ops.iter().filter(|(_, _, k)| k.is_some()).count(),
        macs as f64 / 1e6,
        model.arena_bytes()
    );

    // The edge runtime on the host, one thread, the profile this binary was built with.
    let input_len = model.input_tensor().bytes() as usize;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let input: Vec<i8> = (0..input_len).map(|_| rng.random()).collect();
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interpreter = edge_runtime::Interpreter::new(&model, &mut arena)?;
    interpreter.run(&input)?;
    let start = Instant::now();
    for _ in 0..o.iterations {
        std::hint::black_box(interpreter.run(std::hint::black_box(&input))?);
    }
    let ours = start.elapsed().as_secs_f64() * 1e3 / o.iterations as f64;
    let profile = if cfg!(debug_assertions) {
        "dev profile: overflow checks on; `cargo run --release` for representative times"
    } else {
        "release profile"
    };

    let tflm = Tflm::locate()?;
    let reference = tflm
        .bench(o.model, o.iterations)
        .context("timing TFLM's reference interpreter")?;
    let litert = tflm
        .bench_litert(o.model, o.iterations)
        .context("timing LiteRT")?;
    println!(
        "host, one thread, mean of {} inferences after a warm-up:",
        o.iterations
    );
    println!("  edge runtime           {ours:>10.3} ms   ({profile})");
    println!(
        "  TFLM reference         {reference:>10.3} ms   runtime is {:.2}x its speed",
        reference / ours
    );
    match litert {
        Some(ms) => println!(
            "  LiteRT (XNNPACK)       {ms:>10.3} ms   runtime is {:.2}x its speed",
            ms / ours
        ),
        None => println!(
            "  LiteRT (XNNPACK)       not installed (`{} -m pip install ai-edge-litert` adds it)",
            tflm.python().display()
        ),
    }

    if o.board == "none" {
        return Ok(());
    }
    let Some(board) = BOARDS.iter().find(|b| b.name == o.board) else {
        let names: Vec<&str> = BOARDS.iter().map(|b| b.name).collect();
        bail!(
            "unknown board `{}`; boards: {}, none",
            o.board,
            names.join(", ")
        );
    };
    let dir = tempfile::tempdir()?;
    let entry = Entry {
        model: dir.path().join("model.ghnq"),
        vectors: dir.path().join("model.ghnv"),
    };
    std::fs::write(&entry.model, &imported.blob)?;
    std::fs::write(&entry.vectors, random_vectors(&model, 2, 0)?)?;
    let report = hil::run(&o.sdk, board, &[entry], Duration::from_secs(600), false)?;
    let row = report.rows.first().context("the board reported no model")?;
    println!(
        "{} ({}): {} {} per inference, {:.3} MACs per {}, {} of 2 samples differ from the host; RAM {} B",
        board.name,
        report.core,
        row.per_inference,
        row.unit,
        row.macs_per_unit,
        row.unit.trim_end_matches('s'),
        row.disagreements,
        row.ram
    );
    Ok(())
}

//! Robustness: corrupted blobs, mismatched inputs and too-small arenas must produce typed errors,
//! never a panic.
//!
//! Every case runs under `catch_unwind` with a silent panic hook that records the message, so
//! the suite counts panics (and must count zero) instead of stopping at the first. Blobs that a
//! mutation leaves valid are run to completion and, when small, compared with the golden
//! interpreter too: a valid blob is a valid model, whatever produced it.
//!
//! Everything is derived from fixed seeds, so a failure names a reproducible case index.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, Once};

use edge_runtime::{Error, FormatError, Interpreter, Model};
use tests::generator::{GenConfig, OP_KINDS, Rng, generate, input_spec, random_input};
use tests::golden;

/// CRC-32/ISO-HDLC, as the header stores it (bytes 8..12, over bytes 12..end).
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
const HEADER_LEN: usize = 28;
/// Largest arena a case allocates; bigger (mutated) plans are only checked for "too small".
const ARENA_CAP: usize = 16 << 20;

/// Panic messages caught so far (the hook stores them; `catch_unwind` keeps the suite going).
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

thread_local! {
    /// True while a case runs under [`quietly`]: its panics are recorded, not printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let mut p = PANICS.lock().unwrap_or_else(|e| e.into_inner());
                p.push(info.to_string());
            } else {
                default(info);
            }
        }));
    });
}

/// Runs `f` under `catch_unwind` with its panic message recorded instead of printed; returns
/// the message if it panicked.
fn quietly(f: impl FnOnce()) -> Option<String> {
    install_quiet_hook();
    QUIET.with(|q| q.set(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    result.err().map(|_| {
        PANICS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .cloned()
            .unwrap_or_default()
    })
}

/// Valid blobs to mutate: generated DAGs of every op kind and size.
fn base_blobs(count: u64) -> Vec<Vec<u8>> {
    (0..count)
        .filter_map(|seed| generate(0xB10B_0000 + seed, GenConfig::default()).ok())
        .map(|g| g.blob)
        .collect()
}

/// Fixes the CRC (and, if asked, the payload length) so a mutation reaches the decoder.
fn reseal(blob: &mut [u8], fix_length: bool) {
    if blob.len() < 12 {
        return;
    }
    if fix_length && blob.len() >= HEADER_LEN {
        let len = (blob.len() - HEADER_LEN) as u32;
        blob[16..20].copy_from_slice(&len.to_le_bytes());
    }
    let crc = CRC32.checksum(&blob[12..]);
    blob[8..12].copy_from_slice(&crc.to_le_bytes());
}

const MUTATIONS: [&str; 8] = [
    "bit_flips",
    "byte_overwrite",
    "interesting_bytes",
    "truncate",
    "insert",
    "remove_range",
    "duplicate_range",
    "header_field",
];

fn mutate(rng: &mut Rng, blob: &mut Vec<u8>) -> &'static str {
    let kind = rng.below(MUTATIONS.len() as u64) as usize;
    let len = blob.len();
    let pos = |rng: &mut Rng, n: usize| rng.below(n.max(1) as u64) as usize;
    match kind {
        0 => {
            for _ in 0..rng.range(1, 4) {
                let i = pos(rng, len);
                blob[i] ^= 1 << rng.below(8);
            }
        }
        1 => {
            for _ in 0..rng.range(1, 4) {
                let i = pos(rng, len);
                blob[i] = rng.next_u64() as u8;
            }
        }
        2 => {
            let i = pos(rng, len);
            let v: [u8; 9] = [0, 1, 2, 0x7F, 0x80, 0xFE, 0xFF, 7, 8];
            blob[i] = rng.pick(&v);
            if rng.chance(0.3) && i + 4 <= len {
                let wide: [u32; 5] = [0, u32::MAX, 0x7FFF_FFFF, 0x8000_0000, 0x0001_0000];
                blob[i..i + 4].copy_from_slice(&rng.pick(&wide).to_le_bytes());
            }
        }
        3 => {
            let keep = pos(rng, len);
            blob.truncate(keep);
        }
        4 => {
            let i = pos(rng, len + 1).min(len);
            let n = rng.range(1, 16) as usize;
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            blob.splice(i..i, bytes);
        }
        5 => {
            let i = pos(rng, len);
            let n = (rng.range(1, 32) as usize).min(len - i);
            blob.drain(i..i + n);
        }
        6 => {
            let i = pos(rng, len);
            let n = (rng.range(1, 32) as usize).min(len - i);
            let copy: Vec<u8> = blob[i..i + n].to_vec();
            let at = pos(rng, len + 1).min(len);
            blob.splice(at..at, copy);
        }
        _ => {
            // Header fields: rounding, flags, reserved, payload length, activation and scratch
            // bytes, version.
            let fields: [(usize, usize); 7] =
                [(12, 1), (13, 1), (14, 2), (16, 4), (20, 4), (24, 4), (4, 4)];
            let (at, width) = rng.pick(&fields);
            let value = match rng.below(4) {
                0 => 0u32,
                1 => u32::MAX,
                2 => rng.below(256) as u32,
                _ => rng.next_u64() as u32,
            };
            if let Some(field) = blob.get_mut(at..at + width) {
                field.copy_from_slice(&value.to_le_bytes()[..width]);
            }
        }
    }
    MUTATIONS[kind]
}

/// Name of an error variant (for counting how deep the mutations reached).
fn variant(e: &FormatError) -> &'static str {
    match e {
        FormatError::Truncated { .. } => "Truncated",
        FormatError::BadMagic { .. } => "BadMagic",
        FormatError::UnsupportedVersion { .. } => "UnsupportedVersion",
        FormatError::PayloadLength { .. } => "PayloadLength",
        FormatError::Checksum { .. } => "Checksum",
        FormatError::UnknownRounding(_) => "UnknownRounding",
        FormatError::UnknownFlags(_) => "UnknownFlags",
        FormatError::Payload(_) => "Payload",
        FormatError::TrailingBytes(_) => "TrailingBytes",
        FormatError::Tensor { .. } => "Tensor",
        FormatError::Op { .. } => "Op",
        FormatError::OpDecode { .. } => "OpDecode",
        FormatError::Overlap { .. } => "Overlap",
        FormatError::Empty => "Empty",
        FormatError::TensorCount { .. } => "TensorCount",
        FormatError::Scratch { .. } => "Scratch",
        FormatError::Output(_) => "Output",
        FormatError::Vectors(_) => "Vectors",
    }
}

#[derive(Debug, Default)]
struct Tally {
    cases: u64,
    panics: u64,
    rejected: BTreeMap<&'static str, u64>,
    validated: u64,
    ran: u64,
    golden_checked: u64,
    golden_mismatches: Vec<String>,
    arena_too_large: u64,
    by_mutation: BTreeMap<&'static str, u64>,
    resealed: u64,
    /// Mutated-but-valid blobs that ran, by the op kinds they contain.
    ran_with_op: BTreeMap<&'static str, u64>,
}

/// Decodes `blob`; if it validates, runs it (valid input, too-small arena, wrong length) and,
/// for small models, compares with the golden interpreter.
fn exercise(blob: &[u8], rng: &mut Rng, tally: &mut Tally, case: u64) {
    let model = match Model::from_bytes(blob) {
        Err(e) => {
            *tally.rejected.entry(variant(&e)).or_default() += 1;
            return;
        }
        Ok(m) => m,
    };
    tally.validated += 1;
    let needed = model.arena_bytes();
    if needed > 0 {
        let mut small = vec![0u8; rng.below(needed as u64) as usize];
        match Interpreter::new(&model, &mut small) {
            Err(Error::ArenaTooSmall {
                needed: n,
                provided,
            }) => {
                assert_eq!((n, provided), (needed, small.len()), "case {case}");
            }
            other => panic!("case {case}: too-small arena gave {other:?}"),
        }
    }
    if needed > ARENA_CAP {
        tally.arena_too_large += 1;
        return;
    }
    let mut arena = vec![0xA5u8; needed];
    let mut interpreter = Interpreter::new(&model, &mut arena).expect("arena is large enough");
    let input = random_input(rng, input_spec(&model));
    let mut wrong = input.clone();
    wrong.push(0);
    assert!(
        matches!(interpreter.run(&wrong), Err(Error::InputLength { .. })),
        "case {case}: input one too long accepted"
    );
    let out = interpreter
        .run(&input)
        .unwrap_or_else(|e| panic!("case {case}: a validated blob failed to run: {e}"))
        .to_vec();
    tally.ran += 1;
    let kinds: std::collections::BTreeSet<&'static str> = model
        .ops()
        .filter_map(|op| op.ok().map(|op| op.kind().name()))
        .collect();
    for kind in kinds {
        *tally.ran_with_op.entry(kind).or_default() += 1;
    }
    assert_eq!(
        out.len() as u64,
        model.output_tensor().shape.elements(),
        "case {case}"
    );
    if needed <= 1 << 20 {
        let expected = golden::run(&model, &input).expect("golden runs a valid model");
        tally.golden_checked += 1;
        if expected != out && tally.golden_mismatches.len() < 5 {
            tally.golden_mismatches.push(format!(
                "case {case}: runtime {out:?} != golden {expected:?}; blob {blob:02x?}; input {input:?}"
            ));
        }
    }
}

/// Case `case`: [`exercise`]s `blob` (mutated by `kinds`, if any) under [`quietly`] with a
/// stream of its own, and counts it and any panic; the first five panics print their blob.
fn run_case(blob: &[u8], kinds: &[&str], tally: &mut Tally, case: u64) {
    let mut case_rng = Rng::new(case);
    let result = quietly(|| exercise(blob, &mut case_rng, tally, case));
    tally.cases += 1;
    if let Some(msg) = result {
        tally.panics += 1;
        if tally.panics <= 5 {
            let kinds = if kinds.is_empty() {
                String::new()
            } else {
                format!(" ({kinds:?})")
            };
            eprintln!("PANIC in case {case}{kinds}: {msg}\nblob: {blob:02x?}");
        }
    }
}

/// ≥ 100,000 mutated blobs, half with a stale CRC and half resealed (CRC and usually the payload
/// length recomputed) so the mutation reaches the payload decoder and the validator.
#[test]
fn corrupted_blobs_never_panic() {
    let bases = base_blobs(200);
    assert!(bases.len() >= 195, "generator produced too few base blobs");
    let with_softmax = bases
        .iter()
        .filter(|b| {
            Model::from_bytes(b)
                .unwrap()
                .ops()
                .any(|op| matches!(op, Ok(shared_format::Op::Softmax(_))))
        })
        .count();
    assert!(
        with_softmax >= 20,
        "only {with_softmax} base blobs have a softmax"
    );
    let mut rng = Rng::new(0x0BAD_B10B);
    let mut tally = Tally::default();
    const CASES: u64 = 120_000;
    for case in 0..CASES {
        let mut blob = bases[rng.below(bases.len() as u64) as usize].clone();
        let mut kinds = vec![mutate(&mut rng, &mut blob)];
        if rng.chance(0.2) && !blob.is_empty() {
            kinds.push(mutate(&mut rng, &mut blob));
        }
        for k in &kinds {
            *tally.by_mutation.entry(k).or_default() += 1;
        }
        if rng.chance(0.5) {
            reseal(&mut blob, rng.chance(0.8));
            tally.resealed += 1;
        }
        run_case(&blob, &kinds, &mut tally, case);
    }
    eprintln!("{tally:#?}");
    assert_eq!(
        tally.panics, 0,
        "{} of {} cases panicked",
        tally.panics, tally.cases
    );
    assert!(
        tally.golden_mismatches.is_empty(),
        "runtime and golden disagree on mutated-but-valid blobs:\n{}",
        tally.golden_mismatches.join("\n")
    );
    assert_eq!(tally.cases, CASES);
    let rejected: u64 = tally.rejected.values().sum();
    assert_eq!(rejected + tally.validated, CASES);
    assert!(tally.resealed >= CASES / 3, "too few resealed cases");
    // Every op kind, softmax, mean, the format-1.2 kernels and the elementwise ops of formats
    // 1.4 and 1.5 included, ran in some corrupted blob.
    for kind in OP_KINDS {
        assert!(
            tally.ran_with_op.get(kind).copied().unwrap_or(0) > 0,
            "no mutated blob with a {kind} ran: {:?}",
            tally.ran_with_op
        );
    }
    for m in MUTATIONS {
        assert!(
            tally.by_mutation.get(m).copied().unwrap_or(0) >= CASES / 20,
            "mutation {m} under-used"
        );
    }
    // Mutations must reach past the checksum into the decoder and the validator.
    for v in [
        "Checksum",
        "PayloadLength",
        "Payload",
        "Tensor",
        "Op",
        "OpDecode",
        "TrailingBytes",
    ] {
        assert!(
            tally.rejected.get(v).copied().unwrap_or(0) > 0,
            "no mutation was rejected as {v}: {:?}",
            tally.rejected
        );
    }
    assert!(
        tally.validated > 0 && tally.ran > 0,
        "no mutated blob stayed valid"
    );
}

/// Arbitrary byte strings (not derived from a valid blob), with and without a valid header.
#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(0x5EED_0001);
    let mut tally = Tally::default();
    const CASES: u64 = 20_000;
    for case in 0..CASES {
        let n = rng.below(200) as usize;
        let mut blob: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
        if rng.chance(0.7) && blob.len() >= HEADER_LEN {
            blob[..4].copy_from_slice(b"GHNQ");
            blob[4..8].copy_from_slice(&[1, 0, 0, 0]);
            blob[12..16].copy_from_slice(&[rng.below(2) as u8, 0, 0, 0]);
            reseal(&mut blob, true);
        }
        run_case(&blob, &[], &mut tally, case);
    }
    eprintln!("{tally:#?}");
    assert_eq!(tally.panics, 0);
    assert_eq!(tally.cases, CASES);
    assert!(tally.golden_mismatches.is_empty());
    assert!(tally.rejected.get("Payload").copied().unwrap_or(0) > 0);
}

/// Valid models with the wrong input length, out-of-range inputs and too-small arenas: typed
/// errors that name the problem, and the interpreter still works afterwards.
#[test]
fn mismatched_inputs_and_small_arenas_are_typed_errors() {
    let mut counts = BTreeMap::<&str, u64>::new();
    let mut panics = 0;
    for seed in 0..2_000u64 {
        let Ok(g) = generate(0x1A9_0000 + seed, GenConfig::default()) else {
            continue;
        };
        let result = quietly(|| {
            let model = Model::from_bytes(&g.blob).unwrap();
            let needed = model.arena_bytes();
            let spec = input_spec(&model);
            let n = g.input.len();

            // Too-small arenas: empty, one byte short, and a random size in between.
            let mut rng = Rng::new(seed);
            for size in [
                0,
                needed.saturating_sub(1),
                rng.below(needed as u64) as usize,
            ] {
                if size >= needed {
                    continue;
                }
                let mut arena = vec![0u8; size];
                assert_eq!(
                    Interpreter::new(&model, &mut arena).err(),
                    Some(Error::ArenaTooSmall {
                        needed,
                        provided: size
                    })
                );
                *counts.entry("arena_too_small").or_default() += 1;
            }

            let mut arena = vec![0u8; needed + rng.below(64) as usize];
            let mut interpreter = Interpreter::new(&model, &mut arena).unwrap();
            // Wrong lengths: empty, one short, one long, double.
            for len in [0, n.saturating_sub(1), n + 1, 2 * n] {
                if len == n {
                    continue;
                }
                let input = vec![spec.zero_point; len];
                assert_eq!(
                    interpreter.run(&input).err(),
                    Some(Error::InputLength {
                        expected: n,
                        found: len
                    })
                );
                *counts.entry("input_length").or_default() += 1;
            }
            // Out-of-range values for sub-8-bit inputs, at a random position.
            if spec.bits < 8 {
                let (lo, hi) = golden::bit_range(spec.bits);
                let index = rng.below(n as u64) as usize;
                for value in [hi + 1, lo - 1, 127, -128] {
                    let mut input = g.input.clone();
                    input[index] = value as i8;
                    let err = interpreter.run(&input).err();
                    assert_eq!(
                        err,
                        Some(Error::InputRange {
                            index,
                            value: value as i8,
                            bits: spec.bits
                        }),
                        "seed {seed}"
                    );
                    *counts.entry("input_range").or_default() += 1;
                }
            }
            // After all those refusals the interpreter still computes the right answer.
            let expected = golden::run(&model, &g.input).unwrap();
            assert_eq!(interpreter.run(&g.input).unwrap(), &expected[..]);
            *counts.entry("recovered").or_default() += 1;
        });
        if let Some(msg) = result {
            panics += 1;
            eprintln!("seed {seed}: {msg}");
        }
    }
    eprintln!("{counts:?}");
    assert_eq!(panics, 0);
    assert!(counts["arena_too_small"] >= 2_000);
    assert!(counts["input_length"] >= 6_000);
    assert!(counts["input_range"] >= 2_000);
    assert!(counts["recovered"] >= 1_990);
}

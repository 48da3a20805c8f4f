//! The validation loop: one model, one bundle, every sample, byte-exact logits.

use edge_runtime::{Interpreter, Model, OpKind, OpObserver};
use shared_format::TestVectors;
use shared_format::stats::macs;
use shared_format::vectors::rank_of;

use crate::counter::Counter;
use crate::report::{Event, Failure, Report, Summary};

/// Mismatching samples reported per model (all are counted).
pub const MISMATCHES_REPORTED: u32 = 4;

/// How a model (or a suite) went; the board exits with [`Outcome::exit_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Every logit equals the host's.
    Pass,
    /// Some logits differ from the host's.
    Disagree,
    /// A model could not be validated (bad blob, arena too small, …).
    Error,
}

impl Outcome {
    /// Process exit status: 0 pass, 1 disagreement, 2 error (a panic exits with 101).
    pub const fn exit_code(self) -> i32 {
        match self {
            Outcome::Pass => 0,
            Outcome::Disagree => 1,
            Outcome::Error => 2,
        }
    }

    /// Name as in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Disagree => "disagree",
            Outcome::Error => "error",
        }
    }
}

/// Validates every `(blob, vectors)` pair in turn; returns the worst outcome.
pub fn validate_suite<C: Counter, R: Report>(
    board: &str,
    suite: &[(&[u8], &[u8])],
    arena: &mut [u8],
    counter: &mut C,
    report: &mut R,
) -> Outcome {
    report.event(&Event::Board {
        name: board,
        unit: counter.unit(),
        models: suite.len(),
    });
    let mut worst = Outcome::Pass;
    if suite.is_empty() {
        report.event(&Event::Failed {
            model: 0,
            sample: None,
            failure: Failure::EmptySuite,
        });
        worst = Outcome::Error;
    }
    for (index, (blob, vectors)) in (0u16..).zip(suite) {
        worst = worst.max(validate(index, blob, vectors, arena, counter, report));
    }
    report.event(&Event::Done { outcome: worst });
    worst
}

/// Validates one model over its bundle, reporting through `report`.
pub fn validate<C: Counter, R: Report>(
    index: u16,
    blob: &[u8],
    vectors: &[u8],
    arena: &mut [u8],
    counter: &mut C,
    report: &mut R,
) -> Outcome {
    match run(index, blob, vectors, arena, counter, report) {
        Ok(summary) => {
            report.event(&Event::Summary {
                summary,
                unit: counter.unit(),
            });
            if summary.disagreements == 0 {
                Outcome::Pass
            } else {
                Outcome::Disagree
            }
        }
        Err((sample, failure)) => {
            report.event(&Event::Failed {
                model: index,
                sample,
                failure,
            });
            Outcome::Error
        }
    }
}

type Failed = (Option<u32>, Failure);

fn run<C: Counter, R: Report>(
    index: u16,
    blob: &[u8],
    vectors: &[u8],
    arena: &mut [u8],
    counter: &mut C,
    report: &mut R,
) -> Result<Summary, Failed> {
    let model = Model::from_bytes(blob).map_err(|e| (None, Failure::Format(e)))?;
    let bundle = TestVectors::from_bytes(vectors).map_err(|e| (None, Failure::Format(e)))?;
    check_bundle(&model, &bundle).map_err(|f| (None, f))?;

    let mut total_macs = 0u64;
    for op in model.ops() {
        let op = op.map_err(|e| (None, Failure::Format(e)))?;
        total_macs += macs(&op, model.tensors());
    }
    let meta = model.metadata();
    report.event(&Event::Model {
        index,
        name: meta.name,
        precision: meta.precision,
        ops: model.op_count(),
        macs: total_macs,
        arena: model.arena_bytes(),
        blob: blob.len(),
        samples: bundle.len(),
    });

    let mut interpreter =
        Interpreter::new(&model, arena).map_err(|e| (None, Failure::Runtime(e)))?;

    // Per-op profile of the first sample, in a run of its own so the printing stays out of the
    // measured totals.
    if let Some(first) = bundle.sample(0) {
        let mut profiler = Profiler {
            model: &model,
            index,
            counter: &mut *counter,
            report: &mut *report,
            start: 0,
        };
        interpreter
            .run_observed(first.input, &mut profiler)
            .map_err(|e| (Some(0), Failure::Runtime(e)))?;
    }

    let mut summary = Summary {
        model: index,
        macs: total_macs,
        ..Summary::default()
    };
    for (i, sample) in (0u32..).zip(bundle.iter()) {
        let before = counter.now();
        let logits = interpreter
            .run(sample.input)
            .map_err(|e| (Some(i), Failure::Runtime(e)))?;
        let after = counter.now();
        summary.total += after.wrapping_sub(before);
        summary.samples += 1;

        let label = usize::from(sample.label);
        let rank = rank_of(logits, label);
        let host_rank = rank_of(sample.expected, label);
        summary.top1 += u32::from(rank < 1);
        summary.top5 += u32::from(rank < 5);
        summary.host_top1 += u32::from(host_rank < 1);
        summary.host_top5 += u32::from(host_rank < 5);

        if logits != sample.expected {
            if summary.disagreements < MISMATCHES_REPORTED {
                let (position, (&got, &expected)) = logits
                    .iter()
                    .zip(sample.expected)
                    .enumerate()
                    .find(|(_, (a, b))| a != b)
                    .unwrap_or((logits.len().min(sample.expected.len()), (&0, &0)));
                report.event(&Event::Mismatch {
                    model: index,
                    sample: i,
                    position,
                    got,
                    expected,
                });
            }
            summary.disagreements += 1;
        }
    }
    Ok(summary)
}

fn check_bundle(model: &Model<'_>, bundle: &TestVectors<'_>) -> Result<(), Failure> {
    let model_crc = model.header().crc32;
    if bundle.model_crc() != model_crc {
        return Err(Failure::VectorsForOtherModel {
            model_crc,
            vectors_crc: bundle.model_crc(),
        });
    }
    let model_input = model.input_tensor().shape.elements() as usize;
    let model_output = model.output_tensor().shape.elements() as usize;
    if bundle.input_len() != model_input || bundle.output_len() != model_output {
        return Err(Failure::VectorsShape {
            model_input,
            vectors_input: bundle.input_len(),
            model_output,
            vectors_output: bundle.output_len(),
        });
    }
    Ok(())
}

/// Reads the counter around every op and reports the difference.
struct Profiler<'r, 'm, C, R> {
    model: &'r Model<'m>,
    index: u16,
    counter: &'r mut C,
    report: &'r mut R,
    start: u64,
}

impl<C: Counter, R: Report> OpObserver for Profiler<'_, '_, C, R> {
    fn op_start(&mut self, _index: u16, _kind: OpKind) {
        self.start = self.counter.now();
    }

    fn op_end(&mut self, index: u16, kind: OpKind) {
        let count = self.counter.now().wrapping_sub(self.start);
        let op_macs = self
            .model
            .ops()
            .nth(usize::from(index))
            .and_then(Result::ok)
            .map_or(0, |op| macs(&op, self.model.tensors()));
        self.report.event(&Event::Op {
            model: self.index,
            index,
            kind,
            macs: op_macs,
            count,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::string::{String, ToString};
    use std::vec;
    use std::vec::Vec;

    use edge_runtime::Interpreter;
    use shared_format::le::i32s_to_le;
    use shared_format::{
        Clamp, GlobalAvgPool, LeI32s, Linear, Model, ModelBuilder, Op, Requant, Shape, TensorSpec,
        TestVectorsBuilder, WeightScheme, Weights,
    };

    use super::*;
    use crate::counter::Unit;

    /// Counts 100 "instructions" per reading, so every measured interval is known.
    struct FakeCounter(u64);

    impl Counter for FakeCounter {
        fn unit(&self) -> Unit {
            Unit::Instructions
        }
        fn now(&mut self) -> u64 {
            self.0 += 100;
            self.0
        }
    }

    #[derive(Default)]
    struct Lines(Vec<String>);

    impl Report for Lines {
        fn event(&mut self, event: &Event<'_>) {
            self.0.extend(event.to_string().lines().map(String::from));
        }
    }

    impl Lines {
        fn with(&self, prefix: &str) -> Vec<&str> {
            self.0
                .iter()
                .filter(|l| l.starts_with(prefix))
                .map(String::as_str)
                .collect()
        }
    }

    /// 2x2x4 input → global average pool → linear to 3 logits.
    fn blob() -> Vec<u8> {
        let spec = |h, c| TensorSpec {
            shape: Shape::new(h, h, c),
            zero_point: 0,
            bits: 8,
        };
        let mut b = ModelBuilder::new(spec(2, 4), 0.1);
        b.metadata("tiny", "w8a8", "synthetic", 0, 0, 0);
        let pooled = b.tensor(spec(1, 4));
        let clamp = Clamp {
            min: -128,
            max: 127,
        };
        b.push(&Op::GlobalAvgPool(GlobalAvgPool {
            input: 0,
            output: pooled,
            clamp,
        }))
        .unwrap();
        let logits = b.tensor(spec(1, 3));
        let weights: Vec<u8> = [1i8, -2, 3, 4, 5, -6, 7, 8, -9, 10, 11, 12]
            .iter()
            .map(|&v| v as u8)
            .collect();
        let (bias, multipliers) = (i32s_to_le(&[1, -1, 0]), i32s_to_le(&[1 << 30]));
        b.push(&Op::Linear(Linear {
            input: pooled,
            output: logits,
            weights: Weights {
                bits: 8,
                scheme: WeightScheme::PerTensorAffine,
                zero_point: 0,
                data: &weights,
            },
            bias: LeI32s::new(&bias),
            requant: Requant {
                multipliers: LeI32s::new(&multipliers),
                shifts: &[0u8],
            },
            clamp,
        }))
        .unwrap();
        b.finish(logits, 0.1).unwrap()
    }

    /// Vectors with the host runtime's logits, optionally corrupting one logit of sample 2.
    fn bundle(blob: &[u8], corrupt: bool) -> Vec<u8> {
        let model = Model::from_bytes(blob).unwrap();
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut interpreter = Interpreter::new(&model, &mut arena).unwrap();
        let mut v = TestVectorsBuilder::new(model.header().crc32, 16, 3);
        for i in 0..5i8 {
            let input: Vec<i8> = (0..16i32)
                .map(|k| ((k * 7 + i32::from(i) * 13) % 50 - 25) as i8)
                .collect();
            let mut logits = interpreter.run(&input).unwrap().to_vec();
            if corrupt && i == 2 {
                logits[1] = logits[1].wrapping_add(1);
            }
            v.push(&input, (i % 3) as u8, &logits).unwrap();
        }
        v.finish().unwrap()
    }

    #[test]
    fn passes_when_every_logit_matches_and_measures_each_inference() {
        let blob = blob();
        let vectors = bundle(&blob, false);
        let mut arena = [0u8; 256];
        let mut lines = Lines::default();
        let outcome = validate_suite(
            "fake",
            &[(&blob, &vectors)],
            &mut arena,
            &mut FakeCounter(0),
            &mut lines,
        );
        assert_eq!(outcome, Outcome::Pass);
        assert_eq!(lines.with("GHNQ op").len(), 2, "{:?}", lines.0);
        let result = lines.with("GHNQ result");
        assert_eq!(result.len(), 1);
        // Two readings per inference, 100 apart: 100 per inference.
        assert!(
            result[0].contains("samples=5 ") && result[0].contains("disagreements=0 "),
            "{}",
            result[0]
        );
        assert!(
            result[0].contains("total=500 per_inference=100 macs=12 unit=instructions"),
            "{}",
            result[0]
        );
        assert_eq!(lines.with("GHNQ done"), ["GHNQ done status=pass code=0"]);
    }

    #[test]
    fn counts_a_differing_logit_as_a_disagreement() {
        let blob = blob();
        let vectors = bundle(&blob, true);
        let mut arena = [0u8; 256];
        let mut lines = Lines::default();
        let outcome = validate(
            0,
            &blob,
            &vectors,
            &mut arena,
            &mut FakeCounter(0),
            &mut lines,
        );
        assert_eq!(outcome, Outcome::Disagree);
        assert_eq!(outcome.exit_code(), 1);
        let mismatch = lines.with("GHNQ mismatch");
        assert_eq!(mismatch.len(), 1);
        assert!(
            mismatch[0].contains("sample=2 position=1"),
            "{}",
            mismatch[0]
        );
        assert!(lines.with("GHNQ result")[0].contains("disagreements=1 "));
    }

    #[test]
    fn reports_bad_blobs_foreign_vectors_and_small_arenas() {
        let blob = blob();
        let vectors = bundle(&blob, false);
        let mut corrupt = blob.clone();
        *corrupt.last_mut().unwrap() ^= 0xff;
        let model_crc = Model::from_bytes(&blob).unwrap().header().crc32;
        let mut builder = TestVectorsBuilder::new(model_crc ^ 1, 16, 3);
        builder.push(&[0; 16], 0, &[0; 3]).unwrap();
        let foreign = builder.finish().unwrap();
        let mut arena = [0u8; 4];
        let mut lines = Lines::default();
        let suite: [(&[u8], &[u8]); 3] =
            [(&corrupt, &vectors), (&blob, &foreign), (&blob, &vectors)];
        let outcome = validate_suite("fake", &suite, &mut arena, &mut FakeCounter(0), &mut lines);
        assert_eq!(outcome, Outcome::Error);
        let failed = lines.with("GHNQ failed");
        assert_eq!(failed.len(), 3, "{:?}", lines.0);
        assert!(
            failed[0].starts_with("GHNQ failed model=0 kind=format sample=- message="),
            "{}",
            failed[0]
        );
        assert!(
            failed[1].starts_with("GHNQ failed model=1 kind=vectors_model"),
            "{}",
            failed[1]
        );
        assert!(
            failed[2].starts_with("GHNQ failed model=2 kind=arena"),
            "{}",
            failed[2]
        );
        assert!(failed[2].contains("4 were provided"), "{}", failed[2]);
        assert_eq!(lines.with("GHNQ done"), ["GHNQ done status=error code=2"]);
    }

    #[test]
    fn an_empty_suite_is_an_error() {
        let mut lines = Lines::default();
        let outcome = validate_suite("fake", &[], &mut [], &mut FakeCounter(0), &mut lines);
        assert_eq!(outcome, Outcome::Error);
        assert!(lines.with("GHNQ failed")[0].contains("kind=empty_suite"));
    }
}

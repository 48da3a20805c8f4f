//! What the validation loop tells the outside world, and the one text form it takes.
//!
//! Every event is one line starting with `GHNQ <kind>` followed by `key=value` pairs, so the
//! host parser needs no escaping rules: the only free text, an error message, comes last
//! (`message=` runs to the end of the line). A summary is also printed in words for people.

use core::fmt;

use edge_runtime::{Error, FormatError, OpKind};

use crate::counter::Unit;
use crate::validate::Outcome;

/// Where events go: semihosting or defmt under QEMU, a UART on a real board, a `Vec` in tests.
pub trait Report {
    /// Delivers one event.
    fn event(&mut self, event: &Event<'_>);
}

/// Why a model could not be validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The firmware was built without any model (`GHNQ_MODEL` unset).
    EmptySuite,
    /// The model blob or the vector bundle does not decode.
    Format(FormatError),
    /// The runtime refused to set up or to run (arena too small, internal error).
    Runtime(Error),
    /// The bundle was made for another model (its model CRC differs from the blob's).
    VectorsForOtherModel {
        /// CRC in the blob header.
        model_crc: u32,
        /// CRC the bundle names.
        vectors_crc: u32,
    },
    /// The bundle's sample or logit length differs from the model's input or output.
    VectorsShape {
        /// Input length of the model.
        model_input: usize,
        /// Input length of the bundle.
        vectors_input: usize,
        /// Output length of the model.
        model_output: usize,
        /// Output length of the bundle.
        vectors_output: usize,
    },
}

impl Failure {
    /// Short machine-readable kind.
    pub const fn kind(&self) -> &'static str {
        match self {
            Failure::EmptySuite => "empty_suite",
            Failure::Format(_) => "format",
            Failure::Runtime(Error::ArenaTooSmall { .. }) => "arena",
            Failure::Runtime(_) => "runtime",
            Failure::VectorsForOtherModel { .. } => "vectors_model",
            Failure::VectorsShape { .. } => "vectors_shape",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::EmptySuite => f.write_str(
                "no model is embedded: build the board with GHNQ_MODEL and GHNQ_VECTORS naming a blob and its test vectors",
            ),
            Failure::Format(e) => write!(f, "{e}"),
            Failure::Runtime(e) => write!(f, "{e}"),
            Failure::VectorsForOtherModel { model_crc, vectors_crc } => write!(
                f,
                "the test vectors were made for the model with CRC {vectors_crc:#010x}, not this one ({model_crc:#010x}); regenerate them from this blob"
            ),
            Failure::VectorsShape { model_input, vectors_input, model_output, vectors_output } => write!(
                f,
                "the test vectors hold {vectors_input} inputs and {vectors_output} logits per sample but the model takes {model_input} and gives {model_output}"
            ),
        }
    }
}

/// The tallies of one model over its bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Index of the model in the board's suite.
    pub model: u16,
    /// Samples run.
    pub samples: u32,
    /// Samples whose label ranks first among the device's logits.
    pub top1: u32,
    /// Samples whose label ranks in the first five.
    pub top5: u32,
    /// The same two counts over the host's (expected) logits.
    pub host_top1: u32,
    /// See `host_top1`.
    pub host_top5: u32,
    /// Samples whose logits differ from the host's in any position (must be 0).
    pub disagreements: u32,
    /// Instructions or cycles over all inferences.
    pub total: u64,
    /// Multiply-accumulates of one inference ([`shared_format::stats::macs`] over the ops).
    pub macs: u64,
}

impl Summary {
    /// Instructions or cycles per inference (rounded down).
    pub const fn per_inference(&self) -> u64 {
        match self.total.checked_div(self.samples as u64) {
            Some(per) => per,
            None => 0,
        }
    }

    /// MACs per instruction (or cycle) times 1000, in integers so no float formatting is linked.
    pub const fn milli_macs_per_unit(&self) -> u64 {
        match (self.macs * 1000).checked_div(self.per_inference()) {
            Some(milli) => milli,
            None => 0,
        }
    }
}

/// One report line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event<'a> {
    /// The board starts; `models` entries follow.
    Board {
        /// Board name (`mps2-an386`, …).
        name: &'a str,
        /// What the counter counts.
        unit: Unit,
        /// Models in the suite.
        models: usize,
    },
    /// A model decoded and is about to run.
    Model {
        /// Index in the suite.
        index: u16,
        /// Metadata name.
        name: &'a str,
        /// Metadata precision label.
        precision: &'a str,
        /// Op count.
        ops: u16,
        /// MACs of one inference.
        macs: u64,
        /// Arena bytes the model needs.
        arena: usize,
        /// Blob bytes.
        blob: usize,
        /// Samples in the bundle.
        samples: usize,
    },
    /// Instructions or cycles of one op, on the first sample (a separate, unmeasured run).
    Op {
        /// Model index in the suite.
        model: u16,
        /// Op index.
        index: u16,
        /// Op kind.
        kind: OpKind,
        /// MACs of the op.
        macs: u64,
        /// Instructions or cycles.
        count: u64,
    },
    /// The first differing logit of a sample (at most a few are reported per model).
    Mismatch {
        /// Model index.
        model: u16,
        /// Sample index.
        sample: u32,
        /// Logit position.
        position: usize,
        /// Device value.
        got: i8,
        /// Host value.
        expected: i8,
    },
    /// The model could not be validated.
    Failed {
        /// Model index.
        model: u16,
        /// The sample being run, if the failure happened while running.
        sample: Option<u32>,
        /// Why.
        failure: Failure,
    },
    /// The tallies of one model.
    Summary {
        /// The tallies.
        summary: Summary,
        /// What the counter counts.
        unit: Unit,
    },
    /// All models ran.
    Done {
        /// Worst outcome over the suite.
        outcome: Outcome,
    },
}

impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Event::Board { name, unit, models } => {
                write!(f, "GHNQ board name={name} unit={unit} models={models}")
            }
            Event::Model {
                index,
                name,
                precision,
                ops,
                macs,
                arena,
                blob,
                samples,
            } => write!(
                f,
                "GHNQ model index={index} name={name} precision={precision} ops={ops} macs={macs} arena={arena} blob={blob} samples={samples}"
            ),
            Event::Op {
                model,
                index,
                kind,
                macs,
                count,
            } => {
                write!(
                    f,
                    "GHNQ op model={model} index={index} kind={kind} macs={macs} count={count}"
                )
            }
            Event::Mismatch {
                model,
                sample,
                position,
                got,
                expected,
            } => write!(
                f,
                "GHNQ mismatch model={model} sample={sample} position={position} got={got} expected={expected}"
            ),
            Event::Failed {
                model,
                sample,
                failure,
            } => {
                write!(
                    f,
                    "GHNQ failed model={model} kind={} sample=",
                    failure.kind()
                )?;
                match sample {
                    Some(s) => write!(f, "{s}")?,
                    None => f.write_str("-")?,
                }
                write!(f, " message={failure}")
            }
            Event::Summary { summary: s, unit } => {
                let milli = s.milli_macs_per_unit();
                write!(
                    f,
                    "GHNQ result model={} samples={} top1={} top5={} host_top1={} host_top5={} disagreements={} total={} per_inference={} macs={} unit={unit}\n\
                     model {}: {} samples, top-1 {}, top-5 {}, {} disagreements with the host, {} {unit}/inference, {}.{:03} MACs/{}",
                    s.model,
                    s.samples,
                    s.top1,
                    s.top5,
                    s.host_top1,
                    s.host_top5,
                    s.disagreements,
                    s.total,
                    s.per_inference(),
                    s.macs,
                    s.model,
                    s.samples,
                    s.top1,
                    s.top5,
                    s.disagreements,
                    s.per_inference(),
                    milli / 1000,
                    milli % 1000,
                    singular(unit),
                )
            }
            Event::Done { outcome } => write!(
                f,
                "GHNQ done status={} code={}",
                outcome.name(),
                outcome.exit_code()
            ),
        }
    }
}

const fn singular(unit: Unit) -> &'static str {
    match unit {
        Unit::Instructions => "instruction",
        Unit::Cycles => "cycle",
        Unit::Nanoseconds => "nanosecond",
    }
}

/// The same lines as [`fmt::Display`], with the formatting done on the host by defmt-print: the
/// format strings stay in the ELF, the device sends only the arguments. A failure's message still
/// goes through `core::fmt` (errors are rare; their text is built on the device).
#[cfg(feature = "defmt")]
impl defmt::Format for Event<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        match *self {
            Event::Board { name, unit, models } => {
                defmt::write!(
                    f,
                    "GHNQ board name={=str} unit={=str} models={=usize}",
                    name,
                    unit.name(),
                    models
                )
            }
            Event::Model {
                index,
                name,
                precision,
                ops,
                macs,
                arena,
                blob,
                samples,
            } => defmt::write!(
                f,
                "GHNQ model index={=u16} name={=str} precision={=str} ops={=u16} macs={=u64} arena={=usize} blob={=usize} samples={=usize}",
                index,
                name,
                precision,
                ops,
                macs,
                arena,
                blob,
                samples
            ),
            Event::Op {
                model,
                index,
                kind,
                macs,
                count,
            } => defmt::write!(
                f,
                "GHNQ op model={=u16} index={=u16} kind={=str} macs={=u64} count={=u64}",
                model,
                index,
                kind.name(),
                macs,
                count
            ),
            Event::Mismatch {
                model,
                sample,
                position,
                got,
                expected,
            } => defmt::write!(
                f,
                "GHNQ mismatch model={=u16} sample={=u32} position={=usize} got={=i8} expected={=i8}",
                model,
                sample,
                position,
                got,
                expected
            ),
            Event::Failed {
                model,
                sample,
                failure,
            } => defmt::write!(
                f,
                "GHNQ failed model={=u16} kind={=str} sample={} message={}",
                model,
                failure.kind(),
                sample,
                defmt::Display2Format(&failure)
            ),
            Event::Summary { summary: s, unit } => defmt::write!(
                f,
                "GHNQ result model={=u16} samples={=u32} top1={=u32} top5={=u32} host_top1={=u32} host_top5={=u32} disagreements={=u32} total={=u64} per_inference={=u64} macs={=u64} unit={=str}",
                s.model,
                s.samples,
                s.top1,
                s.top5,
                s.host_top1,
                s.host_top5,
                s.disagreements,
                s.total,
                s.per_inference(),
                s.macs,
                unit.name()
            ),
            Event::Done { outcome } => {
                defmt::write!(
                    f,
                    "GHNQ done status={=str} code={=i32}",
                    outcome.name(),
                    outcome.exit_code()
                )
            }
        }
    }
}

//! Reading a board's report (the `GHNQ …` lines of [`crate::report`]) back into values.

use std::collections::BTreeMap;

/// The `GHNQ result` line of one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResultLine {
    /// Samples run.
    pub samples: u32,
    /// Device top-1 count.
    pub top1: u32,
    /// Device top-5 count.
    pub top5: u32,
    /// Host top-1 count (from the bundle's expected logits).
    pub host_top1: u32,
    /// Host top-5 count.
    pub host_top5: u32,
    /// Samples whose logits differ from the host's.
    pub disagreements: u32,
    /// Instructions or cycles over all samples.
    pub total: u64,
    /// Per inference.
    pub per_inference: u64,
    /// MACs of one inference.
    pub macs: u64,
}

impl ResultLine {
    /// MACs per instruction (or cycle).
    pub fn macs_per_unit(&self) -> f64 {
        if self.per_inference == 0 {
            0.0
        } else {
            self.macs as f64 / self.per_inference as f64
        }
    }
}

/// One op of the first sample's profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpReport {
    /// Op index.
    pub index: u16,
    /// Op kind name.
    pub kind: String,
    /// MACs.
    pub macs: u64,
    /// Instructions or cycles.
    pub count: u64,
}

/// Everything reported about one model.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelReport {
    /// Metadata name.
    pub name: String,
    /// Precision label.
    pub precision: String,
    /// Arena bytes.
    pub arena: u64,
    /// Per-op profile of the first sample.
    pub ops: Vec<OpReport>,
    /// First mismatching logits: (sample, position, got, expected).
    pub mismatches: Vec<(u32, usize, i8, i8)>,
    /// `kind: message` of a failure.
    pub failure: Option<String>,
    /// The tallies, if the model ran to the end.
    pub result: Option<ResultLine>,
}

/// A board's whole report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BoardReport {
    /// Board name the firmware reported.
    pub board: String,
    /// `instructions` or `cycles`.
    pub unit: String,
    /// Models in suite order.
    pub models: Vec<ModelReport>,
    /// `pass`, `disagree` or `error`; `None` if the firmware never finished.
    pub status: Option<String>,
}

/// Parses the `GHNQ` lines of `text`, ignoring everything else.
pub fn parse(text: &str) -> BoardReport {
    fn model(report: &mut BoardReport, i: Option<usize>) -> Option<&mut ModelReport> {
        let i = i?;
        if report.models.len() <= i {
            report.models.resize(i + 1, ModelReport::default());
        }
        report.models.get_mut(i)
    }
    let mut report = BoardReport::default();
    for line in text.lines() {
        // defmt-print may put a timestamp or level before the message.
        let Some(rest) = line
            .trim_end()
            .find("GHNQ ")
            .map(|at| &line.trim_end()[at + 5..])
        else {
            continue;
        };
        let (kind, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let (fields, message) = match rest.split_once(" message=") {
            Some((f, m)) => (f, Some(m)),
            None => (rest, None),
        };
        let f: BTreeMap<&str, &str> = fields
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let text = |k: &str| f.get(k).map_or_else(String::new, |v| (*v).to_string());
        let model_index = f
            .get(if kind == "model" { "index" } else { "model" })
            .and_then(|v| v.parse::<usize>().ok());
        match kind {
            "board" => {
                report.board = text("name");
                report.unit = text("unit");
            }
            "model" => {
                if let Some(m) = model(&mut report, model_index) {
                    m.name = text("name");
                    m.precision = text("precision");
                    m.arena = num("arena");
                }
            }
            "op" => {
                if let Some(m) = model(&mut report, model_index) {
                    m.ops.push(OpReport {
                        index: num("index") as u16,
                        kind: text("kind"),
                        macs: num("macs"),
                        count: num("count"),
                    });
                }
            }
            "mismatch" => {
                let int = |k: &str| f.get(k).and_then(|v| v.parse::<i8>().ok()).unwrap_or(0);
                let entry = (
                    num("sample") as u32,
                    num("position") as usize,
                    int("got"),
                    int("expected"),
                );
                if let Some(m) = model(&mut report, model_index) {
                    m.mismatches.push(entry);
                }
            }
            "failed" => {
                let what = format!("{}: {}", text("kind"), message.unwrap_or(""));
                if let Some(m) = model(&mut report, model_index) {
                    m.failure = Some(what);
                }
            }
            "result" => {
                let r = ResultLine {
                    samples: num("samples") as u32,
                    top1: num("top1") as u32,
                    top5: num("top5") as u32,
                    host_top1: num("host_top1") as u32,
                    host_top5: num("host_top5") as u32,
                    disagreements: num("disagreements") as u32,
                    total: num("total"),
                    per_inference: num("per_inference"),
                    macs: num("macs"),
                };
                if let Some(m) = model(&mut report, model_index) {
                    m.result = Some(r);
                }
            }
            "done" => report.status = Some(text("status")),
            _ => {}
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::{Event, Failure, Outcome, Summary, Unit};

    #[test]
    fn reads_back_what_the_firmware_prints() {
        let summary = Summary {
            model: 1,
            samples: 200,
            top1: 150,
            top5: 190,
            host_top1: 150,
            host_top5: 190,
            disagreements: 0,
            total: 2_000_000,
            macs: 5000,
        };
        let events = [
            Event::Board {
                name: "microbit",
                unit: Unit::Instructions,
                models: 2,
            },
            Event::Failed {
                model: 0,
                sample: None,
                failure: Failure::EmptySuite,
            },
            Event::Model {
                index: 1,
                name: "hil-w4a4-8px",
                precision: "w4a4",
                ops: 11,
                macs: 5000,
                arena: 900,
                blob: 4000,
                samples: 200,
            },
            Event::Op {
                model: 1,
                index: 0,
                kind: edge_runtime::OpKind::Conv2d,
                macs: 4000,
                count: 7000,
            },
            Event::Mismatch {
                model: 1,
                sample: 3,
                position: 7,
                got: -5,
                expected: 4,
            },
            Event::Summary {
                summary,
                unit: Unit::Instructions,
            },
            Event::Done {
                outcome: Outcome::Error,
            },
        ];
        let text: String = events.iter().map(|e| format!("noise\n{e}\n")).collect();
        let report = parse(&text);
        assert_eq!(
            (report.board.as_str(), report.unit.as_str()),
            ("microbit", "instructions")
        );
        assert_eq!(report.status.as_deref(), Some("error"));
        assert_eq!(report.models.len(), 2);
        assert!(
            report.models[0]
                .failure
                .as_deref()
                .unwrap()
                .starts_with("empty_suite: no model is embedded")
        );
        let m = &report.models[1];
        assert_eq!(
            (m.name.as_str(), m.precision.as_str(), m.arena),
            ("hil-w4a4-8px", "w4a4", 900)
        );
        assert_eq!(m.ops[0].kind, "conv2d");
        assert_eq!(m.mismatches, [(3, 7, -5, 4)]);
        let r = m.result.unwrap();
        assert_eq!(
            (r.samples, r.top1, r.top5, r.per_inference, r.macs),
            (200, 150, 190, 10_000, 5000)
        );
        assert!((r.macs_per_unit() - 0.5).abs() < 1e-9);
    }
}

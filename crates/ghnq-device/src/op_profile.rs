//! The device's per-op profile (the firmware counts every op of a model's first sample) summed
//! by op class: regular, pointwise and depthwise convolutions apart, since each has its own
//! kernel and its own instructions-per-MAC target, then the other op kinds.

use firmware::host::OpReport;
use serde::Serialize;
use shared_format::Model;
use shared_format::op::Op;

/// One class of a model's ops.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpClassProfile {
    /// `conv` (kernel larger than 1×1), `pointwise` (1×1 conv), `depthwise`, or the op kind
    /// of the others (`linear`, `add`, `avg_pool`, ...).
    pub class: String,
    /// Ops of this class.
    pub ops: usize,
    /// Their MACs in one inference.
    pub macs: u64,
    /// Their count (the board's unit: instructions or cycles) in the profiled inference.
    pub count: u64,
    /// `count / macs`; `None` for ops without MACs.
    pub per_mac: Option<f64>,
}

/// Classes first in this order; the rest after them, by name.
const ORDER: [&str; 3] = ["conv", "pointwise", "depthwise"];

/// The class of every op of `model`, by op index (`None` past an op that does not decode).
pub fn op_classes(model: &Model<'_>) -> Vec<Option<&'static str>> {
    model
        .ops()
        .map(|op| {
            op.ok().map(|op| match op {
                Op::Conv2d(c) if c.window.kernel_h == 1 && c.window.kernel_w == 1 => "pointwise",
                Op::Conv2d(_) => "conv",
                Op::DepthwiseConv2d(_) => "depthwise",
                Op::MaxPool(_) => "max_pool",
                Op::AvgPool(_) => "avg_pool",
                Op::GlobalAvgPool(_) => "global_avg_pool",
                Op::Add(_) => "add",
                Op::Concat(_) => "concat",
                Op::Linear(_) => "linear",
                Op::Softmax(_) => "softmax",
                Op::Mean(_) => "mean",
                Op::Mul(_) => "mul",
                Op::Logistic(_) => "logistic",
                Op::HardSwish(_) => "hard_swish",
                Op::Table(_) => "table",
            })
        })
        .collect()
}

/// Sums the device's op reports by class (`classes` from [`op_classes`] of the same blob); an
/// op the blob does not have is counted under the kind the firmware reported.
pub fn profile(classes: &[Option<&'static str>], ops: &[OpReport]) -> Vec<OpClassProfile> {
    let mut out: Vec<OpClassProfile> = Vec::new();
    for op in ops {
        let class = classes
            .get(usize::from(op.index))
            .copied()
            .flatten()
            .map_or_else(|| op.kind.clone(), str::to_string);
        let entry = match out.iter_mut().position(|p| p.class == class) {
            Some(i) => &mut out[i],
            None => {
                out.push(OpClassProfile {
                    class,
                    ops: 0,
                    macs: 0,
                    count: 0,
                    per_mac: None,
                });
                out.last_mut().expect("just pushed")
            }
        };
        entry.ops += 1;
        entry.macs += op.macs;
        entry.count += op.count;
    }
    for p in &mut out {
        p.per_mac = (p.macs > 0).then(|| p.count as f64 / p.macs as f64);
    }
    let rank = |c: &str| ORDER.iter().position(|o| *o == c).unwrap_or(ORDER.len());
    out.sort_by(|a, b| {
        rank(&a.class)
            .cmp(&rank(&b.class))
            .then_with(|| a.class.cmp(&b.class))
    });
    out
}

/// One line: each class's count per MAC (or count) and its share of the profiled inference.
pub fn describe(profile: &[OpClassProfile]) -> String {
    let total: u64 = profile.iter().map(|p| p.count).sum();
    profile
        .iter()
        .map(|p| {
            let share = 100.0 * p.count as f64 / total.max(1) as f64;
            match p.per_mac {
                Some(r) => format!("{} {r:.2}/MAC ({} ops, {share:.0} %)", p.class, p.ops),
                None => format!("{} {} ({} ops, {share:.0} %)", p.class, p.count, p.ops),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(index: u16, kind: &str, macs: u64, count: u64) -> OpReport {
        OpReport {
            index,
            kind: kind.into(),
            macs,
            count,
        }
    }

    #[test]
    fn ops_are_summed_by_class_convolutions_first() {
        let classes = [
            Some("conv"),
            Some("add"),
            Some("pointwise"),
            Some("conv"),
            Some("depthwise"),
        ];
        let ops = [
            report(0, "conv2d", 100, 300),
            report(1, "add", 0, 50),
            report(2, "conv2d", 40, 40),
            report(3, "conv2d", 100, 100),
            report(4, "depthwise_conv2d", 10, 60),
            report(9, "softmax", 0, 7),
        ];
        let p = profile(&classes, &ops);
        let names: Vec<&str> = p.iter().map(|p| p.class.as_str()).collect();
        assert_eq!(names, ["conv", "pointwise", "depthwise", "add", "softmax"]);
        assert_eq!((p[0].ops, p[0].macs, p[0].count), (2, 200, 400));
        assert_eq!(p[0].per_mac, Some(2.0));
        assert_eq!(p[2].per_mac, Some(6.0));
        assert_eq!(p[3].per_mac, None);
        let line = describe(&p);
        assert!(line.starts_with("conv 2.00/MAC (2 ops, 72 %)"), "{line}");
        assert!(line.contains("add 50 (1 ops, 9 %)"), "{line}");
    }

    #[test]
    fn the_golden_blob_s_ops_get_their_classes() {
        let bytes = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/golden/v1.0/model.ghnq"),
        )
        .unwrap();
        let model = Model::from_bytes(&bytes).unwrap();
        let classes = op_classes(&model);
        assert_eq!(classes.len(), model.op_count() as usize);
        assert!(classes.iter().all(Option::is_some));
        assert!(classes.contains(&Some("depthwise")), "{classes:?}");
        assert!(
            classes.contains(&Some("conv")) || classes.contains(&Some("pointwise")),
            "{classes:?}"
        );
    }
}

//! Shape inference of one node: its output shape from its inputs', checking channels, input
//! counts and geometry on the way, so every later consumer can trust the shapes.

use super::{ArchError, ImageShape, MAX_CHANNELS, Node, Op, Shape};

pub(super) fn node_shape(
    i: usize,
    node: &Node,
    shapes: &[Shape],
    input: ImageShape,
) -> Result<Shape, ArchError> {
    let name = || node.name.clone();
    let op = node.op.type_name();
    // Input placement and index sanity first: everything else indexes `shapes`.
    if i == 0 {
        if node.op != Op::Input {
            return Err(ArchError::MisplacedInput {
                node: 0,
                name: name(),
                problem: format!("node 0 is `{op}`"),
            });
        }
    } else if node.op == Op::Input {
        return Err(ArchError::MisplacedInput {
            node: i,
            name: name(),
            problem: "a second `input` node".into(),
        });
    }
    if let Some(&bad) = node.inputs.iter().find(|&&j| j >= i) {
        return Err(ArchError::BadInputIndex {
            node: i,
            name: name(),
            input: bad,
        });
    }
    let n_in = node.inputs.len();
    let (ok, expected) = match node.op {
        Op::Input => (n_in == 0, "0"),
        Op::Add | Op::Concat => (n_in >= 2, ">= 2"),
        _ => (n_in == 1, "exactly 1"),
    };
    if !ok {
        return Err(ArchError::WrongInputCount {
            node: i,
            name: name(),
            op,
            expected,
            got: n_in,
        });
    }
    if matches!(node.op, Op::Add | Op::Concat) {
        for (k, &a) in node.inputs.iter().enumerate() {
            if node.inputs[..k].contains(&a) {
                return Err(ArchError::DuplicateInput {
                    node: i,
                    name: name(),
                    op,
                    input: a,
                });
            }
        }
    }
    let geometry = |detail: String| ArchError::UnsupportedGeometry {
        node: i,
        name: name(),
        detail,
    };
    let invalid = |detail: String| ArchError::InvalidValue {
        node: i,
        name: name(),
        detail,
    };
    let channels = |expected: usize, got: usize| -> Result<(), ArchError> {
        if expected == got {
            Ok(())
        } else {
            Err(ArchError::ChannelMismatch {
                node: i,
                name: name(),
                expected,
                got,
            })
        }
    };
    let spatial = |h: isize, w: isize| -> Result<(usize, usize), ArchError> {
        if h < 1 || w < 1 {
            Err(ArchError::ShapeCollapse {
                node: i,
                name: name(),
                h,
                w,
            })
        } else {
            Ok((h as usize, w as usize))
        }
    };
    let x = node.inputs.first().map(|&j| shapes[j]);
    let [h, w, c] = x.unwrap_or([input.h, input.w, input.c]);
    match node.op {
        Op::Input => Ok([input.h, input.w, input.c]),
        Op::Conv {
            kernel,
            stride,
            dilation,
            padding,
            groups,
            cin,
            cout,
            ..
        } => {
            if !(1..=7).contains(&kernel) || kernel % 2 == 0 {
                return Err(ArchError::UnsupportedKernel {
                    node: i,
                    name: name(),
                    kernel,
                });
            }
            if !(1..=2).contains(&stride) {
                return Err(geometry(format!("stride {stride} (1 or 2 supported)")));
            }
            if !(1..=2).contains(&dilation) {
                return Err(geometry(format!("dilation {dilation} (1 or 2 supported)")));
            }
            let same = dilation * (kernel - 1) / 2;
            if padding > same {
                return Err(geometry(format!(
                    "padding {padding} exceeds 'same' padding {same} for kernel {kernel}, dilation {dilation}"
                )));
            }
            if cin == 0 || cout == 0 || cin > MAX_CHANNELS || cout > MAX_CHANNELS {
                return Err(invalid(format!(
                    "channels (cin {cin}, cout {cout}) must be in 1..={MAX_CHANNELS}"
                )));
            }
            if groups == 0 || cin % groups != 0 || cout % groups != 0 {
                return Err(geometry(format!(
                    "groups {groups} must divide cin {cin} and cout {cout}"
                )));
            }
            channels(cin, c)?;
            let span = (dilation * (kernel - 1) + 1) as isize;
            let out = |x: usize| {
                (x as isize + 2 * padding as isize - span).div_euclid(stride as isize) + 1
            };
            let (ho, wo) = spatial(out(h), out(w))?;
            Ok([ho, wo, cout])
        }
        Op::BatchNorm { channels: ch } => {
            channels(ch, c)?;
            Ok([h, w, c])
        }
        Op::Relu { .. } => Ok([h, w, c]),
        Op::Dropout { p } => {
            if !(0.0..1.0).contains(&p) {
                return Err(invalid(format!("dropout p = {p} is outside [0, 1)")));
            }
            Ok([h, w, c])
        }
        Op::MaxPool {
            kernel,
            stride,
            padding,
        }
        | Op::AvgPool {
            kernel,
            stride,
            padding,
        } => {
            if !(1..=7).contains(&kernel) {
                return Err(geometry(format!("pool window {kernel} (1..=7 supported)")));
            }
            if stride == 0 || stride > kernel {
                return Err(geometry(format!(
                    "pool stride {stride} (1..={kernel} supported)"
                )));
            }
            if padding > kernel / 2 {
                return Err(geometry(format!(
                    "pool padding {padding} exceeds half the window {kernel}"
                )));
            }
            let out = |x: usize| {
                (x as isize + 2 * padding as isize - kernel as isize).div_euclid(stride as isize)
                    + 1
            };
            let (ho, wo) = spatial(out(h), out(w))?;
            Ok([ho, wo, c])
        }
        Op::GlobalAvgPool => Ok([1, 1, c]),
        Op::Add => {
            for &j in &node.inputs[1..] {
                if shapes[j] != [h, w, c] {
                    return Err(ArchError::ShapeMismatch {
                        node: i,
                        name: name(),
                        detail: format!(
                            "input {} is {:?} but input {} is {:?}",
                            node.inputs[0],
                            [h, w, c],
                            j,
                            shapes[j]
                        ),
                    });
                }
            }
            Ok([h, w, c])
        }
        Op::Concat => {
            let mut total = 0usize;
            for &j in &node.inputs {
                let [hj, wj, cj] = shapes[j];
                if (hj, wj) != (h, w) {
                    return Err(ArchError::ShapeMismatch {
                        node: i,
                        name: name(),
                        detail: format!(
                            "input {} is {h}x{w} but input {j} is {hj}x{wj}",
                            node.inputs[0]
                        ),
                    });
                }
                total = total.saturating_add(cj);
            }
            Ok([h, w, total])
        }
        Op::Linear { cin, cout, .. } => {
            if cout == 0 || cout > MAX_CHANNELS {
                return Err(invalid(format!(
                    "linear outputs {cout} must be in 1..={MAX_CHANNELS}"
                )));
            }
            channels(cin, h.saturating_mul(w).saturating_mul(c))?;
            Ok([1, 1, cout])
        }
    }
}

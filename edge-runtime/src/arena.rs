//! Slicing the caller's arena: the activations and scratch split off with checked arithmetic,
//! a tensor's bytes located from its planned offset, the model input written into its place,
//! and one op's output split mutably from the inputs it reads.
//!
//! Kept apart from the interpreter so that the borrow-splitting every op relies on (and the
//! plan's guarantee it rests on, that an output never straddles a live input) is one small,
//! separately readable piece of code.

use core::ops::Range;

use shared_format::{FormatError, Model, TensorProblem, TensorRecord};

use crate::error::Error;

/// `split_at_mut` that returns `None` instead of panicking past the end.
pub(crate) fn split_at_checked(s: &mut [i8], mid: usize) -> Option<(&mut [i8], &mut [i8])> {
    if mid <= s.len() {
        Some(s.split_at_mut(mid))
    } else {
        None
    }
}

/// The tensor's bytes in the arena, with checked arithmetic (validation already proved it lies
/// inside the activations).
pub(crate) fn range_of(t: &TensorRecord) -> Option<Range<usize>> {
    let start = usize::try_from(t.offset).ok()?;
    let len = usize::try_from(t.bytes()).ok()?;
    Some(start..start.checked_add(len)?)
}

/// Checks the input's length and range, then copies it into its planned place.
pub(crate) fn write_input(
    model: &Model<'_>,
    activations: &mut [i8],
    input: &[i8],
) -> Result<(), Error> {
    let id = model.input().tensor;
    // Validation proved the input tensor exists and lies inside the activations.
    let missing = Error::Format(FormatError::Tensor {
        tensor: id,
        problem: TensorProblem::Missing,
    });
    let t = model.tensors().get(id).ok_or(missing)?;
    let range = range_of(&t).ok_or(missing)?;
    if input.len() != range.len() {
        return Err(Error::InputLength {
            expected: range.len(),
            found: input.len(),
        });
    }
    let (lo, hi) = (t.qmin(), t.qmax());
    if let Some((index, &value)) = input.iter().enumerate().find(|&(_, v)| *v < lo || *v > hi) {
        return Err(Error::InputRange {
            index,
            value,
            bits: t.bits,
        });
    }
    activations
        .get_mut(range)
        .ok_or(missing)?
        .copy_from_slice(input);
    Ok(())
}

/// The activations split around one op's output: the output mutably, everything else shared.
///
/// The memory plan guarantees that an op's output never overlaps a tensor live during that op
/// other than an input it writes over in place (which `execute` hands to the in-place paths),
/// so every other input lies wholly before or wholly after the output; [`Inputs::get`] refuses
/// any range that straddles it.
pub(crate) struct Inputs<'s> {
    before: &'s [i8],
    after: &'s [i8],
    after_start: usize,
}

impl<'s> Inputs<'s> {
    pub(crate) fn get(&self, r: Range<usize>) -> Option<&'s [i8]> {
        if r.end <= self.before.len() {
            self.before.get(r)
        } else if r.start >= self.after_start {
            self.after
                .get(r.start - self.after_start..r.end - self.after_start)
        } else {
            None
        }
    }
}

pub(crate) fn split_output(
    activations: &mut [i8],
    out: Range<usize>,
) -> Option<(Inputs<'_>, &mut [i8])> {
    let (before, rest) = split_at_checked(activations, out.start)?;
    let (output, after) = split_at_checked(rest, out.len())?;
    Some((
        Inputs {
            before,
            after,
            after_start: out.end,
        },
        output,
    ))
}

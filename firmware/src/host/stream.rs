//! The host's side of streaming ([`crate::protocol`]): send every sample of a bundle to a board
//! that holds only the model, compare the logits it returns with the bundle's, and count top-1,
//! top-5 and disagreements exactly as the embedded mode does on the device.

use std::io::{Read, Write};

use shared_format::TestVectors;
use shared_format::vectors::rank_of;

use super::parse::ResultLine;
use crate::protocol::{Request, Response};

/// What the board said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardHello {
    /// Board name.
    pub board: String,
    /// Counter unit.
    pub unit: String,
    /// Model metadata name.
    pub name: String,
    /// Precision label.
    pub precision: String,
    /// Arena bytes.
    pub arena: u32,
}

/// A streamed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamReport {
    /// The board's description.
    pub hello: BoardHello,
    /// Tallies, as in the embedded mode's `GHNQ result` line.
    pub result: ResultLine,
    /// First mismatching logits: (sample, position, device, host).
    pub mismatches: Vec<(u32, usize, i8, i8)>,
}

/// Why streaming failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The connection failed.
    #[error("serial link: {0}")]
    Io(#[from] std::io::Error),
    /// The board answered something unexpected.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The board refused (bad blob, arena too small, runtime error).
    #[error("the board reported {kind} for sample {index}: {message}")]
    Board {
        /// Sample index.
        index: u32,
        /// Kind.
        kind: String,
        /// Reason.
        message: String,
    },
}

/// Splits a byte stream into zero-terminated frames.
struct Frames<'s, S> {
    io: &'s mut S,
    pending: Vec<u8>,
}

impl<S: Read + Write> Frames<'_, S> {
    fn send(&mut self, request: &Request<'_>) -> Result<(), StreamError> {
        let frame =
            postcard::to_stdvec_cobs(request).map_err(|e| StreamError::Protocol(e.to_string()))?;
        self.io.write_all(&frame)?;
        self.io.flush()?;
        Ok(())
    }

    /// The next frame, terminator included.
    fn next(&mut self) -> Result<Vec<u8>, StreamError> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == 0) {
                let frame: Vec<u8> = self.pending.drain(..=end).collect();
                return Ok(frame);
            }
            let mut chunk = [0u8; 4096];
            let n = self.io.read(&mut chunk)?;
            if n == 0 {
                return Err(StreamError::Protocol("the board closed the link".into()));
            }
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }
}

fn failed(index: u32, kind: &str, message: &str) -> StreamError {
    StreamError::Board {
        index,
        kind: kind.into(),
        message: message.into(),
    }
}

/// Streams every sample of `vectors` to the board on `io` and tallies its answers; sends
/// [`Request::Bye`] at the end.
pub fn validate_stream<S: Read + Write>(
    io: &mut S,
    vectors: &TestVectors<'_>,
) -> Result<StreamReport, StreamError> {
    let mut frames = Frames {
        io,
        pending: Vec::new(),
    };
    frames.send(&Request::Hello)?;
    let mut frame = frames.next()?;
    let hello = match postcard::from_bytes_cobs::<Response<'_>>(&mut frame) {
        Ok(Response::Hello(h)) => h,
        Ok(Response::Failed {
            index,
            kind,
            message,
        }) => return Err(failed(index, kind, message)),
        other => {
            return Err(StreamError::Protocol(format!(
                "expected Hello, got {other:?}"
            )));
        }
    };
    if hello.model_crc != vectors.model_crc() {
        return Err(StreamError::Protocol(format!(
            "the board runs the model with CRC {:#010x} but the vectors were made for {:#010x}",
            hello.model_crc,
            vectors.model_crc()
        )));
    }
    if hello.input_len as usize != vectors.input_len()
        || hello.output_len as usize != vectors.output_len()
    {
        return Err(StreamError::Protocol(
            "the board's model and the vectors disagree on lengths".into(),
        ));
    }
    let board = BoardHello {
        board: hello.board.into(),
        unit: hello.unit.into(),
        name: hello.name.into(),
        precision: hello.precision.into(),
        arena: hello.arena,
    };
    let mut result = ResultLine {
        macs: hello.macs,
        ..ResultLine::default()
    };
    let mut mismatches = Vec::new();
    for (index, sample) in (0u32..).zip(vectors.iter()) {
        let input: &[u8] = bytemuck::cast_slice(sample.input);
        frames.send(&Request::Sample { index, input })?;
        let mut frame = frames.next()?;
        let (count, logits) = match postcard::from_bytes_cobs::<Response<'_>>(&mut frame) {
            Ok(Response::Logits {
                index: i,
                count,
                logits,
            }) if i == index => (count, logits.to_vec()),
            Ok(Response::Failed {
                index,
                kind,
                message,
            }) => return Err(failed(index, kind, message)),
            other => {
                return Err(StreamError::Protocol(format!(
                    "expected logits of sample {index}, got {other:?}"
                )));
            }
        };
        let logits: &[i8] = bytemuck::cast_slice(&logits);
        let label = usize::from(sample.label);
        let (rank, host_rank) = (rank_of(logits, label), rank_of(sample.expected, label));
        result.samples += 1;
        result.total += count;
        result.top1 += u32::from(rank < 1);
        result.top5 += u32::from(rank < 5);
        result.host_top1 += u32::from(host_rank < 1);
        result.host_top5 += u32::from(host_rank < 5);
        if logits != sample.expected {
            result.disagreements += 1;
            if let Some(p) = logits.iter().zip(sample.expected).position(|(a, b)| a != b) {
                mismatches.push((index, p, logits[p], sample.expected[p]));
            }
        }
    }
    result.per_inference = result
        .total
        .checked_div(u64::from(result.samples))
        .unwrap_or(0);
    frames.send(&Request::Bye)?;
    Ok(StreamReport {
        hello: board,
        result,
        mismatches,
    })
}

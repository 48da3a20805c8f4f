//! Streaming over a UART: the frames a host and a board exchange when the samples do not fit
//! the board's flash. The board holds the model; the host sends one input at a time and gets the
//! logits and the instruction (or cycle) count back, and does the comparing and counting itself
//! with [`shared_format::vectors::rank_of`], exactly as in the embedded mode.
//!
//! Every frame is a postcard-encoded [`Request`] or [`Response`], COBS-encoded and terminated by
//! a zero byte (postcard's `to_slice_cobs` / `from_bytes_cobs`), so a receiver resynchronises at
//! the next zero after any garbage. The exchange is strictly request/response:
//!
//! ```text
//! host                                  board
//! Hello                          ──►
//!                                ◄──   Hello { model CRC, lengths, MACs, … }
//! Sample { index, input }        ──►
//!                                ◄──   Logits { index, count, logits }   (or Failed)
//! …
//! Bye                            ──►   (the board stops; under QEMU it exits)
//! ```

use serde::{Deserialize, Serialize};

/// Host to board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request<'a> {
    /// Asks for the model description.
    Hello,
    /// Runs one inference.
    Sample {
        /// Sample index, echoed back.
        index: u32,
        /// Quantized input (i8 values as bytes, HWC).
        #[serde(borrow)]
        input: &'a [u8],
    },
    /// Ends the session.
    Bye,
}

/// What the board runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello<'a> {
    /// Board name.
    pub board: &'a str,
    /// `instructions`, `cycles` or `nanoseconds`.
    pub unit: &'a str,
    /// Header CRC of the model blob (a bundle names the CRC of its model).
    pub model_crc: u32,
    /// Metadata name.
    pub name: &'a str,
    /// Precision label.
    pub precision: &'a str,
    /// Input values per sample.
    pub input_len: u32,
    /// Logits per sample.
    pub output_len: u32,
    /// MACs of one inference.
    pub macs: u64,
    /// Arena bytes the model needs.
    pub arena: u32,
    /// Longest frame the board accepts, in bytes (COBS and terminator included).
    pub max_frame: u32,
}

/// Board to host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response<'a> {
    /// The model description.
    #[serde(borrow)]
    Hello(Hello<'a>),
    /// The result of one inference.
    Logits {
        /// The request's index.
        index: u32,
        /// Instructions or cycles of this inference.
        count: u64,
        /// Logits (i8 values as bytes).
        #[serde(borrow)]
        logits: &'a [u8],
    },
    /// The request could not be served; `message` says why (a runtime error, a bad frame, a
    /// model that does not decode).
    Failed {
        /// The request's index (0 for a Hello or an undecodable frame).
        index: u32,
        /// Machine-readable kind (`format`, `runtime`, `arena`, `frame`).
        kind: &'a str,
        /// Human-readable reason.
        message: &'a str,
    },
}

/// COBS worst-case overhead: one byte per 254 plus the code byte and the terminator.
pub const fn max_encoded_len(payload: usize) -> usize {
    payload + payload / 254 + 2
}

/// Frame bytes needed for a [`Request::Sample`] of `input_len` values.
pub const fn sample_frame_len(input_len: usize) -> usize {
    // enum tag + index varint (≤ 5) + length varint (≤ 5) + the input.
    max_encoded_len(1 + 5 + 5 + input_len)
}

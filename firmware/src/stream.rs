//! The board's side of streaming ([`crate::protocol`]): serve inference requests over any
//! embedded-io UART until the host says [`Request::Bye`].

use core::fmt::Write as _;

use edge_runtime::{Error, Interpreter, Model};
use shared_format::stats::macs;

use crate::counter::Counter;
use crate::protocol::{Hello, Request, Response};
use crate::validate::Outcome;

/// Why serving stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    /// The UART failed.
    Io,
}

/// Serves `blob` over `uart` until [`Request::Bye`]. `rx` must hold the longest request
/// ([`crate::protocol::sample_frame_len`] of the input), `tx` the longest response. Returns
/// [`Outcome::Pass`] after a Bye (the host judges the logits), [`Outcome::Error`] if the model
/// could not be set up, or the UART error.
pub fn serve<C: Counter, U: embedded_io::Read + embedded_io::Write>(
    board: &str,
    blob: &[u8],
    arena: &mut [u8],
    counter: &mut C,
    uart: &mut U,
    rx: &mut [u8],
    tx: &mut [u8],
) -> Result<Outcome, StreamError> {
    let model = Model::from_bytes(blob).map_err(Error::Format);
    let mut interpreter = match &model {
        Ok(m) => Interpreter::new(m, arena),
        Err(e) => Err(*e),
    };
    let setup_failed = interpreter.is_err();
    loop {
        let Some(len) = read_frame(uart, rx)? else {
            let failed = Response::Failed {
                index: 0,
                kind: "frame",
                message: "frame longer than the board's receive buffer",
            };
            send(uart, tx, &failed)?;
            continue;
        };
        let request = match postcard::from_bytes_cobs::<Request<'_>>(&mut rx[..len]) {
            Ok(r) => r,
            Err(_) => {
                let failed = Response::Failed {
                    index: 0,
                    kind: "frame",
                    message: "undecodable frame",
                };
                send(uart, tx, &failed)?;
                continue;
            }
        };
        match request {
            Request::Bye => {
                return Ok(if setup_failed {
                    Outcome::Error
                } else {
                    Outcome::Pass
                });
            }
            Request::Hello => match (&model, &interpreter) {
                (Ok(m), Ok(_)) => {
                    let total_macs = m
                        .ops()
                        .filter_map(Result::ok)
                        .map(|op| macs(&op, m.tensors()))
                        .sum();
                    let meta = m.metadata();
                    let hello = Hello {
                        board,
                        unit: counter.unit().name(),
                        model_crc: m.header().crc32,
                        name: meta.name,
                        precision: meta.precision,
                        input_len: m.input_tensor().shape.elements() as u32,
                        output_len: m.output_tensor().shape.elements() as u32,
                        macs: total_macs,
                        arena: m.arena_bytes() as u32,
                        max_frame: rx.len() as u32,
                    };
                    send(uart, tx, &Response::Hello(hello))?;
                }
                (_, Err(e)) => send_error(uart, tx, 0, e)?,
                (Err(e), _) => send_error(uart, tx, 0, e)?,
            },
            Request::Sample { index, input } => match &mut interpreter {
                Ok(interpreter) => {
                    let before = counter.now();
                    let result = interpreter.run(shared_format::vectors::as_i8(input));
                    let after = counter.now();
                    match result {
                        Ok(logits) => {
                            let logits: &[u8] = bytemuck::cast_slice(logits);
                            let response = Response::Logits {
                                index,
                                count: after.wrapping_sub(before),
                                logits,
                            };
                            // `tx` and the logits are distinct buffers, so encode directly.
                            send(uart, tx, &response)?;
                        }
                        Err(e) => send_error(uart, tx, index, &e)?,
                    }
                }
                Err(e) => send_error(uart, tx, index, e)?,
            },
        }
    }
}

fn send_error<U: embedded_io::Write>(
    uart: &mut U,
    tx: &mut [u8],
    index: u32,
    e: &Error,
) -> Result<(), StreamError> {
    let kind = match e {
        Error::Format(_) => "format",
        Error::ArenaTooSmall { .. } => "arena",
        _ => "runtime",
    };
    let mut message = heapless::String::<200>::new();
    // A message longer than the buffer is cut, not an error.
    let _ = write!(message, "{e}");
    send(
        uart,
        tx,
        &Response::Failed {
            index,
            kind,
            message: &message,
        },
    )
}

fn send<U: embedded_io::Write>(
    uart: &mut U,
    tx: &mut [u8],
    response: &Response<'_>,
) -> Result<(), StreamError> {
    let frame = postcard::to_slice_cobs(response, tx).map_err(|_| StreamError::Io)?;
    uart.write_all(frame).map_err(|_| StreamError::Io)?;
    uart.flush().map_err(|_| StreamError::Io)
}

/// Reads bytes up to and including the next zero. `None` if the frame did not fit `rx` (the
/// rest of it is skipped, so the next frame starts clean).
fn read_frame<U: embedded_io::Read>(
    uart: &mut U,
    rx: &mut [u8],
) -> Result<Option<usize>, StreamError> {
    let mut len = 0;
    let mut overflow = false;
    loop {
        let mut byte = [0u8; 1];
        if uart.read(&mut byte).map_err(|_| StreamError::Io)? == 0 {
            continue;
        }
        if !overflow {
            match rx.get_mut(len) {
                Some(slot) => {
                    *slot = byte[0];
                    len += 1;
                }
                None => overflow = true,
            }
        }
        if byte[0] == 0 {
            return Ok(if overflow { None } else { Some(len) });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::vec::Vec;

    use shared_format::le::i32s_to_le;
    use shared_format::{
        Clamp, GlobalAvgPool, LeI32s, Linear, ModelBuilder, Op, Requant, Shape, TensorSpec,
        WeightScheme, Weights,
    };

    use super::*;
    use crate::counter::Unit;
    use crate::protocol::{max_encoded_len, sample_frame_len};

    /// A UART whose receive side is pre-loaded with the host's frames.
    struct Loopback {
        rx: VecDeque<u8>,
        tx: Vec<u8>,
    }

    impl embedded_io::ErrorType for Loopback {
        type Error = embedded_io::ErrorKind;
    }

    impl embedded_io::Read for Loopback {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            match self.rx.pop_front() {
                Some(b) => {
                    buf[0] = b;
                    Ok(1)
                }
                None => Err(embedded_io::ErrorKind::BrokenPipe),
            }
        }
    }

    impl embedded_io::Write for Loopback {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            self.tx.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    struct Steps(u64);

    impl Counter for Steps {
        fn unit(&self) -> Unit {
            Unit::Cycles
        }
        fn now(&mut self) -> u64 {
            self.0 += 7;
            self.0
        }
    }

    /// 1x1x4 input → global average pool → linear to 2 logits.
    fn blob() -> Vec<u8> {
        let spec = |c| TensorSpec {
            shape: Shape::new(1, 1, c),
            zero_point: 0,
            bits: 8,
        };
        let mut b = ModelBuilder::new(spec(4), 0.1);
        b.metadata("loop", "w8a8", "synthetic", 0, 0, 0);
        let clamp = Clamp {
            min: -128,
            max: 127,
        };
        let pooled = b.tensor(spec(4));
        b.push(&Op::GlobalAvgPool(GlobalAvgPool {
            input: 0,
            output: pooled,
            clamp,
        }))
        .unwrap();
        let out = b.tensor(spec(2));
        let weights: Vec<u8> = [1i8, 2, 3, 4, -1, -2, -3, -4]
            .iter()
            .map(|&v| v as u8)
            .collect();
        let (bias, mult) = (i32s_to_le(&[0, 0]), i32s_to_le(&[1 << 30]));
        b.push(&Op::Linear(Linear {
            input: pooled,
            output: out,
            weights: Weights {
                bits: 8,
                scheme: WeightScheme::PerTensorAffine,
                zero_point: 0,
                data: &weights,
            },
            bias: LeI32s::new(&bias),
            requant: Requant {
                multipliers: LeI32s::new(&mult),
                shifts: &[1u8],
            },
            clamp,
        }))
        .unwrap();
        b.finish(out, 0.1).unwrap()
    }

    fn frames(tx: &[u8]) -> Vec<Vec<u8>> {
        tx.split_inclusive(|&b| b == 0)
            .map(<[u8]>::to_vec)
            .collect()
    }

    #[test]
    fn serves_hello_samples_and_errors_until_bye() {
        let blob = blob();
        let mut rx = VecDeque::new();
        let requests = [
            Request::Hello,
            Request::Sample {
                index: 3,
                input: &[1, 2, 3, 4],
            },
            Request::Sample {
                index: 4,
                input: &[1, 2],
            },
        ];
        for r in &requests {
            rx.extend(postcard::to_stdvec_cobs(r).unwrap());
        }
        rx.extend([0x55, 0x55, 0x00]); // garbage frame
        rx.extend(postcard::to_stdvec_cobs(&Request::Bye).unwrap());
        let mut uart = Loopback { rx, tx: Vec::new() };
        let mut arena = [0u8; 64];
        let (mut rxb, mut txb) = ([0u8; sample_frame_len(4)], [0u8; max_encoded_len(320)]);
        let outcome = serve(
            "loop",
            &blob,
            &mut arena,
            &mut Steps(0),
            &mut uart,
            &mut rxb,
            &mut txb,
        );
        assert_eq!(outcome, Ok(Outcome::Pass));

        let mut replies = frames(&uart.tx);
        assert_eq!(replies.len(), 4);
        match postcard::from_bytes_cobs::<Response<'_>>(&mut replies[0]).unwrap() {
            Response::Hello(h) => {
                assert_eq!(
                    (h.board, h.unit, h.name, h.input_len, h.output_len, h.macs),
                    ("loop", "cycles", "loop", 4, 2, 8)
                );
            }
            other => panic!("{other:?}"),
        }
        match postcard::from_bytes_cobs::<Response<'_>>(&mut replies[1]).unwrap() {
            Response::Logits {
                index,
                count,
                logits,
            } => {
                assert_eq!((index, count, logits.len()), (3, 7, 2));
            }
            other => panic!("{other:?}"),
        }
        match postcard::from_bytes_cobs::<Response<'_>>(&mut replies[2]).unwrap() {
            Response::Failed {
                index,
                kind,
                message,
            } => {
                assert_eq!((index, kind), (4, "runtime"));
                assert!(message.starts_with("input has 2 values"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        match postcard::from_bytes_cobs::<Response<'_>>(&mut replies[3]).unwrap() {
            Response::Failed { kind, .. } => assert_eq!(kind, "frame"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_blob_is_reported_on_hello_and_ends_in_error() {
        let mut blob = blob();
        blob[0] ^= 0xff;
        let mut rx = VecDeque::new();
        rx.extend(postcard::to_stdvec_cobs(&Request::Hello).unwrap());
        rx.extend(postcard::to_stdvec_cobs(&Request::Bye).unwrap());
        let mut uart = Loopback { rx, tx: Vec::new() };
        let (mut rxb, mut txb) = ([0u8; 32], [0u8; max_encoded_len(320)]);
        let outcome = serve(
            "loop",
            &blob,
            &mut [0u8; 64],
            &mut Steps(0),
            &mut uart,
            &mut rxb,
            &mut txb,
        );
        assert_eq!(outcome, Ok(Outcome::Error));
        let mut replies = frames(&uart.tx);
        match postcard::from_bytes_cobs::<Response<'_>>(&mut replies[0]).unwrap() {
            Response::Failed { kind, .. } => assert_eq!(kind, "format"),
            other => panic!("{other:?}"),
        }
    }
}

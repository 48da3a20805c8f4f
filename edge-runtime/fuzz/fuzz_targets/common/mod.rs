//! The body both fuzz targets share: decode any bytes as a GHNQ blob; if they validate, run the
//! model on an input taken from the rest of the fuzz data. Nothing may panic: bad blobs are typed
//! errors, valid ones run.
//!
//! Data layout: `[blob_len: u16 LE][blob][input bytes...]`. Without the two-byte prefix, short
//! inputs are treated as a blob with no input (so plain blobs in the corpus still decode).

use edge_runtime::{Error, Interpreter, Model};

/// Largest arena the target allocates; larger (corrupted) plans only check "too small".
const ARENA_CAP: usize = 16 << 20;

/// Decodes `blob` and, when it validates, runs it on `rest`: a too-small arena must be refused,
/// raw input bytes must run or fail with a typed error, and a valid input must run.
pub fn decode_run(blob: &[u8], rest: &[u8]) {
    let Ok(model) = Model::from_bytes(blob) else {
        return;
    };
    let needed = model.arena_bytes();
    if needed > 0 {
        let mut small = vec![0u8; needed.min(ARENA_CAP) - 1];
        if !matches!(
            Interpreter::new(&model, &mut small),
            Err(Error::ArenaTooSmall { .. })
        ) {
            panic!("a too-small arena was accepted");
        }
    }
    if needed > ARENA_CAP {
        return;
    }
    let mut arena = vec![0u8; needed];
    let mut interpreter = Interpreter::new(&model, &mut arena).expect("arena of arena_bytes()");
    let t = model.input_tensor();
    let len = t.shape.elements() as usize;
    // The raw rest (often wrong length or out of range: must be a typed error) ...
    let raw: Vec<i8> = rest.iter().map(|&b| b as i8).collect();
    let _ = interpreter.run(&raw);
    // ... and a valid input built from it, which must run.
    let bits = t.bits as u32;
    let input: Vec<i8> = (0..len)
        .map(|i| {
            let b = rest.get(i).copied().unwrap_or(0) as i8;
            // Sign-extend the low `bits` bits: always inside the input's range.
            ((b as i32) << (32 - bits) >> (32 - bits)) as i8
        })
        .collect();
    let out = interpreter
        .run(&input)
        .expect("a validated model runs on a valid input");
    assert_eq!(out.len() as u64, model.output_tensor().shape.elements());
}

/// The blob and the input bytes of one fuzz input.
pub fn split(data: &[u8]) -> (&[u8], &[u8]) {
    if data.len() >= 2 {
        let n = u16::from_le_bytes([data[0], data[1]]) as usize;
        if n <= data.len() - 2 {
            return (&data[2..2 + n], &data[2 + n..]);
        }
    }
    (data, &[])
}

//! What the integration test files share: running the `ghnq` binary as a user would, and
//! running blobs on the edge runtime to compare their outputs with TFLM's. Each test binary
//! uses a subset, hence `dead_code` allowed.
#![allow(dead_code)]

use std::process::{Command, Output};

use shared_format::Model;

/// Runs `ghnq` with `args` (no backtraces: users see the error chain, and so do the tests).
pub fn ghnq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ghnq"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("ghnq starts")
}

/// Captured output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs every input (back to back, `input_len` each) through `blob` on the edge runtime.
pub fn run_blob(blob: &[u8], inputs: &[i8], input_len: usize) -> Vec<i8> {
    let model = Model::from_bytes(blob).expect("the blob decodes");
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut it = edge_runtime::Interpreter::new(&model, &mut arena).expect("arena");
    inputs
        .chunks(input_len)
        .flat_map(|x| it.run(x).expect("runtime").to_vec())
        .collect()
}

/// Differing bytes of two output streams, with the first difference described.
pub fn diff(a: &[i8], b: &[i8], output_len: usize) -> (usize, String) {
    assert_eq!(a.len(), b.len(), "output lengths");
    let mut first = String::new();
    let mut n = 0;
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            if first.is_empty() {
                first = format!(
                    "sample {} output {}: {x} vs {y}",
                    i / output_len,
                    i % output_len
                );
            }
            n += 1;
        }
    }
    (n, first)
}

//! Decode any bytes as a GHNQ blob and run what validates (see `common`). Mutations keep their
//! stale CRC, so this target proves the decoder's first line of defence; `decode_run_sealed`
//! reseals each blob to reach the validator and the kernels.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (blob, rest) = common::split(data);
    common::decode_run(blob, rest);
});

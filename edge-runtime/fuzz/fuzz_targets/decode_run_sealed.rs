//! `decode_run` with each blob resealed first: its payload length and CRC-32 rewritten to match
//! the mutated bytes, as a writer would. libFuzzer's mutations otherwise almost always fail the
//! CRC check (10^6 runs of the plain target reached 1,791 coverage edges, mostly there), so this
//! is the target that exercises the validator, the planner and every kernel.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

/// The blob header's CRC-32 (`shared_format::header`: ISO-HDLC over bytes 12..end).
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
/// Header length, the offset of the payload.
const HEADER_LEN: usize = 28;

fuzz_target!(|data: &[u8]| {
    let (blob, rest) = common::split(data);
    let mut blob = blob.to_vec();
    if blob.len() >= HEADER_LEN {
        let len = (blob.len() - HEADER_LEN) as u32;
        blob[16..20].copy_from_slice(&len.to_le_bytes());
        let crc = CRC32.checksum(&blob[12..]);
        blob[8..12].copy_from_slice(&crc.to_le_bytes());
    }
    common::decode_run(&blob, rest);
});

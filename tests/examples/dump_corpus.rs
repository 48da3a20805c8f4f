//! Writes generated valid models as seed inputs for the `decode_run` fuzz target.
//!
//! `cargo run -p tests --example dump_corpus -- edge-runtime/fuzz/corpus/decode_run 64`
//!
//! Each file is `[blob_len: u16 LE][blob][input]`, the layout `decode_run` expects.

use tests::generator::{GenConfig, generate};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .unwrap_or_else(|| "edge-runtime/fuzz/corpus/decode_run".into());
    let count: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(64);
    std::fs::create_dir_all(&dir).expect("create corpus directory");
    let mut written = 0;
    for seed in 0..count {
        let Ok(g) = generate(0xF022_0000 + seed, GenConfig::default()) else {
            continue;
        };
        let Ok(len) = u16::try_from(g.blob.len()) else {
            continue;
        };
        let mut data = len.to_le_bytes().to_vec();
        data.extend_from_slice(&g.blob);
        data.extend(g.input.iter().map(|&v| v as u8));
        std::fs::write(format!("{dir}/seed-{seed:03}"), data).expect("write seed");
        written += 1;
    }
    println!("wrote {written} seeds to {dir}");
}

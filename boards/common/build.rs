//! Embeds the validation suite named by `GHNQ_MODEL` and `GHNQ_VECTORS` (`:`-separated path
//! lists of equal length) and sizes the static arena for its largest model.
//!
//! The generated `suite.rs` holds `include_bytes!` of absolute paths, and this script asks cargo
//! to rerun when either variable or any named file changes, so a new model always rebuilds.
//! A blob that does not decode is still embedded (the device must report it, not the build);
//! `GHNQ_ARENA_BYTES` overrides the arena size (to exercise the arena-too-small path).

use std::env;
use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    // ARMv6-M (Cortex-M0/M0+) has no DWT cycle counter.
    println!("cargo::rustc-check-cfg=cfg(armv6m)");
    if env::var("TARGET").is_ok_and(|t| t.starts_with("thumbv6m")) {
        println!("cargo::rustc-cfg=armv6m");
    }
    for var in [
        "GHNQ_MODEL",
        "GHNQ_VECTORS",
        "GHNQ_ARENA_BYTES",
        "GHNQ_STREAM",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let list = |var| -> Vec<PathBuf> {
        env::var_os(var)
            .map(|v| {
                env::split_paths(&v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (models, vectors) = (list("GHNQ_MODEL"), list("GHNQ_VECTORS"));
    // Streaming: only the model is embedded; the samples come over the UART.
    let stream = env::var("GHNQ_STREAM").is_ok_and(|v| v == "1");
    if !stream && models.len() != vectors.len() {
        panic!(
            "GHNQ_MODEL names {} blobs but GHNQ_VECTORS {} bundles; give one bundle per blob",
            models.len(),
            vectors.len()
        );
    }
    if models.is_empty() {
        println!(
            "cargo:warning=GHNQ_MODEL is not set: the firmware embeds no model and will report an empty suite"
        );
    }

    let mut arena = 0usize;
    let (mut input_len, mut output_len) = (0usize, 0usize);
    let mut suite = String::from(
        "/// The embedded (model blob, test vectors) pairs, in order.\npub static SUITE: &[(&[u8], &[u8])] = &[\n",
    );
    for (i, model) in models.iter().enumerate() {
        let model = absolute(model);
        println!("cargo:rerun-if-changed={}", model.display());
        let vectors = match vectors.get(i) {
            Some(v) => {
                let v = absolute(v);
                println!("cargo:rerun-if-changed={}", v.display());
                format!("include_bytes!({v:?})")
            }
            None => "&[]".to_string(),
        };
        let blob = std::fs::read(&model)
            .unwrap_or_else(|e| panic!("GHNQ_MODEL: {}: {e}", model.display()));
        if let Ok(m) = shared_format::Model::from_bytes(&blob) {
            arena = arena.max(m.arena_bytes());
            input_len = input_len.max(m.input_tensor().shape.elements() as usize);
            output_len = output_len.max(m.output_tensor().shape.elements() as usize);
        }
        writeln!(suite, "    (include_bytes!({model:?}), {vectors}),").unwrap();
    }
    suite.push_str("];\n");
    if let Some(bytes) = env::var("GHNQ_ARENA_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        arena = bytes;
    }
    writeln!(suite, "/// Bytes of the static arena: the largest `arena_bytes()` of the suite.\npub const ARENA_BYTES: usize = {arena};").unwrap();
    // Streaming frames (COBS worst case: +1 per 254 bytes, +2): a Sample request carries the
    // input after a tag and two varints; a response is at most the logits or a 200-byte message
    // plus the Hello's names.
    let cobs = |n: usize| n + n / 254 + 2;
    writeln!(
        suite,
        "/// Streaming mode (`GHNQ_STREAM=1`): serve the first model over the UART.\npub const STREAM: bool = {stream};\n\
         /// Receive buffer for the longest request.\npub const STREAM_RX_BYTES: usize = {};\n\
         /// Transmit buffer for the longest response.\npub const STREAM_TX_BYTES: usize = {};",
        cobs(11 + input_len),
        cobs(320 + output_len)
    )
    .unwrap();
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("suite.rs");
    std::fs::write(out, suite).unwrap();
}

/// Relative paths are taken from the `boards/` workspace root: cargo runs build scripts from
/// the package folder and does not tell them where it was invoked.
fn absolute(path: &PathBuf) -> PathBuf {
    let boards = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("..");
    std::path::absolute(boards.join(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

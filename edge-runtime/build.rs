//! Sets `cfg(edge_dsp)` when the target is known to have the Armv7E-M DSP extension (SXTB16,
//! SMLAD), so `ops::simd::armv7em` can use it through `asm!`.
//!
//! `cfg(target_feature = "dsp")` cannot be used: ARM target features are unstable, and stable
//! rustc leaves them out of `cfg` (`rustc --print cfg --target thumbv7em-none-eabihf` lists none,
//! nor does it with `-C target-feature=+dsp`, so cargo's `CARGO_CFG_TARGET_FEATURE` lacks it too).
//! Hence:
//! * Armv7E-M (`thumbv7em-*`): every core (Cortex-M4, M7) has the extension, so the target name
//!   decides.
//! * Armv8-M Mainline (`thumbv8m.main-*`, Cortex-M33/M35P): the extension is optional, so the
//!   target name cannot decide. `edge_dsp` is set only when the build enables it explicitly with
//!   `-C target-feature=+dsp` (read from `CARGO_ENCODED_RUSTFLAGS`, which cargo fills from
//!   `RUSTFLAGS` or `CARGO_TARGET_<TRIPLE>_RUSTFLAGS`, the last `+dsp`/`-dsp` winning;
//!   `CARGO_CFG_TARGET_FEATURE` is checked too, for a rustc that does report it). The flag is
//!   also what lets LLVM assemble the `asm!` ("instruction requires: dsp" for thumbv8m.main
//!   without it), and it promises the chip has the extension: `firmware::host` passes it for the
//!   MPS2 AN505 (its Cortex-M33, and QEMU's, has DSP). A plain thumbv8m.main build keeps the
//!   portable path, which runs on any M33.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(edge_dsp)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=TARGET");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    println!("cargo::rerun-if-env-changed=CARGO_CFG_TARGET_FEATURE");
    let target = std::env::var("TARGET").unwrap_or_default();
    let dsp = if target.starts_with("thumbv7em-") {
        true
    } else if target.starts_with("thumbv8m.main-") {
        dsp_enabled(
            &std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default(),
            &std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default(),
        )
    } else {
        false
    };
    if dsp {
        println!("cargo::rustc-cfg=edge_dsp");
    }
}

/// Whether the DSP extension is enabled: by `cfg(target_feature = "dsp")` if rustc reports it,
/// else by the last `+dsp`/`-dsp` among the `-C target-feature=` flags (as rustc applies them).
fn dsp_enabled(encoded_rustflags: &str, cfg_target_feature: &str) -> bool {
    if cfg_target_feature.split(',').any(|f| f == "dsp") {
        return true;
    }
    let mut enabled = false;
    let mut flags = encoded_rustflags.split('\x1f').filter(|f| !f.is_empty());
    while let Some(flag) = flags.next() {
        let codegen = match flag {
            "-C" | "--codegen" => match flags.next() {
                Some(next) => next,
                None => break,
            },
            _ => match flag
                .strip_prefix("-C")
                .or_else(|| flag.strip_prefix("--codegen="))
            {
                Some(rest) => rest,
                None => continue,
            },
        };
        let Some(features) = codegen.strip_prefix("target-feature=") else {
            continue;
        };
        for feature in features.split(',') {
            match feature.trim() {
                "+dsp" => enabled = true,
                "-dsp" => enabled = false,
                _ => {}
            }
        }
    }
    enabled
}

//! Sets `cfg(edge_dsp)` when the target is known to have the Armv7E-M DSP extension (SXTB16,
//! SMLAD), so `ops::dsp` can use it through `asm!`.
//!
//! `cfg(target_feature = "dsp")` cannot be used: ARM target features are unstable, and stable
//! rustc leaves them out of `cfg` (`rustc --print cfg --target thumbv7em-none-eabihf` lists none).
//! Every Armv7E-M core (Cortex-M4, M7) has the extension, so the target name decides. The
//! Armv8-M Mainline target (M33) stays on the portable path: its DSP extension is optional.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(edge_dsp)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=TARGET");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em-") {
        println!("cargo::rustc-cfg=edge_dsp");
    }
}

//! `ghnq gpu-check` run on the CPU: the reference built into the binary must be the one this
//! code produces (same seed, same arithmetic), or a GPU compared with it would be judged
//! against a stale run. And `--device cuda` in a build without the feature says how to get one.

mod common;
use common::{ghnq, text};

#[test]
fn the_cpu_reproduces_the_built_in_reference() {
    let work = tempfile::tempdir().unwrap();
    let out = ghnq(&[
        "gpu-check",
        "--device",
        "cpu",
        "--steps",
        "20",
        "--qat-steps",
        "5",
        "--no-bench",
        "--work",
        work.path().to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for needle in [
        "PASS this CPU's untrained prediction",
        "PASS float gradient norm at step 0",
        "PASS float loss, steps 0..20",
        "PASS prediction after 20 float steps",
        "PASS GHN-QAT W4A4 gradient norm at step 0",
        "gpu-check: every check passed",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in\n{stdout}");
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_names_the_build_that_has_it() {
    let out = ghnq(&["gpu-check", "--device", "cuda"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--features cuda") && stderr.contains("cargo xtask build-cuda"),
        "{stderr}"
    );
}

//! `ghnq inspect` and `ghnq run` on the golden 1.0 blob, and their errors on files that are not
//! blobs, as a user would see them.

mod common;
use common::{ghnq, text};

use std::path::PathBuf;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden/v1.0")
        .join(name)
}

#[test]
fn inspect_prints_the_model() {
    let out = ghnq(&["inspect", golden("model.ghnq").to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for needle in [
        "format 1.0",
        "golden-v1.0",
        "conv2d",
        "depthwise_conv2d",
        "max_pool",
        "avg_pool",
        "concat",
        "add",
        "global_avg_pool",
        "linear",
        "per-tensor z=3",
        "arena",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in\n{stdout}");
    }
}

#[test]
fn inspect_json_is_machine_readable() {
    let out = ghnq(&["inspect", "--json", golden("model.ghnq").to_str().unwrap()]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json["ops"].as_array().unwrap().len(), 10);
    let macs: u64 = json["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["macs"].as_u64().unwrap())
        .sum();
    assert_eq!(json["macs"].as_u64().unwrap(), macs);
    assert!(json["arena_bytes"].as_u64().unwrap() >= json["activation_bytes"].as_u64().unwrap());
}

#[test]
fn run_reproduces_the_expected_logits() {
    let out = ghnq(&[
        "run",
        golden("model.ghnq").to_str().unwrap(),
        "--vectors",
        golden("vectors.ghnv").to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("samples 32") && stdout.contains("disagreements 0"),
        "{stdout}"
    );
}

#[test]
fn a_file_that_is_not_a_blob_is_a_clear_error() {
    let readme = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let out = ghnq(&["inspect", readme.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("is not a valid model blob") && stderr.contains("not a GHNQ model blob"),
        "{stderr}"
    );

    // A test-vector bundle passed where the model goes.
    let out = ghnq(&["inspect", golden("vectors.ghnv").to_str().unwrap()]);
    assert!(text(&out.stderr).contains("not a GHNQ model blob"));

    let out = ghnq(&["inspect", "/nonexistent/model.ghnq"]);
    assert!(text(&out.stderr).contains("cannot read /nonexistent/model.ghnq"));
}

//! `ghnq train` as a user runs it for GHN-QAT: a finetuning from a float GHN validates its
//! starting point as step 0 and every checkpoint after it, in float and on the integer runtime
//! at the run's bit-width, and a resumed run refuses a validation log of another kind.

mod common;
use common::{ghnq, text};

/// `ghnq train` on tiny nets and synthetic images, one net of 8 images a step, with `extra`.
fn train_tiny(extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        "--split",
        "tiny",
        "--dataset",
        "synthetic",
        "--meta-batch",
        "1",
        "--batch",
        "8",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    ghnq(&args)
}

/// A few steps of a small float GHN on synthetic images: the start a finetuning needs.
fn float_ghn(dir: &std::path::Path) -> String {
    let out = dir.join("float").to_str().unwrap().to_owned();
    let r = train_tiny(&["--hidden", "8", "--max-steps", "1", "--out", &out]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    out
}

/// `ghnq eval` of the GHN in `dir` at `bits` on one tiny net and 16 synthetic images.
fn eval_tiny(dir: &str, bits: &str) -> std::process::Output {
    ghnq(&[
        "eval",
        "--ghn",
        dir,
        "--dataset",
        "synthetic",
        "--split",
        "tiny",
        "--count",
        "1",
        "--images",
        "16",
        "--calib",
        "16",
        "--bits",
        bits,
    ])
}

#[test]
fn a_qat_finetuning_validates_its_start_and_its_bits() {
    let dir = tempfile::tempdir().unwrap();
    let from = float_ghn(dir.path());
    let out = dir.path().join("qat");
    let out_s = out.to_str().unwrap();
    let qat = |extra: &[&str]| {
        let mut args = vec![
            "--qat",
            "w4a4",
            "--weight-clip",
            "percentile",
            "--act-clip",
            "percentile",
            "--val-nets",
            "2",
            "--val-images",
            "16",
            "--val-every",
            "1",
            "--checkpoint-every",
            "1",
            "--out",
            out_s,
        ];
        args.extend_from_slice(extra);
        train_tiny(&args)
    };
    let r = qat(&["--from", &from, "--max-steps", "2"]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let csv = std::fs::read_to_string(out.join("val.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "step,top1_mean,top1_se,top1_max,top5_mean,top5_se,nets,images,val_seed,seconds,\
         bits,qtop1_mean,qtop1_se,qtop1_max",
        "{csv}"
    );
    assert_eq!(lines.len(), 4, "steps 0 (the float start), 1 and 2: {csv}");
    for (step, line) in lines[1..].iter().enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells[0], step.to_string(), "{csv}");
        assert_eq!(cells[6], "2", "nets: {csv}");
        assert_eq!(cells[7], "16", "images: {csv}");
        assert_eq!(cells[10], "w4a4", "{csv}");
        let q: f64 = cells[11].parse().unwrap();
        assert!((0.0..=100.0).contains(&q), "{csv}");
    }
    assert!(out.join("curve.png").exists() || text(&r.stderr).contains("no learning-curve plot"));

    // Its exports at W4A4 take the ranges it was trained under.
    let e = eval_tiny(out_s, "w4a4");
    assert!(e.status.success(), "{}", text(&e.stderr));
    assert!(
        text(&e.stderr).contains(
            "finetuned with GHN-QAT at w4a4 (weights Percentile(1.0), activations Percentile(1.0))"
        ),
        "{}",
        text(&e.stderr)
    );

    // A float run's log in the directory: resuming must not append rows of another shape.
    let float_log =
        "step,top1_mean,top1_se,top1_max,top5_mean,top5_se,nets,images,val_seed,seconds\n";
    std::fs::write(out.join("val.csv"), float_log).unwrap();
    let r = qat(&["--resume", "--max-steps", "3"]);
    assert!(!r.status.success());
    assert!(
        text(&r.stderr).contains("columns of another kind of run"),
        "{}",
        text(&r.stderr)
    );
}

/// A bit-conditioned finetuning takes its ranges per bit-width, as `ghnq eval` does: each turn
/// trains under its own, the run records them all, and the checkpoint's exports at each of its
/// bit-widths default to that bit-width's ranges. A clipping for a bit-width the run does not
/// train is refused, not ignored.
#[test]
fn a_bit_conditioned_finetuning_takes_its_ranges_per_bit_width() {
    let dir = tempfile::tempdir().unwrap();
    let from = float_ghn(dir.path());
    let out = dir.path().join("bitcond");
    let out_s = out.to_str().unwrap();
    let train = |qat: &str, clip: &str| {
        train_tiny(&[
            "--qat",
            qat,
            "--bit-conditioned",
            "--weight-clip",
            clip,
            "--act-clip",
            clip,
            "--val-nets",
            "0",
            "--max-steps",
            "2",
            "--from",
            &from,
            "--out",
            out_s,
        ])
    };
    let r = train("w8a8,w2a2", "w4a4=percentile");
    assert!(!r.status.success());
    assert!(
        text(&r.stderr).contains("--weight-clip names w4a4, which this run does not train"),
        "{}",
        text(&r.stderr)
    );

    let r = train("w8a8,w2a2", "w2a2=percentile:2");
    assert!(r.status.success(), "{}", text(&r.stderr));
    let record = std::fs::read_to_string(out.join("qat.txt")).unwrap();
    let lines: Vec<&str> = record.lines().collect();
    assert_eq!(lines.len(), 2, "{record}");
    assert!(
        lines[0].contains("weight_bits: 8")
            && lines[0].contains("weight_clip: Absolute, act_clip: Absolute"),
        "{record}"
    );
    assert!(
        lines[1].contains("weight_bits: 2")
            && lines[1].contains("weight_clip: Percentile(2.0), act_clip: Percentile(2.0)")
            && lines[1].contains("NoiseQuant"),
        "{record}"
    );

    let e = eval_tiny(out_s, "w8a8,w2a2");
    let err = text(&e.stderr);
    assert!(e.status.success(), "{err}");
    for line in [
        "finetuned with GHN-QAT at w8a8 (weights Absolute, activations Absolute)",
        "finetuned with GHN-QAT at w2a2 (weights Percentile(2.0), activations Percentile(2.0))",
    ] {
        assert!(err.contains(line), "{err}");
    }
}

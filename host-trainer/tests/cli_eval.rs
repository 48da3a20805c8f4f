//! `ghnq eval` in shards, `ghnq merge` and `ghnq compare`, as a user runs them: the merged
//! table is the table of the unsharded run, quantized rows come in sim/int pairs, overlapping
//! shards are refused, and sources compare on the nets they share.

mod common;
use common::{ghnq, text};

/// A table line with its columns one space apart: the checks read cells, not the padding.
fn words(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn sharded_eval_merges_into_the_whole_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let common = [
        "eval",
        "--init",
        "random",
        "--split",
        "tiny",
        "--count",
        "4",
        "--images",
        "32",
        "--dataset",
        "synthetic-gray",
        "--bits",
        "float,w8a8",
        "--calib",
        "32",
    ];
    let run = |extra: &[&str]| {
        let out = ghnq(&[&common[..], extra].concat());
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let whole = run(&["--csv", &path("all.csv")]);
    run(&["--shard", "1/2", "--csv", &path("a.csv")]);
    run(&["--shard", "2/2", "--csv", &path("b.csv")]);
    let merged = ghnq(&[
        "merge",
        &path("a.csv"),
        &path("b.csv"),
        "--markdown",
        &path("t.md"),
        "--plot",
        &path("acc"),
    ]);
    assert!(merged.status.success(), "{}", text(&merged.stderr));
    let merged = text(&merged.stdout);
    // Same nets, same initialisation seed, same numbers: the merged table is the whole one.
    let table = |s: &str| {
        s.lines()
            .skip_while(|l| !l.starts_with("split"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        table(&merged),
        table(&whole),
        "merged:\n{merged}\nwhole:\n{whole}"
    );
    for needle in ["tiny float float 4", "tiny w8a8 sim 4", "tiny w8a8 int 4"] {
        assert!(
            merged.lines().any(|l| words(l).starts_with(needle)),
            "missing {needle:?} in\n{merged}"
        );
    }
    assert!(
        std::fs::read(path("acc.png"))
            .unwrap()
            .starts_with(b"\x89PNG")
    );
    assert!(
        std::fs::read_to_string(path("acc.svg"))
            .unwrap()
            .contains("tiny")
    );
    let md = std::fs::read_to_string(path("t.md")).unwrap();
    assert_eq!(md.lines().count(), 5, "{md}");

    let overlap = ghnq(&["merge", &path("a.csv"), &path("all.csv")]);
    assert!(!overlap.status.success());
    assert!(
        text(&overlap.stderr).contains("overlapping shards"),
        "{}",
        text(&overlap.stderr)
    );

    // The shards joined under one label against the whole run under another: the same nets,
    // so the same numbers in both columns; against half the run only its 2 nets count.
    let compare = |args: &[&str]| {
        let out = ghnq(&[&["compare"][..], args].concat());
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let a = format!("shards={}", path("a.csv"));
    let b = format!("shards={}", path("b.csv"));
    let all = format!("whole={}", path("all.csv"));
    let both = compare(&[&a, &b, &all, "--plot", &path("bars")]);
    let float = both
        .lines()
        .find(|l| words(l).starts_with("tiny float"))
        .unwrap();
    let cells: Vec<&str> = float.split("  ").filter(|c| c.contains('±')).collect();
    assert_eq!(cells.len(), 2, "{both}");
    assert_eq!(cells[0].trim(), cells[1].trim(), "{both}");
    assert!(cells[0].ends_with("(4)"), "{both}");
    assert!(
        std::fs::read(path("bars.png"))
            .unwrap()
            .starts_with(b"\x89PNG")
    );
    let half = compare(&[&a, &all, "--per-net"]);
    assert!(half.contains("(2)") && !half.contains("(4)"), "{half}");
    // One aggregate line and one line per net of either source (4) at each setting.
    assert_eq!(
        half.lines()
            .filter(|l| words(l).contains("w8a8 int"))
            .count(),
        5,
        "{half}"
    );
    assert!(half.lines().any(|l| words(l).contains("- 9.4")), "{half}");
    let bad = ghnq(&["compare", &path("a.csv")]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("is not LABEL=CSV"),
        "{}",
        text(&bad.stderr)
    );
}

/// Nets evaluated in parallel give the serial run's table, row for row and digit for digit:
/// parameters are made in order on one thread (random initialisation's seeded draws), each net's
/// evaluation stands alone. Ten nets on two threads are two chunks of eight and two.
#[test]
fn nets_in_parallel_give_the_serial_table() {
    let dir = tempfile::tempdir().unwrap();
    let run = |threads: &str| {
        let path = dir.path().join(format!("threads-{threads}.csv"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ghnq"))
            .args([
                "eval",
                "--init",
                "random",
                "--split",
                "tiny",
                "--count",
                "10",
                "--images",
                "32",
                "--dataset",
                "synthetic-gray",
                "--bits",
                "float,w8a8",
                "--calib",
                "32",
                "--csv",
            ])
            .arg(&path)
            .env("RAYON_NUM_THREADS", threads)
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("ghnq starts");
        assert!(out.status.success(), "{}", text(&out.stderr));
        std::fs::read_to_string(path).unwrap()
    };
    let serial = run("1");
    // The header, then per net its float row and its W8A8 sim and int rows.
    assert_eq!(serial.lines().count(), 1 + 10 * 3, "{serial}");
    assert_eq!(run("2"), serial);
}

/// The SGD baseline trains each net (on the native engine here) and says how its loss went.
#[test]
fn the_sgd_baseline_trains_each_net() {
    let out = ghnq(&[
        "eval",
        "--init",
        "sgd",
        "--sgd-epochs",
        "0.01",
        "--split",
        "tiny",
        "--count",
        "2",
        "--images",
        "32",
        "--dataset",
        "synthetic-gray",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(
        err.matches(": SGD 10 steps, training loss").count(),
        2,
        "{err}"
    );
    assert!(text(&out.stdout).contains("parameters by SGD for 0.01 epoch(s)"));
}

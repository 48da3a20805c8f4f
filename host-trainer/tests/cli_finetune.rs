//! `ghnq finetune` as a user runs it: QAT of a net from random initialisation, the integer
//! runtime's top-1 and the training loss at every checkpoint, as a table, CSV and plot.

mod common;
use common::{ghnq, text};

use host_trainer::arch::ImageShape;
use host_trainer::ghn::sources::random_small_net;
use rand::SeedableRng;

#[test]
fn finetune_reports_top1_and_training_loss_per_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let net = random_small_net(&mut rng, ImageShape::FASHION_MNIST, 10, "cli-finetune");
    host_trainer::arch::text::write_net(&net, &dir.path().join("net.json")).unwrap();
    let out = ghnq(&[
        "finetune",
        "--arch",
        &path("net.json"),
        "--bits",
        "w8a8",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--sgd-batch",
        "8",
        "--calib",
        "16",
        "--images",
        "16",
        "--dataset",
        "synthetic-gray",
        "--csv",
        &path("curves.csv"),
        "--plot",
        &path("curves"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = std::fs::read_to_string(path("curves.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "step,random_top1,random_train_loss", "{csv}");
    assert_eq!(lines.len(), 4, "steps 0, 2 and 4: {csv}");
    // No training before step 0; afterwards a finite mean loss of the two steps before.
    assert!(
        lines[1].starts_with("0,") && lines[1].ends_with(",-"),
        "{csv}"
    );
    for line in &lines[2..] {
        let loss: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
        assert!(loss.is_finite() && loss > 0.0, "{csv}");
    }
    let stdout = text(&out.stdout);
    assert!(stdout.contains("train loss"), "{stdout}");
    assert!(
        std::fs::read(path("curves.png"))
            .unwrap()
            .starts_with(b"\x89PNG")
    );
}

//! `ghnq finetune` as a user runs it: QAT of a net from random initialisation, the integer
//! runtime's top-1 and the training loss at every checkpoint, as a table, CSV and plot, and with
//! `--deploy-gap` the simulation under batch and calibrated statistics.

mod common;
use common::{ghnq, text};

use ghnq_core::arch::ImageShape;
use ghnq_core::sources::random_small_net;
use rand::SeedableRng;

#[test]
fn finetune_reports_top1_and_training_loss_per_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let net = random_small_net(&mut rng, ImageShape::FASHION_MNIST, 10, "cli-finetune");
    ghnq_core::arch::text::write_net(&net, &dir.path().join("net.json")).unwrap();
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
        "--deploy-gap",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = std::fs::read_to_string(path("curves.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "step,random_top1,random_train_loss,random_sim_as_trained,random_sim_calibrated_bn,\
         random_sim_calibrated_ranges,random_sim_deployed",
        "{csv}"
    );
    assert_eq!(lines.len(), 4, "steps 0, 2 and 4: {csv}");
    for (k, line) in lines[1..].iter().enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), 7, "{csv}");
        assert_eq!(cells[0], (2 * k).to_string(), "{csv}");
        // No training before step 0; afterwards a finite mean loss of the two steps before.
        if k == 0 {
            assert_eq!(cells[2], "-", "{csv}");
        } else {
            let loss: f64 = cells[2].parse().unwrap();
            assert!(loss.is_finite() && loss > 0.0, "{csv}");
        }
        for top1 in [cells[1]].iter().chain(&cells[3..]) {
            let v: f64 = top1.parse().unwrap();
            assert!((0.0..=100.0).contains(&v), "{csv}");
        }
    }
    let stdout = text(&out.stdout);
    assert!(stdout.contains("train loss"), "{stdout}");
    assert!(stdout.contains("random deployed"), "{stdout}");
    for png in ["curves.png", "curves-deploy-gap.png"] {
        assert!(
            std::fs::read(path(png)).unwrap().starts_with(b"\x89PNG"),
            "{png}"
        );
    }
}

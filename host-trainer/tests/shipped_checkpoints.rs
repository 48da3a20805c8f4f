//! The GHN-QAT checkpoints the SDK ships (`checkpoints/<dataset>`, what `ghnq quickstart` uses
//! by default) load with this build, are the GHN-2 configuration, say how they were trained,
//! and predict a full, finite parameter set for an unseen net of their data set's shape.
//! A burn upgrade or a change of the checkpoint format that breaks them fails here, not in a
//! user's first command.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ghnq_core::arch::ImageShape;
use ghnq_core::sources;
use ghnq_ghn::{checkpoint, eval};

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .join("checkpoints")
}

/// The data sets the main job must have a checkpoint for, and their image shapes.
const DATASETS: [(&str, ImageShape); 2] = [
    ("fashion-mnist", ImageShape::FASHION_MNIST),
    ("cifar10", ImageShape::CIFAR10),
];

#[test]
fn every_shipped_checkpoint_loads_and_predicts_an_unseen_net() {
    let device = Device::flex();
    for (dataset, shape) in DATASETS {
        let dir = shipped().join(dataset);
        for file in ["PROVENANCE.md", "ghn.cfg", "latest", "qat.txt"] {
            assert!(
                dir.join(file).is_file(),
                "{}: missing {file}",
                dir.display()
            );
        }
        let (ghn, state) = checkpoint::load_ghn(&dir, None, &device)
            .unwrap_or_else(|e| panic!("{}: {e:#}", dir.display()));
        assert!(state.step > 0, "{dataset}: an untrained checkpoint");
        assert_eq!(ghn.param_count(), 1_620_764, "{dataset}: not GHN-2's size");
        let net = sources::eval_nets("test", shape, ghn.config.num_classes, 1, 0)
            .unwrap()
            .remove(0);
        let params = eval::predict_one(&ghn, &net, &device).unwrap();
        params.check_shapes(&net).unwrap();
        let tensors = params.named_tensors(&net);
        assert!(!tensors.is_empty());
        for (name, _, data) in tensors {
            let values = data.try_to_vec::<f32>().unwrap();
            assert!(
                values.iter().all(|v| v.is_finite()),
                "{dataset}: {name} has non-finite values"
            );
            assert!(
                !name.ends_with("weight") || values.iter().any(|v| *v != 0.0),
                "{dataset}: {name} is all zero"
            );
        }
    }
}

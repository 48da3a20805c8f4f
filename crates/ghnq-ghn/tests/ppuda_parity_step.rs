//! One training step of ghnq against ppuda's, on real data: the learning-curve parity
//! (tools/ppuda-golden/parity.py) found ppuda learning faster from the same start on the same
//! nets and images, so this compares the first step's loss and the gradient of every GHN weight,
//! with dropout off (the only draw the two trainers do not share). Needs the parity files
//! (`init.safetensors` and a `ghnq train --trace`), so it is ignored in CI:
//!
//! ```sh
//! PARITY_DIR=/tmp/parity cargo test --release -p ghnq-ghn --test ppuda_parity_step -- --ignored
//! /work/ppuda-venv/bin/python tools/ppuda-golden/parity.py grad-check --ppuda-dir /work/ppuda-src \
//!     --trace /tmp/parity/trace --init /tmp/parity/init.safetensors --out /tmp/parity/step0
//! ```

use std::path::PathBuf;

use burn::tensor::{Device, Tensor};
use ghnq_core::arch::{ImageShape, Net, Op};
use ghnq_core::cnn::{BnMode, forward_seeded};
use ghnq_core::train::{LabeledBatch, cross_entropy, to_tensors};
use ghnq_ghn::GhnGraph;
use ghnq_ghn::ppuda::{self, Slot};

#[test]
#[ignore = "needs the parity files of tools/ppuda-golden/parity.py (PARITY_DIR)"]
fn first_step_gradients_for_ppuda() {
    let dir = PathBuf::from(std::env::var("PARITY_DIR").unwrap_or("/tmp/parity".into()));
    let dev = Device::flex().autodiff();
    let init = std::fs::read(dir.join("init.safetensors")).unwrap();
    let cfg = ppuda::config_of(&init, 11, 50).unwrap();
    let ghn = ppuda::load(&init, &cfg, &dev).unwrap();
    let trace = dir.join("trace");
    let header: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(trace.join("trace.json")).unwrap()).unwrap();
    let mb = header["meta_batch"].as_u64().unwrap() as usize;
    let bs = header["batch"].as_u64().unwrap() as usize;
    let shape = ImageShape {
        h: header["image"]["h"].as_u64().unwrap() as usize,
        w: header["image"]["w"].as_u64().unwrap() as usize,
        c: header["image"]["c"].as_u64().unwrap() as usize,
    };
    let all_nets: Vec<Net> = std::fs::read_to_string(trace.join("nets.jsonl"))
        .unwrap()
        .lines()
        .take(2 * mb)
        .map(|l| {
            let mut net = Net::from_json(l).unwrap();
            for node in &mut net.nodes {
                if let Op::Dropout { p } = &mut node.op {
                    *p = 0.0;
                }
            }
            net
        })
        .collect();
    let nets = all_nets[..mb].to_vec();
    let per = bs * shape.c * shape.h * shape.w;
    let bytes = std::fs::read(trace.join("images.f32")).unwrap();
    let label_bytes = std::fs::read(trace.join("labels.u8")).unwrap();
    let batch_at = |k: usize| LabeledBatch {
        images: bytes[4 * k * per..4 * (k + 1) * per]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        labels: label_bytes[k * bs..(k + 1) * bs]
            .iter()
            .map(|&l| l as usize)
            .collect(),
    };
    let batch = batch_at(0);
    let graphs: Vec<GhnGraph> = nets
        .iter()
        .map(|n| GhnGraph::build(n, 50).unwrap())
        .collect();
    let params = ghn.predict(
        &nets.iter().collect::<Vec<_>>(),
        &graphs.iter().collect::<Vec<_>>(),
        &dev,
    );
    let (x, y) = to_tensors(&batch, shape, &dev);
    let mut losses = Vec::new();
    let mut total: Option<Tensor<1>> = None;
    for (net, p) in nets.iter().zip(&params) {
        let l = cross_entropy(
            forward_seeded(net, p, x.clone(), BnMode::Batch, true, None),
            y.clone(),
        );
        losses.push(l.clone().into_scalar::<f32>());
        total = Some(match total {
            Some(t) => t + l,
            None => l,
        });
    }
    let loss = total.unwrap() / mb as f32;
    eprintln!("per-net losses {losses:?}");
    let grads = loss.backward();
    let mut out: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let values = |t: Tensor<2>| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    for (name, slot) in ppuda::slots(&ghn).unwrap() {
        let (shape, got) = match slot {
            Slot::Same1(p) => (
                p.dims().to_vec(),
                p.val()
                    .grad(&grads)
                    .map(|g| g.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()),
            ),
            Slot::Same2(p) => (p.dims().to_vec(), p.val().grad(&grads).map(values)),
            Slot::Transposed(p) => {
                let [i, o] = p.dims();
                (
                    vec![o, i],
                    p.val().grad(&grads).map(|g| values(g.transpose())),
                )
            }
        };
        let n: usize = shape.iter().product();
        let got = got.unwrap_or_else(|| vec![0.0; n]);
        out.push((
            name,
            shape,
            got.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
    }
    out.push((
        "loss".into(),
        vec![mb],
        losses.iter().flat_map(|v| v.to_le_bytes()).collect(),
    ));
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = out
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    let path = dir.join("ghnq-step0-grads.safetensors");
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    eprintln!("wrote {}", path.display());

    // Two optimiser steps (trace steps 0 and 1, dropout off) through the trainer itself: the
    // weights after them, for the Adam comparison.
    let mut trainer = ghnq_ghn::train::MetaTrainer::new(
        ppuda::load(&init, &cfg, &dev).unwrap(),
        1e-5,
        dev.clone(),
    );
    for k in 0..2 {
        let r = trainer.step(&all_nets[k * mb..(k + 1) * mb], &batch_at(k), shape, 1e-3);
        eprintln!(
            "trainer step {k}: loss {} grad norm {}",
            r.loss, r.grad_norm
        );
    }
    let path = dir.join("ghnq-after-2-steps.safetensors");
    std::fs::write(&path, ppuda::save(&trainer.ghn).unwrap()).unwrap();
    eprintln!("wrote {}", path.display());
}

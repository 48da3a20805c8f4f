//! End-to-end checks of the GHN on tiny nets (kept small: the whole suite must run in minutes).

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};

use super::graph::GhnGraph;
use super::model::{Ghn, GhnConfig};
use super::train::MetaTrainer;
use ghnq_core::arch::{ImageShape, Net, NetBuilder, Op};
use ghnq_core::cnn::params::TensorRef;
use ghnq_core::train::{ArchSource, LabeledBatch};

const SHAPE: ImageShape = ImageShape { h: 8, w: 8, c: 3 };

fn tiny_a() -> Net {
    let mut b = NetBuilder::new("tiny-a", SHAPE, 10);
    let c = b.conv("c1", 0, 8, 3, 1).unwrap();
    let c = b.bn("bn1", c).unwrap();
    let r = b.relu("r1", c, false).unwrap();
    let d = b.dw_conv("dw", r, 5, 2, 1).unwrap();
    let p = b.conv("pw", d, 12, 1, 1).unwrap();
    let p = b.bn("bn2", p).unwrap();
    let g = b.push("gap", Op::GlobalAvgPool, vec![p]).unwrap();
    b.linear("fc", g, 10).unwrap();
    b.finish().unwrap()
}

fn tiny_b() -> Net {
    let mut b = NetBuilder::new("tiny-b", SHAPE, 10);
    let c = b
        .push(
            "c1",
            Op::Conv {
                kernel: 3,
                stride: 1,
                dilation: 1,
                padding: 1,
                groups: 1,
                cin: 3,
                cout: 70,
                bias: true,
            },
            vec![0],
        )
        .unwrap();
    let r = b.relu("r1", c, true).unwrap();
    let m = b
        .push(
            "mp",
            Op::MaxPool {
                kernel: 3,
                stride: 2,
                padding: 1,
            },
            vec![r],
        )
        .unwrap();
    let a = b
        .push(
            "ap",
            Op::AvgPool {
                kernel: 3,
                stride: 2,
                padding: 1,
            },
            vec![r],
        )
        .unwrap();
    let s = b.push("add", Op::Add, vec![m, a]).unwrap();
    let d = b.dw_conv("dil", s, 3, 1, 2).unwrap();
    let k = b.push("cat", Op::Concat, vec![s, d]).unwrap();
    let f = b.linear("fc1", k, 20).unwrap();
    let r = b.relu("r2", f, false).unwrap();
    let dr = b.push("drop", Op::Dropout { p: 0.5 }, vec![r]).unwrap();
    b.linear("fc", dr, 10).unwrap();
    b.finish().unwrap()
}

fn tiny_config() -> GhnConfig {
    GhnConfig {
        hid: 8,
        max_ch: 16,
        max_sp: 5,
        num_classes: 10,
        s_max: 50,
        layernorm: true,
        weight_norm: true,
        bit_conditioned: false,
    }
}

fn batch(n: usize, seed: u64) -> LabeledBatch {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    LabeledBatch {
        images: (0..n * 3 * 64)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect(),
        labels: (0..n).map(|_| rng.random_range(0..10)).collect(),
    }
}

#[test]
fn predicted_shapes_equal_the_ir() {
    let dev = Device::flex();
    let ghn = Ghn::new(&tiny_config(), &dev);
    let nets = [tiny_a(), tiny_b()];
    let graphs: Vec<GhnGraph> = nets
        .iter()
        .map(|n| GhnGraph::build(n, 50).unwrap())
        .collect();
    let p = ghn.predict(&[&nets[0], &nets[1]], &[&graphs[0], &graphs[1]], &dev);
    for (net, ps) in nets.iter().zip(&p) {
        ps.check_shapes(net).unwrap();
        assert_eq!(
            ps.named_tensors(net)
                .iter()
                .map(|(_, s, _)| s.iter().product::<usize>())
                .sum::<usize>(),
            net.param_count()
        );
        let x: Tensor<4> = Tensor::random([4, 3, 8, 8], Distribution::Normal(0.0, 1.0), &dev);
        let y = ghnq_core::cnn::forward(net, ps, x, ghnq_core::cnn::BnMode::Batch, false);
        assert_eq!(y.dims(), [4, 10]);
    }
    // BN γ ∈ (0, 2), biases ∈ (−1, 1) after normalisation.
    for t in p[1].tensors() {
        if let TensorRef::D1(t) = t {
            let v: Vec<f32> = t.to_data().try_to_vec::<f32>().unwrap();
            assert!(v.iter().all(|x| x.abs() < 2.0));
        }
    }
}

/// Lock-step batching of a meta-batch (GHN_SPEC §2.3) is exact: predicting two graphs together gives
/// the same tensors as predicting each alone.
#[test]
fn batched_prediction_equals_single_prediction() {
    let dev = Device::flex();
    let ghn = Ghn::new(&tiny_config(), &dev);
    let nets = [tiny_a(), tiny_b()];
    let graphs: Vec<GhnGraph> = nets
        .iter()
        .map(|n| GhnGraph::build(n, 50).unwrap())
        .collect();
    let both = ghn.predict(&[&nets[0], &nets[1]], &[&graphs[0], &graphs[1]], &dev);
    for k in 0..2 {
        let alone = ghn.predict(&[&nets[k]], &[&graphs[k]], &dev);
        for (a, b) in both[k]
            .named_tensors(&nets[k])
            .iter()
            .zip(alone[0].named_tensors(&nets[k]))
        {
            let (x, y): (Vec<f32>, Vec<f32>) =
                (a.2.clone().try_to_vec().unwrap(), b.2.try_to_vec().unwrap());
            let d = x
                .iter()
                .zip(&y)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0f32, f32::max);
            assert!(d < 1e-5, "{}: batched differs by {d}", a.0);
        }
    }
}

#[test]
fn step_lr_schedule() {
    use super::train::lr_at;
    // GHN-2: 300 epochs, ×0.1 at 200 and 250.
    assert_eq!(lr_at(1e-3, 199, 300), 1e-3);
    assert!((lr_at(1e-3, 200, 300) - 1e-4).abs() < 1e-12);
    assert!((lr_at(1e-3, 250, 300) - 1e-5).abs() < 1e-12);
    // Scaled to 30 epochs: milestones 20 and 25.
    assert_eq!(lr_at(1e-3, 19, 30), 1e-3);
    assert!((lr_at(1e-3, 20, 30) - 1e-4).abs() < 1e-12);
    assert!((lr_at(1e-3, 25, 30) - 1e-5).abs() < 1e-12);
}

#[test]
fn gradients_reach_every_ghn_parameter_and_loss_falls() {
    let dev = Device::flex().autodiff();
    // burn may seed globally, and tests run in parallel, so the seed alone does not pin the
    // initialisation; the step count below leaves margin for any initialisation.
    dev.seed(2026);
    let ghn = Ghn::new(&tiny_config(), &dev);
    let mut trainer = MetaTrainer::new(ghn, 0.0, dev.clone());
    let nets = vec![tiny_a(), tiny_b()];
    let data = batch(8, 7);

    // Gradients: non-zero and finite for the main GHN tensors.
    let (x, y) = ghnq_core::train::to_tensors(&data, SHAPE, &dev);
    let (loss, _) = trainer.meta_loss(&nets, &x, &y, &data.labels);
    let grads = loss.backward();
    let ghn = &trainer.ghn;
    let check = |name: &str, g: Option<Tensor<2>>| {
        let g = g.unwrap_or_else(|| panic!("{name}: no gradient"));
        let v: Vec<f32> = g.into_data().try_to_vec::<f32>().unwrap();
        assert!(
            v.iter().all(|x| x.is_finite()),
            "{name}: non-finite gradient"
        );
        assert!(v.iter().any(|&x| x != 0.0), "{name}: zero gradient");
    };
    check("embed", ghn.embed.embed.val().grad(&grads));
    check("embed_channel", ghn.embed.embed_channel.val().grad(&grads));
    check("gru.weight_hh", ghn.gnn.gru.weight_hh.val().grad(&grads));
    check(
        "mlp_ve.fc0",
        ghn.gnn
            .mlp_ve
            .as_ref()
            .unwrap()
            .fc0
            .weight
            .val()
            .grad(&grads),
    );
    check("decoder.fc", ghn.decoder.fc.weight.val().grad(&grads));
    check("decoder.conv2", ghn.decoder.conv2.weight.val().grad(&grads));
    check(
        "class_layer_predictor",
        ghn.decoder.class_layer_predictor.weight.val().grad(&grads),
    );
    check("decoder_1d", ghn.decoder_1d.fc2.weight.val().grad(&grads));
    check("bias_class", ghn.bias_class.weight.val().grad(&grads));

    // 20 Adam steps on one fixed batch: the loss falls by at least 10 % (one slow initialisation
    // fell 8.7 % in 10 steps, steadily).
    let mut losses = Vec::new();
    for _ in 0..20 {
        let r = trainer.step(&nets, &data, SHAPE, 3e-3);
        assert!(!r.skipped);
        losses.push(r.loss);
    }
    eprintln!("meta-losses: {losses:?}");
    assert!(
        losses[19] < losses[0] * 0.9,
        "loss did not fall: {losses:?}"
    );
    assert_eq!(trainer.state.step, 20);
}

/// GHN-QAT: the same meta-step through the quantized simulation. STE (W4/A4) and NoiseQuant
/// (W2/A2) both carry gradients into the GHN; at W4/A4 a few steps on one batch lower the loss
/// (W2/A2's noise makes 20 steps on one batch too noisy to assert on).
#[test]
fn qat_gradients_reach_the_ghn_and_loss_falls() {
    use ghnq_quant::config::{Precision, QuantConfig};
    let dev = Device::flex().autodiff();
    for precision in [Precision::new(4, 4), Precision::new(2, 2)] {
        let ghn = Ghn::new(&tiny_config(), &dev);
        let mut trainer = MetaTrainer::new(ghn, 0.0, dev.clone());
        trainer.qat = Some(QuantConfig::paper(precision));
        let nets = vec![tiny_a(), tiny_b()];
        let data = batch(8, 7);
        let (x, y) = ghnq_core::train::to_tensors(&data, SHAPE, &dev);
        let (loss, _) = trainer.meta_loss(&nets, &x, &y, &data.labels);
        let grads = loss.backward();
        let g = trainer
            .ghn
            .decoder
            .conv2
            .weight
            .val()
            .grad(&grads)
            .expect("gradient");
        let v: Vec<f32> = g.into_data().try_to_vec::<f32>().unwrap();
        assert!(
            v.iter().all(|x| x.is_finite()),
            "{precision}: non-finite gradient"
        );
        assert!(v.iter().any(|&x| x != 0.0), "{precision}: zero gradient");
        if precision.weight_bits == 2 {
            continue;
        }
        let losses: Vec<f32> = (0..20)
            .map(|_| trainer.step(&nets, &data, SHAPE, 3e-3).loss)
            .collect();
        let (head, tail) = (
            losses[..3].iter().sum::<f32>(),
            losses[17..].iter().sum::<f32>(),
        );
        assert!(
            tail < head * 0.95,
            "{precision}: loss did not fall: {losses:?}"
        );
    }
}

/// GHN-QAT on the native engine follows burn's loss curve: the same GHN, nets and batches, 200
/// meta-steps (W4A4 with STE, W2A2 with NoiseQuant: the same draws on both paths). The paths sum
/// in different orders, so a rounding can land on the other side of a grid point and the curves
/// drift apart by float noise; they must stay within a few per cent of each other throughout.
#[test]
fn native_and_burn_qat_train_alike() {
    use super::train::Engine;
    use ghnq_quant::config::{Precision, QuantConfig};
    let dev = Device::flex().autodiff();
    let nets = vec![tiny_a(), tiny_b()];
    for precision in [Precision::new(4, 4), Precision::new(2, 2)] {
        let ghn = Ghn::new(&tiny_config(), &dev);
        let curve = |engine: Engine| {
            let mut trainer = MetaTrainer::new(ghn.clone(), 1e-5, dev.clone());
            trainer.qat = Some(QuantConfig::paper(precision));
            trainer.engine = engine;
            (0..200)
                .map(|k| trainer.step(&nets, &batch(8, k % 16), SHAPE, 1e-3).loss)
                .collect::<Vec<f32>>()
        };
        // One thread: burn's reductions split work by the pool's size.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let (native, burn) = pool.install(|| (curve(Engine::Native), curve(Engine::Burn)));
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        for k in (0..200).step_by(20) {
            let (a, b) = (mean(&native[k..k + 20]), mean(&burn[k..k + 20]));
            eprintln!("{precision} steps {k}..: native {a:.4} burn {b:.4}");
            assert!(
                (a - b).abs() <= 0.03 * b,
                "{precision}: steps {k}..{}: mean loss native {a} vs burn {b}",
                k + 20
            );
        }
        let first_apart = native
            .iter()
            .zip(&burn)
            .position(|(a, b)| (a - b).abs() > 1e-4 * b)
            .unwrap_or(200);
        eprintln!(
            "{precision}: mean loss over 200 steps native {:.4}, burn {:.4}; equal to 1e-4 for the first {first_apart} steps",
            mean(&native),
            mean(&burn)
        );
        assert!(
            first_apart >= 1,
            "{precision}: the first step's losses differ: {} vs {}",
            native[0],
            burn[0]
        );
    }
}

/// A checkpoint path that does not exist is named as such, not as a missing `ghn.cfg` beside it.
#[test]
fn missing_checkpoint_names_its_path() {
    let dev = Device::flex();
    let path = std::env::temp_dir().join(format!("no-such-ghn-{}", std::process::id()));
    let err = super::checkpoint::load_ghn(&path, None, &dev).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, super::checkpoint::CheckpointError::Io(e) if e.path == path),
        "{text}"
    );
    assert!(text.contains("reading the GHN checkpoint"), "{text}");
}

#[test]
fn checkpoint_round_trip_is_exact() {
    let dev = Device::flex();
    let ghn = Ghn::new(&tiny_config(), &dev);
    let dir = std::env::temp_dir().join(format!("ghn-ckpt-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state = super::checkpoint::TrainState {
        step: 3,
        skipped: 1,
    };
    super::checkpoint::save(&dir, &ghn, None, state).unwrap();
    let (back, st) = super::checkpoint::load_ghn(&dir, None, &dev).unwrap();
    assert_eq!(st, state);
    assert_eq!(back.config, ghn.config);
    let a = ghn.decoder.conv2.weight.val().into_data();
    let b = back.decoder.conv2.weight.val().into_data();
    assert_eq!(a, b);
    let a = ghn.gnn.gru.bias_hh.val().into_data();
    let b = back.gnn.gru.bias_hh.val().into_data();
    assert_eq!(a, b);
    // Predictions identical.
    let net = tiny_a();
    let g = GhnGraph::build(&net, 50).unwrap();
    let p1 = ghn.predict(&[&net], &[&g], &dev);
    let p2 = back.predict(&[&net], &[&g], &dev);
    let t1 = p1[0].named_tensors(&net);
    let t2 = p2[0].named_tensors(&net);
    for (a, b) in t1.iter().zip(&t2) {
        assert_eq!(a.2, b.2, "{}", a.0);
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(back.num_params(), ghn.num_params());
}

#[test]
fn arch_source_closure_works() {
    let mut k = 0;
    let mut src = || {
        k += 1;
        if k % 2 == 0 { tiny_a() } else { tiny_b() }
    };
    assert_eq!(ArchSource::sample(&mut src).name, "tiny-b");
}

/// Timing breakdown of a meta-step (run with `--ignored --nocapture`): GHN alone vs target nets.
#[test]
#[ignore]
fn profile_meta_step() {
    use ghnq_core::cnn::params::TensorRef;
    let dev = Device::flex().autodiff();
    let ghn = Ghn::new(&GhnConfig::cifar10(), &dev);
    let split = ghnq_core::arch::splits::Split::Train;
    let nets: Vec<Net> = (0..8)
        .map(|i| split.net(ImageShape::CIFAR10, 10, 0, i).unwrap())
        .collect();
    let graphs: Vec<GhnGraph> = nets
        .iter()
        .map(|n| GhnGraph::build(n, 50).unwrap())
        .collect();
    let nr: Vec<&Net> = nets.iter().collect();
    let gr: Vec<&GhnGraph> = graphs.iter().collect();
    for _ in 0..2 {
        let t = std::time::Instant::now();
        let ps = ghn.predict(&nr, &gr, &dev);
        let mut acc: Option<Tensor<1>> = None;
        for p in &ps {
            for t in p.tensors() {
                let s = match t {
                    TensorRef::D1(t) => t.clone().sum(),
                    TensorRef::D2(t) => t.clone().sum(),
                    TensorRef::D4(t) => t.clone().sum(),
                };
                acc = Some(match acc {
                    Some(a) => a + s,
                    None => s,
                });
            }
        }
        let loss = acc.unwrap();
        let _ = loss.clone().into_scalar::<f32>();
        let tf = t.elapsed();
        let _g = loss.backward();
        eprintln!(
            "GHN only: forward {:?}, backward {:?}",
            tf,
            t.elapsed() - tf
        );
    }
    let x: Tensor<4> = Tensor::random([64, 3, 32, 32], Distribution::Normal(0.0, 1.0), &dev);
    for (k, net) in nets.iter().enumerate().take(3) {
        let p = ghnq_core::cnn::ParamSet::init_random_seeded(net, k as u64, &dev);
        let t = std::time::Instant::now();
        let y = ghnq_core::cnn::forward(net, &p, x.clone(), ghnq_core::cnn::BnMode::Batch, true);
        let l = y.powf_scalar(2.0).mean();
        let _ = l.clone().into_scalar::<f32>();
        let tf = t.elapsed();
        let _g = l.backward();
        eprintln!(
            "net {k} ({} params, {} MMACs): forward {:?}, backward {:?}",
            net.param_count(),
            net.macs() / 1_000_000,
            tf,
            t.elapsed() - tf
        );
    }
}

/// Per-op forward+backward timing on flex (run with `--ignored --nocapture`).
#[test]
#[ignore]
fn profile_ops() {
    use burn::tensor::module::{batch_norm_train, conv2d, max_pool2d};
    use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
    let dev = Device::flex().autodiff();
    let x: Tensor<4> =
        Tensor::random([64, 16, 32, 32], Distribution::Normal(0.0, 1.0), &dev).require_grad();
    let time = |name: &str, f: &dyn Fn(Tensor<4>) -> Tensor<4>| {
        for _ in 0..2 {
            let t = std::time::Instant::now();
            let y = f(x.clone());
            let l = y.sum();
            let _ = l.clone().into_scalar::<f32>();
            let tf = t.elapsed();
            let _g = l.backward();
            eprintln!("{name}: forward {tf:?}, backward {:?}", t.elapsed() - tf);
        }
    };
    let w_dw: Tensor<4> =
        Tensor::random([16, 1, 3, 3], Distribution::Normal(0.0, 0.3), &dev).require_grad();
    let w_dw5: Tensor<4> =
        Tensor::random([16, 1, 5, 5], Distribution::Normal(0.0, 0.3), &dev).require_grad();
    let w_3: Tensor<4> =
        Tensor::random([16, 16, 3, 3], Distribution::Normal(0.0, 0.1), &dev).require_grad();
    let w_1: Tensor<4> =
        Tensor::random([16, 16, 1, 1], Distribution::Normal(0.0, 0.1), &dev).require_grad();
    let g: Tensor<1> = Tensor::ones([16], &dev).require_grad();
    let b: Tensor<1> = Tensor::zeros([16], &dev).require_grad();
    time("dw3x3", &|x| {
        conv2d(
            x,
            w_dw.clone(),
            None,
            ConvOptions::new([1, 1], [1, 1], [1, 1], 16),
        )
    });
    time("dw5x5 dil2", &|x| {
        conv2d(
            x,
            w_dw5.clone(),
            None,
            ConvOptions::new([1, 1], [4, 4], [2, 2], 16),
        )
    });
    time("conv3x3", &|x| {
        conv2d(
            x,
            w_3.clone(),
            None,
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        )
    });
    time("conv1x1", &|x| {
        conv2d(
            x,
            w_1.clone(),
            None,
            ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
        )
    });
    time("bn", &|x| {
        batch_norm_train(x, g.clone(), b.clone(), 1e-5).output
    });
    time("maxpool", &|x| {
        max_pool2d(
            x,
            MaxPoolOptions::new([3, 3])
                .with_stride([1, 1])
                .with_padding([1, 1]),
        )
    });
    time("avgpool", &|x| {
        ghnq_core::cnn::executor::avg_pool_exclude_pad(x, 3, 1, 1)
    });
    time("relu", &|x| burn::tensor::activation::relu(x));
}

/// Stopping after a checkpoint and resuming continues the same architecture stream and logs
/// every step once, as an uninterrupted run would.
#[test]
fn a_resumed_run_continues_where_the_checkpoint_left_off() {
    use super::train::{RunOptions, run};
    use ghnq_core::sources::SyntheticImages;
    use std::cell::RefCell;
    let dev = Device::flex().autodiff();
    let dir = tempfile::tempdir().unwrap();
    let opts = |max_steps| RunOptions {
        meta_batch: 2,
        batch: 4,
        epochs: 1,
        lr: 1e-3,
        weight_decay: 0.0,
        max_steps: Some(max_steps),
        out: Some(dir.path().to_path_buf()),
        checkpoint_every: 2,
        progress: false,
        keep_checkpoints: 1,
    };
    let checkpoints = RefCell::new(Vec::new());
    let mut after = |t: &MetaTrainer| {
        checkpoints.borrow_mut().push(t.state.step);
        Ok(())
    };
    // Every sampled net is named by its position in the stream.
    let seen = RefCell::new(Vec::new());
    let source = || {
        let mut k = 0usize;
        let seen = &seen;
        move || {
            k += 1;
            seen.borrow_mut().push(k);
            let mut n = if k.is_multiple_of(2) {
                tiny_a()
            } else {
                tiny_b()
            };
            n.name = format!("n{k}");
            n
        }
    };
    let images = || SyntheticImages::new(SHAPE, 10, 64, 3);

    let mut first = MetaTrainer::new(Ghn::new(&tiny_config(), &dev), 0.0, dev.clone());
    run(
        &mut first,
        &mut source(),
        &mut images(),
        &opts(2),
        &mut after,
    )
    .unwrap();
    assert_eq!(*seen.borrow(), [1, 2, 3, 4]);
    // A crash after the checkpoint may have logged a step the checkpoint does not hold.
    let log = dir.path().join("train.csv");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("2,0,1e-3,9.9,0.1,1.0,0,1.0\n");
    std::fs::write(&log, text).unwrap();

    seen.borrow_mut().clear();
    let (ghn, state) = super::checkpoint::load_ghn(dir.path(), None, &dev).unwrap();
    assert_eq!(state.step, 2);
    let mut resumed = MetaTrainer::new(ghn, 0.0, dev.clone());
    resumed.state = state;
    run(
        &mut resumed,
        &mut source(),
        &mut images(),
        &opts(4),
        &mut after,
    )
    .unwrap();
    // One callback per checkpoint (the final save of a run that just checkpointed is not new),
    // and only the newest checkpoint is kept.
    assert_eq!(*checkpoints.borrow(), [2, 4]);
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".bpk"))
        .collect();
    files.sort();
    assert_eq!(files, ["ghn-step4.bpk", "optim-step4.bpk"]);
    // Nets 1-4 are skipped (steps 0 and 1 are done), steps 2 and 3 train on nets 5-8.
    assert_eq!(*seen.borrow(), (1..=8).collect::<Vec<_>>());
    let steps: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect();
    assert_eq!(steps, ["0", "1", "2", "3"]);
}

/// A bit-conditioned GHN predicts different parameters for different bit-widths, its bit
/// embedding learns from QAT steps that cycle through the bit-widths, and its configuration
/// survives a checkpoint.
#[test]
fn a_bit_conditioned_ghn_depends_on_the_bits_and_learns_them() {
    use ghnq_quant::config::{Clip, Precision, QuantConfig};
    let dev = Device::flex().autodiff();
    let cfg = GhnConfig {
        bit_conditioned: true,
        ..tiny_config()
    };
    assert_eq!(GhnConfig::from_text(&cfg.to_text()).unwrap(), cfg);
    let ghn = Ghn::new(&cfg, &dev);
    let net = tiny_a();
    let g = GhnGraph::build(&net, cfg.s_max).unwrap();
    let w = |bits| {
        let p = ghn.predict_for(&[&net], &[&g], bits, &dev).remove(0);
        p.named_tensors(&net)[0].2.clone()
    };
    let (w8, w2, float) = (
        w(Some(Precision::new(8, 8))),
        w(Some(Precision::new(2, 2))),
        w(None),
    );
    assert_ne!(w8, w2);
    assert_ne!(w8, float);

    let mut trainer = MetaTrainer::new(ghn, 0.0, dev.clone());
    let w2a2 = QuantConfig {
        weight_clip: Clip::Percentile(1.0),
        act_clip: Clip::Percentile(1.0),
        ..QuantConfig::paper(Precision::new(2, 2))
    };
    trainer.qat = Some(QuantConfig::paper(Precision::new(8, 8)));
    trainer.bit_choices = vec![QuantConfig::paper(Precision::new(8, 8)), w2a2.clone()];
    assert_eq!(trainer.step_qat(), trainer.qat);
    let data = batch(8, 7);
    let before = trainer
        .ghn
        .bits_embed
        .as_ref()
        .unwrap()
        .weight
        .val()
        .into_data();
    for _ in 0..2 {
        assert!(
            !trainer
                .step(&[tiny_a(), tiny_b()], &data, SHAPE, 1e-2)
                .skipped
        );
        if trainer.state.step == 1 {
            // The second turn takes its own ranges and method, not the first's.
            assert_eq!(trainer.step_qat(), Some(w2a2.clone()));
        }
    }
    let after = trainer
        .ghn
        .bits_embed
        .as_ref()
        .unwrap()
        .weight
        .val()
        .into_data();
    let (b, a): (Vec<f32>, Vec<f32>) = (before.try_to_vec().unwrap(), after.try_to_vec().unwrap());
    // Rows 8 and 17 (w8, a8) and rows 2 and 11 (w2, a2) moved; row 4 (w4) did not.
    let row = |v: &[f32], r: usize| v[r * cfg.hid..(r + 1) * cfg.hid].to_vec();
    for r in [8, 17, 2, 11] {
        assert_ne!(row(&b, r), row(&a, r), "row {r} did not learn");
    }
    assert_eq!(row(&b, 4), row(&a, 4));
}

#[test]
fn random_nets_are_valid_and_graphable() {
    use ghnq_core::sources::random_small_net;
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for k in 0..20 {
        let net = random_small_net(&mut rng, ImageShape::CIFAR10, 10, &format!("r{k}"));
        let g = GhnGraph::build(&net, 50).unwrap();
        assert!(g.len() >= 5);
    }
}

/// AdamW (`ghnq train --optimizer adamw`) decays every weight by lr·wd apart from the adaptive
/// step: from one start and one batch, its step with weight decay lands at its step without,
/// minus lr·wd times the weight. (Adam's L2 decay would pass through the step's normalisation.)
#[test]
fn adamw_decay_is_decoupled_from_the_step() {
    use super::train::Optimizer;
    let dev = Device::flex().autodiff();
    let ghn = Ghn::new(&tiny_config(), &dev);
    let nets = vec![tiny_a(), tiny_b()];
    let data = batch(8, 3);
    let (lr, wd) = (1e-2, 0.5);
    let weights = |g: &Ghn| -> Vec<f32> {
        g.decoder
            .conv2
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let one_step = |optimizer: Optimizer, wd: f64| {
        let mut t = MetaTrainer::with_optimizer(ghn.clone(), optimizer, wd, dev.clone());
        assert!(!t.step(&nets, &data, SHAPE, lr).skipped);
        weights(&t.ghn)
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let (plain, decayed, adam_l2) = pool.install(|| {
        (
            one_step(Optimizer::AdamW, 0.0),
            one_step(Optimizer::AdamW, wd),
            one_step(Optimizer::Adam, wd),
        )
    });
    let before = weights(&ghn);
    let mut worst = 0f64;
    for ((p, d), w) in plain.iter().zip(&decayed).zip(&before) {
        let want = *p as f64 - lr * wd * *w as f64;
        worst = worst.max((*d as f64 - want).abs());
    }
    assert!(worst < 1e-6, "AdamW's decay is off by {worst}");
    // Adam's L2 decay goes through the step: its weights are not AdamW's.
    let apart = decayed
        .iter()
        .zip(&adam_l2)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        apart > 1e-4,
        "Adam with L2 decay moved as AdamW did ({apart})"
    );
    assert_eq!("adamw".parse::<Optimizer>(), Ok(Optimizer::AdamW));
    assert!("sgd".parse::<Optimizer>().is_err());
}

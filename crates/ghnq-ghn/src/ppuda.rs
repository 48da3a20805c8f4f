//! ppuda's GHN-2 weights (facebookresearch/ppuda's `GHN` state dict, saved as safetensors) in
//! and out of this crate's [`Ghn`]: the parity test loads ppuda's seeded weights through it, the
//! learning-curve parity runs start both trainers from one set of weights and score ppuda's
//! snapshots here, and a user holding a GHN-2 trained by ppuda can predict with it in `ghnq`.
//! The name table is GHN_SPEC §7's; every tensor's name, shape and count is checked.

use std::collections::HashMap;

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

use crate::{Ghn, GhnConfig};

/// Why a ppuda state dict does not load.
#[derive(Debug, thiserror::Error)]
pub enum PpudaError {
    /// Not a safetensors file.
    #[error("not a safetensors file: {0}")]
    Format(#[from] safetensors::SafeTensorError),
    /// The names differ from GHN-2's (another GHN variant, or a bit-conditioned GHN).
    #[error("the state dict is not GHN-2's: missing {missing:?}, unexpected {unexpected:?}")]
    Names {
        /// GHN-2 tensors the file lacks.
        missing: Vec<String>,
        /// Tensors GHN-2 does not have.
        unexpected: Vec<String>,
    },
    /// A tensor's shape does not fit the configuration.
    #[error("{name}: shape {got:?} where this configuration has {want:?}")]
    Shape {
        /// Tensor name.
        name: String,
        /// Shape in the file.
        got: Vec<usize>,
        /// Shape this configuration needs (PyTorch layout).
        want: Vec<usize>,
    },
    /// A tensor is not float32.
    #[error("{name}: dtype {dtype:?}, float32 expected")]
    Dtype {
        /// Tensor name.
        name: String,
        /// Its dtype.
        dtype: Dtype,
    },
    /// The configuration cannot be a ppuda GHN-2 (bit-conditioned, no LayerNorm, no virtual edges).
    #[error("ppuda's GHN-2 has {0}")]
    Config(&'static str),
}

/// One GHN parameter as ppuda names it, and how burn's layout maps to PyTorch's.
pub enum Slot<'a> {
    /// A vector, same layout.
    Same1(&'a Param<Tensor<1>>),
    /// A matrix, same layout (embeddings, GRU).
    Same2(&'a Param<Tensor<2>>),
    /// burn `Linear` weight `[in, out]`, PyTorch `(out, in)` (or a 1×1 conv `(out, in, 1, 1)`).
    Transposed(&'a Param<Tensor<2>>),
}

fn linear_slots<'a>(out: &mut Vec<(String, Slot<'a>)>, name: &str, l: &'a burn::nn::Linear) {
    out.push((format!("{name}.weight"), Slot::Transposed(&l.weight)));
    if let Some(b) = l.bias.as_ref() {
        out.push((format!("{name}.bias"), Slot::Same1(b)));
    }
}

/// Every parameter of `ghn` with its ppuda state-dict name (GHN_SPEC §7), or why `ghn` has no
/// ppuda counterpart.
pub fn slots(ghn: &Ghn) -> Result<Vec<(String, Slot<'_>)>, PpudaError> {
    if ghn.bits_embed.is_some() {
        return Err(PpudaError::Config("no bit embedding"));
    }
    let ve = ghn
        .gnn
        .mlp_ve
        .as_ref()
        .ok_or(PpudaError::Config("virtual edges"))?;
    let ln = ghn.ln.as_ref().ok_or(PpudaError::Config("a LayerNorm"))?;
    let ln_beta = ln
        .beta
        .as_ref()
        .ok_or(PpudaError::Config("a LayerNorm with β"))?;
    let mut s = vec![
        ("embed.weight".to_string(), Slot::Same2(&ghn.embed.embed)),
        (
            "shape_enc.embed_channel.weight".into(),
            Slot::Same2(&ghn.embed.embed_channel),
        ),
        (
            "shape_enc.embed_spatial.weight".into(),
            Slot::Same2(&ghn.embed.embed_spatial),
        ),
    ];
    linear_slots(&mut s, "gnn.mlp.fc.0", &ghn.gnn.mlp.fc0);
    linear_slots(&mut s, "gnn.mlp.fc.2", &ghn.gnn.mlp.fc2);
    linear_slots(&mut s, "gnn.mlp_ve.fc.0", &ve.fc0);
    linear_slots(&mut s, "gnn.mlp_ve.fc.2", &ve.fc2);
    let gru = &ghn.gnn.gru;
    s.push(("gnn.gru.weight_ih".into(), Slot::Same2(&gru.weight_ih)));
    s.push(("gnn.gru.weight_hh".into(), Slot::Same2(&gru.weight_hh)));
    s.push(("gnn.gru.bias_ih".into(), Slot::Same1(&gru.bias_ih)));
    s.push(("gnn.gru.bias_hh".into(), Slot::Same1(&gru.bias_hh)));
    s.push(("ln.weight".into(), Slot::Same1(&ln.gamma)));
    s.push(("ln.bias".into(), Slot::Same1(ln_beta)));
    linear_slots(&mut s, "decoder.fc.0", &ghn.decoder.fc);
    linear_slots(&mut s, "decoder.conv.0", &ghn.decoder.conv0);
    linear_slots(&mut s, "decoder.conv.2", &ghn.decoder.conv2);
    linear_slots(
        &mut s,
        "decoder.class_layer_predictor.1",
        &ghn.decoder.class_layer_predictor,
    );
    linear_slots(&mut s, "decoder_1d.fc.0", &ghn.decoder_1d.fc0);
    linear_slots(&mut s, "decoder_1d.fc.2", &ghn.decoder_1d.fc2);
    linear_slots(&mut s, "bias_class.1", &ghn.bias_class);
    Ok(s)
}

/// A float32 tensor of `st` as `(shape, values)`.
fn f32_tensor(st: &SafeTensors<'_>, name: &str) -> Result<(Vec<usize>, Vec<f32>), PpudaError> {
    let t = st.tensor(name)?;
    if t.dtype() != Dtype::F32 {
        return Err(PpudaError::Dtype {
            name: name.into(),
            dtype: t.dtype(),
        });
    }
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((t.shape().to_vec(), v))
}

/// A [`Ghn`] of `config` holding the ppuda GHN-2 weights of the safetensors file `bytes`.
pub fn load(bytes: &[u8], config: &GhnConfig, device: &Device) -> Result<Ghn, PpudaError> {
    let st = SafeTensors::deserialize(bytes)?;
    let mut ghn = Ghn::new(config, device);
    // Checked against the slots first, then moved in by name.
    let mut values: HashMap<String, Vec<f32>> = HashMap::new();
    {
        let slots = slots(&ghn)?;
        let mut stored: Vec<String> = st.names().into_iter().map(str::to_string).collect();
        stored.sort();
        let mut ours: Vec<String> = slots.iter().map(|(n, _)| n.clone()).collect();
        ours.sort();
        if ours != stored {
            return Err(PpudaError::Names {
                missing: ours
                    .iter()
                    .filter(|n| !stored.contains(n))
                    .cloned()
                    .collect(),
                unexpected: stored
                    .iter()
                    .filter(|n| !ours.contains(n))
                    .cloned()
                    .collect(),
            });
        }
        for (name, slot) in &slots {
            let (shape, v) = f32_tensor(&st, name)?;
            let want: Vec<usize> = match slot {
                Slot::Same1(p) => p.dims().to_vec(),
                Slot::Same2(p) => p.dims().to_vec(),
                Slot::Transposed(p) => {
                    let [i, o] = p.dims();
                    vec![o, i]
                }
            };
            // 1×1 conv weights `(out, in, 1, 1)` are linear maps `(out, in)`.
            let got = if shape.len() == 4 && shape[2..] == [1, 1] {
                shape[..2].to_vec()
            } else {
                shape.clone()
            };
            if got != want {
                return Err(PpudaError::Shape {
                    name: name.clone(),
                    got: shape,
                    want,
                });
            }
            values.insert(name.clone(), v);
        }
    }
    let mut take = |name: &str| values.remove(name).expect("every slot was checked");
    put2(&mut ghn.embed.embed, take("embed.weight"), false, device);
    put2(
        &mut ghn.embed.embed_channel,
        take("shape_enc.embed_channel.weight"),
        false,
        device,
    );
    put2(
        &mut ghn.embed.embed_spatial,
        take("shape_enc.embed_spatial.weight"),
        false,
        device,
    );
    let gru = &mut ghn.gnn.gru;
    put2(&mut gru.weight_ih, take("gnn.gru.weight_ih"), false, device);
    put2(&mut gru.weight_hh, take("gnn.gru.weight_hh"), false, device);
    put1(&mut gru.bias_ih, take("gnn.gru.bias_ih"), device);
    put1(&mut gru.bias_hh, take("gnn.gru.bias_hh"), device);
    if let Some(ln) = ghn.ln.as_mut() {
        put1(&mut ln.gamma, take("ln.weight"), device);
        if let Some(beta) = ln.beta.as_mut() {
            put1(beta, take("ln.bias"), device);
        }
    }
    let mut linears: Vec<(&mut burn::nn::Linear, &str)> = vec![
        (&mut ghn.gnn.mlp.fc0, "gnn.mlp.fc.0"),
        (&mut ghn.gnn.mlp.fc2, "gnn.mlp.fc.2"),
        (&mut ghn.decoder.fc, "decoder.fc.0"),
        (&mut ghn.decoder.conv0, "decoder.conv.0"),
        (&mut ghn.decoder.conv2, "decoder.conv.2"),
        (
            &mut ghn.decoder.class_layer_predictor,
            "decoder.class_layer_predictor.1",
        ),
        (&mut ghn.decoder_1d.fc0, "decoder_1d.fc.0"),
        (&mut ghn.decoder_1d.fc2, "decoder_1d.fc.2"),
        (&mut ghn.bias_class, "bias_class.1"),
    ];
    if let Some(ve) = ghn.gnn.mlp_ve.as_mut() {
        linears.push((&mut ve.fc0, "gnn.mlp_ve.fc.0"));
        linears.push((&mut ve.fc2, "gnn.mlp_ve.fc.2"));
    }
    for (l, name) in linears {
        put2(&mut l.weight, take(&format!("{name}.weight")), true, device);
        if let Some(b) = l.bias.as_mut() {
            put1(b, take(&format!("{name}.bias")), device);
        }
    }
    Ok(ghn)
}

/// Replaces a matrix parameter (given in PyTorch layout: transposed for burn's `Linear`).
fn put2(p: &mut Param<Tensor<2>>, v: Vec<f32>, transposed: bool, device: &Device) {
    let [a, b] = p.dims();
    let shape = if transposed { [b, a] } else { [a, b] };
    let t = Tensor::<2>::from_data(TensorData::new(v, shape), device);
    *p = Param::from_tensor(if transposed { t.transpose() } else { t });
}

fn put1(p: &mut Param<Tensor<1>>, v: Vec<f32>, device: &Device) {
    let n = v.len();
    *p = Param::from_tensor(Tensor::<1>::from_data(TensorData::new(v, [n]), device));
}

/// The GHN-2 configuration of a ppuda state dict: `hid` from the embedding, `max_ch = 2·hid`
/// and the classes from the classifier-bias decoder; `max_sp` and `s_max` are not in the weights
/// (ppuda's CIFAR-10 GHN-2: 11 and 50).
pub fn config_of(bytes: &[u8], max_sp: usize, s_max: usize) -> Result<GhnConfig, PpudaError> {
    let st = SafeTensors::deserialize(bytes)?;
    let shape =
        |name: &str| -> Result<Vec<usize>, PpudaError> { Ok(st.tensor(name)?.shape().to_vec()) };
    let hid = shape("embed.weight")?[1];
    // The classifier bias decoder maps `max_ch` features to one bias per class.
    let num_classes = shape("bias_class.1.weight")?[0];
    Ok(GhnConfig {
        s_max,
        max_sp,
        ..GhnConfig::with_hidden(hid, num_classes)
    })
}

/// `ghn` as a ppuda GHN-2 state dict in safetensors (PyTorch layouts, ppuda's names): ppuda's
/// `GHN(...).load_state_dict(safetensors.torch.load_file(path))` takes it.
pub fn save(ghn: &Ghn) -> Result<Vec<u8>, PpudaError> {
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = slots(ghn)?
        .into_iter()
        .map(|(name, slot)| {
            let (shape, data) = match slot {
                Slot::Same1(p) => (p.dims().to_vec(), p.val().into_data()),
                Slot::Same2(p) => (p.dims().to_vec(), p.val().into_data()),
                Slot::Transposed(p) => {
                    let [i, o] = p.dims();
                    (vec![o, i], p.val().transpose().into_data())
                }
            };
            let bytes = data
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap_or_default()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
        })
        .collect::<Result<_, _>>()?;
    Ok(safetensors::serialize(views, None)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<const D: usize>(p: &Param<Tensor<D>>) -> Vec<f32> {
        p.val()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap()
    }

    /// Saved and loaded back, every tensor is the same; the configuration is read back from
    /// the weights.
    #[test]
    fn a_saved_ghn_loads_back() {
        let dev = Device::flex();
        let cfg = GhnConfig::with_hidden(8, 10);
        let ghn = Ghn::new(&cfg, &dev);
        let bytes = save(&ghn).unwrap();
        assert_eq!(config_of(&bytes, 11, 50).unwrap(), cfg);
        let back = load(&bytes, &cfg, &dev).unwrap();
        let (a, b) = (slots(&ghn).unwrap(), slots(&back).unwrap());
        assert_eq!(a.len(), b.len());
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            let (x, y) = match (x, y) {
                (Slot::Same1(x), Slot::Same1(y)) => (values(x), values(y)),
                (Slot::Same2(x), Slot::Same2(y)) | (Slot::Transposed(x), Slot::Transposed(y)) => {
                    (values(x), values(y))
                }
                _ => panic!("{name}: slot kinds differ"),
            };
            assert_eq!(x, y, "{name}");
        }
    }

    /// A file that is not GHN-2's is refused with what is wrong, never loaded half-way.
    #[test]
    fn foreign_state_dicts_are_refused() {
        let dev = Device::flex();
        let cfg = GhnConfig::with_hidden(8, 10);
        let bytes = save(&Ghn::new(&cfg, &dev)).unwrap();
        // Another hidden size: shapes differ.
        let err = load(&bytes, &GhnConfig::with_hidden(16, 10), &dev).unwrap_err();
        assert!(matches!(err, PpudaError::Shape { .. }), "{err}");
        // A bit-conditioned GHN has no ppuda counterpart.
        let bits = GhnConfig {
            bit_conditioned: true,
            ..cfg.clone()
        };
        let err = load(&bytes, &bits, &dev).unwrap_err();
        assert!(matches!(err, PpudaError::Config(_)), "{err}");
        // A tensor missing.
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let kept: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
            .tensors()
            .into_iter()
            .filter(|(n, _)| n != "ln.bias")
            .collect();
        let fewer = safetensors::serialize(kept, None).unwrap();
        match load(&fewer, &cfg, &dev).unwrap_err() {
            PpudaError::Names {
                missing,
                unexpected,
            } => {
                assert_eq!(missing, ["ln.bias"]);
                assert!(unexpected.is_empty());
            }
            other => panic!("{other}"),
        }
        // Not safetensors at all.
        assert!(matches!(
            load(b"not a state dict", &cfg, &dev).unwrap_err(),
            PpudaError::Format(_)
        ));
    }
}

//! Parameter sets for an IR [`Net`]: one [`LayerParams`] per IR node, indexed like `net.nodes`.
//! Layouts are PyTorch's: conv weight `(O, I/groups, k, k)`, linear weight `(O, I)` applied to the
//! HWC-flattened input, BatchNorm γ and β `(C)`.

use burn::tensor::{Device, Distribution, Tensor, TensorData};

use crate::arch::{Net, Op};

/// Parameters of one IR node. (Tensors are handles; boxing them would only add indirection.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum LayerParams {
    /// A parameter-free node (or a dead one).
    None,
    /// Convolution weight and optional bias.
    Conv {
        /// Weight `(O, I/groups, k, k)`.
        weight: Tensor<4>,
        /// Bias `(O)`, if the conv has one.
        bias: Option<Tensor<1>>,
    },
    /// BatchNorm γ and β, plus running statistics `(mean, var)` when calibrated.
    BatchNorm {
        /// Scale γ.
        gamma: Tensor<1>,
        /// Shift β.
        beta: Tensor<1>,
        /// Running `(mean, var)`, once calibrated.
        running: Option<(Tensor<1>, Tensor<1>)>,
    },
    /// Linear weight `(O, I)` and optional bias.
    Linear {
        /// Weight `(O, I)`.
        weight: Tensor<2>,
        /// Bias `(O)`, if any.
        bias: Option<Tensor<1>>,
    },
}

/// All parameters of a net, one entry per IR node.
#[derive(Debug, Clone)]
pub struct ParamSet {
    /// Indexed like `net.nodes`.
    pub layers: Vec<LayerParams>,
}

/// Where [`ParamSet::init_random`] draws from: burn's generator on the device, or a seeded
/// ChaCha8 stream on the host ([`ParamSet::init_random_seeded`]: the same values every run,
/// whatever else draws from burn's generator meanwhile, e.g. tests running in parallel).
enum Draw {
    Device,
    Seeded(Box<rand_chacha::ChaCha8Rng>),
}

impl Draw {
    fn uniform<const D: usize>(
        &mut self,
        shape: [usize; D],
        bound: f64,
        device: &Device,
    ) -> Tensor<D> {
        leaf(match self {
            Draw::Device => Tensor::random(shape, Distribution::Uniform(-bound, bound), device),
            Draw::Seeded(rng) => {
                use rand::Rng;
                let n = shape.iter().product::<usize>();
                let b = bound as f32;
                let v: Vec<f32> = (0..n).map(|_| rng.random_range(-b..b)).collect();
                Tensor::from_data(TensorData::new(v, shape), device)
            }
        })
    }
}

/// A trainable leaf on autodiff devices, a plain tensor elsewhere.
fn leaf<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    if t.device().is_autodiff() {
        t.require_grad()
    } else {
        t
    }
}

impl ParamSet {
    /// PyTorch default initialisation (`kaiming_uniform_(a=√5)` ⇒ U(±1/√fan_in) for weights, the same
    /// bound for biases; BatchNorm γ = 1, β = 0). Tensors are trainable leaves on `device`.
    pub fn init_random(net: &Net, device: &Device) -> ParamSet {
        Self::init_drawn(net, device, Draw::Device)
    }

    /// [`ParamSet::init_random`] drawn from a ChaCha8 stream seeded by `seed`: the same values on
    /// every run and device (tests pin their nets' parameters with it).
    pub fn init_random_seeded(net: &Net, seed: u64, device: &Device) -> ParamSet {
        use rand::SeedableRng;
        Self::init_drawn(
            net,
            device,
            Draw::Seeded(Box::new(rand_chacha::ChaCha8Rng::seed_from_u64(seed))),
        )
    }

    fn init_drawn(net: &Net, device: &Device, mut draw: Draw) -> ParamSet {
        let layers = net
            .nodes
            .iter()
            .map(|node| match node.op {
                Op::Conv {
                    kernel,
                    groups,
                    cin,
                    cout,
                    bias,
                    ..
                } => {
                    let ipg = cin / groups.max(1);
                    let bound = 1.0 / ((ipg * kernel * kernel) as f64).sqrt();
                    LayerParams::Conv {
                        weight: draw.uniform([cout, ipg, kernel, kernel], bound, device),
                        bias: bias.then(|| draw.uniform([cout], bound, device)),
                    }
                }
                Op::Linear { cin, cout, bias } => {
                    let bound = 1.0 / (cin as f64).sqrt();
                    LayerParams::Linear {
                        weight: draw.uniform([cout, cin], bound, device),
                        bias: bias.then(|| draw.uniform([cout], bound, device)),
                    }
                }
                Op::BatchNorm { channels } => LayerParams::BatchNorm {
                    gamma: leaf(Tensor::ones([channels], device)),
                    beta: leaf(Tensor::zeros([channels], device)),
                    running: None,
                },
                _ => LayerParams::None,
            })
            .collect();
        ParamSet { layers }
    }

    /// Every tensor with a stable name `"{node index}.{node name}.{weight|bias|gamma|beta}"`, in IR
    /// order — what `predict` writes to disk and what shape tests compare against the IR.
    pub fn named_tensors(&self, net: &Net) -> Vec<(String, Vec<usize>, TensorData)> {
        let mut out = Vec::new();
        for (i, (layer, node)) in self.layers.iter().zip(&net.nodes).enumerate() {
            let name = |t: &str| format!("{i}.{}.{t}", node.name);
            match layer {
                LayerParams::None => {}
                LayerParams::Conv { weight, bias } => {
                    out.push((name("weight"), weight.dims().to_vec(), weight.to_data()));
                    if let Some(b) = bias {
                        out.push((name("bias"), b.dims().to_vec(), b.to_data()));
                    }
                }
                LayerParams::Linear { weight, bias } => {
                    out.push((name("weight"), weight.dims().to_vec(), weight.to_data()));
                    if let Some(b) = bias {
                        out.push((name("bias"), b.dims().to_vec(), b.to_data()));
                    }
                }
                LayerParams::BatchNorm { gamma, beta, .. } => {
                    out.push((name("gamma"), gamma.dims().to_vec(), gamma.to_data()));
                    out.push((name("beta"), beta.dims().to_vec(), beta.to_data()));
                }
            }
        }
        out
    }

    /// Check every tensor's shape against the IR; returns the first mismatch.
    pub fn check_shapes(&self, net: &Net) -> Result<(), ShapeMismatch> {
        if self.layers.len() != net.nodes.len() {
            return Err(ShapeMismatch(format!(
                "{} layers for {} IR nodes",
                self.layers.len(),
                net.nodes.len()
            )));
        }
        let live = net.reaches_output();
        for (i, (layer, node)) in self.layers.iter().zip(&net.nodes).enumerate() {
            let want_w = node.op.weight_shape();
            let bad = |what: &str, got: Vec<usize>, want: Vec<usize>| {
                Err(ShapeMismatch(format!(
                    "node {i} '{}': {what} shape {got:?}, IR wants {want:?}",
                    node.name
                )))
            };
            match (layer, &node.op) {
                (LayerParams::None, op) if !op.has_params() || !live[i] => {}
                (LayerParams::Conv { weight, bias }, Op::Conv { cout, bias: hb, .. }) => {
                    let w = want_w.unwrap_or_default();
                    if weight.dims().to_vec() != w {
                        return bad("weight", weight.dims().to_vec(), w);
                    }
                    if bias.as_ref().map(|b| b.dims()[0]) != hb.then_some(*cout) {
                        return bad(
                            "bias",
                            bias.as_ref().map(|b| b.dims().to_vec()).unwrap_or_default(),
                            vec![*cout],
                        );
                    }
                }
                (LayerParams::Linear { weight, bias }, Op::Linear { cout, bias: hb, .. }) => {
                    let w = want_w.unwrap_or_default();
                    if weight.dims().to_vec() != w {
                        return bad("weight", weight.dims().to_vec(), w);
                    }
                    if bias.as_ref().map(|b| b.dims()[0]) != hb.then_some(*cout) {
                        return bad(
                            "bias",
                            bias.as_ref().map(|b| b.dims().to_vec()).unwrap_or_default(),
                            vec![*cout],
                        );
                    }
                }
                (LayerParams::BatchNorm { gamma, beta, .. }, Op::BatchNorm { channels }) => {
                    if gamma.dims() != [*channels] || beta.dims() != [*channels] {
                        return bad("gamma/beta", gamma.dims().to_vec(), vec![*channels]);
                    }
                }
                (_, op) => {
                    return Err(ShapeMismatch(format!(
                        "node {i} '{}': parameters do not fit op {}",
                        node.name,
                        op.type_name()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Apply `f` to every trainable tensor (weights, biases, γ, β) in [`ParamSet::tensors`]
    /// order; running statistics are kept as they are.
    pub fn map(self, f: &mut impl TensorMap) -> ParamSet {
        let layers = self
            .layers
            .into_iter()
            .map(|l| match l {
                LayerParams::None => LayerParams::None,
                LayerParams::Conv { weight, bias } => LayerParams::Conv {
                    weight: f.map(weight),
                    bias: bias.map(|b| f.map(b)),
                },
                LayerParams::Linear { weight, bias } => LayerParams::Linear {
                    weight: f.map(weight),
                    bias: bias.map(|b| f.map(b)),
                },
                LayerParams::BatchNorm {
                    gamma,
                    beta,
                    running,
                } => LayerParams::BatchNorm {
                    gamma: f.map(gamma),
                    beta: f.map(beta),
                    running,
                },
            })
            .collect();
        ParamSet { layers }
    }

    /// The same values off the autodiff graph, so evaluation records no tape (trained or
    /// GHN-predicted parameters live on an autodiff device).
    pub fn without_autodiff(self) -> ParamSet {
        struct Inner;
        impl TensorMap for Inner {
            fn map<const D: usize>(&mut self, t: Tensor<D>) -> Tensor<D> {
                t.inner()
            }
        }
        let mut p = self.map(&mut Inner);
        for l in &mut p.layers {
            if let LayerParams::BatchNorm {
                running: Some((m, v)),
                ..
            } = l
            {
                *m = m.clone().inner();
                *v = v.clone().inner();
            }
        }
        p
    }

    /// The same values as fresh trainable leaves on the autodiff version of their device (to
    /// train parameters a GHN predicted, without training the GHN).
    pub fn into_trainable(self) -> ParamSet {
        struct Leaf;
        impl TensorMap for Leaf {
            fn map<const D: usize>(&mut self, t: Tensor<D>) -> Tensor<D> {
                t.inner().autodiff().require_grad()
            }
        }
        self.map(&mut Leaf)
    }

    /// All trainable tensors (for a plain-training optimiser or gradient checks).
    pub fn tensors(&self) -> Vec<TensorRef<'_>> {
        let mut out = Vec::new();
        for l in &self.layers {
            match l {
                LayerParams::None => {}
                LayerParams::Conv { weight, bias } => {
                    out.push(TensorRef::D4(weight));
                    out.extend(bias.iter().map(TensorRef::D1));
                }
                LayerParams::Linear { weight, bias } => {
                    out.push(TensorRef::D2(weight));
                    out.extend(bias.iter().map(TensorRef::D1));
                }
                LayerParams::BatchNorm { gamma, beta, .. } => {
                    out.push(TensorRef::D1(gamma));
                    out.push(TensorRef::D1(beta));
                }
            }
        }
        out
    }

    /// Every trainable tensor's values on the host, in [`ParamSet::tensors`] order. Tests that
    /// check two training engines land on the same parameters compare these; one definition
    /// here keeps their comparisons in the same order.
    pub fn tensor_values(&self) -> Vec<Vec<f32>> {
        use crate::train::host_values;
        self.tensors()
            .into_iter()
            .map(|t| match t {
                TensorRef::D1(t) => host_values(t),
                TensorRef::D2(t) => host_values(t),
                TensorRef::D4(t) => host_values(t),
            })
            .collect()
    }
}

/// A tensor transformation of any rank (closures cannot be generic over the rank).
pub trait TensorMap {
    /// Transform one tensor.
    fn map<const D: usize>(&mut self, t: Tensor<D>) -> Tensor<D>;
}

/// A borrowed parameter tensor of any rank.
#[derive(Debug, Clone, Copy)]
pub enum TensorRef<'a> {
    /// Rank 1 (biases, BN parameters).
    D1(&'a Tensor<1>),
    /// Rank 2 (linear weights).
    D2(&'a Tensor<2>),
    /// Rank 4 (conv weights).
    D4(&'a Tensor<4>),
}

/// Parameters that do not fit their net: the first tensor whose shape the IR does not want.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShapeMismatch(pub String);

/// Why a parameter file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ParamsFileError {
    /// Reading or writing the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a safetensors file, or a tensor the format refuses.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: safetensors::SafeTensorError,
    },
    /// The file does not hold this net's parameters.
    #[error("{path}: tensor {name}: {what}")]
    Tensor {
        /// The file.
        path: std::path::PathBuf,
        /// The tensor (`named_tensors` name).
        name: String,
        /// What is wrong with it.
        what: String,
    },
}

impl ParamSet {
    /// Write every tensor as float32 in the safetensors format (`named_tensors` names, PyTorch
    /// layouts), readable by `safetensors`/PyTorch and by [`ParamSet::load_safetensors`];
    /// atomically (a crash leaves the old file or the new one).
    pub fn save_safetensors(
        &self,
        net: &Net,
        path: &std::path::Path,
    ) -> Result<(), ParamsFileError> {
        let format = |source| ParamsFileError::Format {
            path: path.to_path_buf(),
            source,
        };
        let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .named_tensors(net)
            .into_iter()
            .map(|(name, shape, data)| {
                let v = data
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .unwrap_or_default();
                (
                    name,
                    shape,
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                )
            })
            .collect();
        let views = tensors
            .iter()
            .map(|(name, shape, bytes)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(format)?;
        let bytes = safetensors::serialize(views, None).map_err(format)?;
        crate::atomic::write(path, &bytes).map_err(|source| ParamsFileError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Read a file written by [`ParamSet::save_safetensors`] for the same net (every tensor
    /// present, float32, with this net's shape).
    pub fn load_safetensors(
        net: &Net,
        path: &std::path::Path,
        device: &Device,
    ) -> Result<ParamSet, ParamsFileError> {
        let bytes = std::fs::read(path).map_err(|source| ParamsFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|source| {
            ParamsFileError::Format {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let get = |name: String, shape: &[usize]| -> Result<Vec<f32>, ParamsFileError> {
            let bad = |what: String| ParamsFileError::Tensor {
                path: path.to_path_buf(),
                name: name.clone(),
                what,
            };
            let t = st.tensor(&name).map_err(|e| bad(e.to_string()))?;
            if t.dtype() != safetensors::Dtype::F32 {
                return Err(bad(format!("dtype {:?}, float32 expected", t.dtype())));
            }
            if t.shape() != shape {
                return Err(bad(format!("shape {:?}, the net has {shape:?}", t.shape())));
            }
            Ok(t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let mut ps = ParamSet::init_random(net, device);
        for (i, (layer, node)) in ps.layers.iter_mut().zip(&net.nodes).enumerate() {
            let name = |t: &str| format!("{i}.{}.{t}", node.name);
            let t1 =
                |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), device);
            match layer {
                LayerParams::None => {}
                LayerParams::Conv { weight, bias } => {
                    let d = weight.dims();
                    *weight =
                        Tensor::from_data(TensorData::new(get(name("weight"), &d)?, d), device);
                    if let Some(b) = bias {
                        *b = t1(get(name("bias"), &b.dims())?);
                    }
                }
                LayerParams::Linear { weight, bias } => {
                    let d = weight.dims();
                    *weight =
                        Tensor::from_data(TensorData::new(get(name("weight"), &d)?, d), device);
                    if let Some(b) = bias {
                        *b = t1(get(name("bias"), &b.dims())?);
                    }
                }
                LayerParams::BatchNorm { gamma, beta, .. } => {
                    *gamma = t1(get(name("gamma"), &gamma.dims())?);
                    *beta = t1(get(name("beta"), &beta.dims())?);
                }
            }
        }
        Ok(ps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ImageShape;
    use crate::sources::random_small_net;
    use rand::SeedableRng;

    fn values(p: &ParamSet, net: &Net) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        p.named_tensors(net)
            .into_iter()
            .map(|(n, s, d)| (n, s, d.convert::<f32>().try_to_vec::<f32>().unwrap()))
            .collect()
    }

    /// A seed gives the same parameters every time (and burn's generator is not touched), within
    /// PyTorch's default bounds; another seed gives others.
    #[test]
    fn seeded_initialisation_is_reproducible_and_bounded() {
        let dev = Device::flex();
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let net = random_small_net(&mut rng, ImageShape { h: 8, w: 8, c: 3 }, 10, "s");
        let a = values(&ParamSet::init_random_seeded(&net, 1, &dev), &net);
        assert_eq!(
            a,
            values(&ParamSet::init_random_seeded(&net, 1, &dev), &net)
        );
        assert_ne!(
            a,
            values(&ParamSet::init_random_seeded(&net, 2, &dev), &net)
        );
        let default = values(&ParamSet::init_random(&net, &dev), &net);
        for ((name, shape, v), (_, dshape, _)) in a.iter().zip(&default) {
            assert_eq!(shape, dshape, "{name}");
            if name.ends_with("weight") {
                let fan_in: usize = shape[1..].iter().product();
                let bound = 1.0 / (fan_in as f32).sqrt();
                assert!(v.iter().all(|x| x.abs() <= bound), "{name}");
            }
        }
    }

    /// Written and read back, every tensor is the same; a file of another net, or not a
    /// safetensors file, is refused with the tensor or the reason.
    #[test]
    fn parameter_files_round_trip_and_refuse_other_nets() {
        let dev = Device::flex();
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let shape = ImageShape { h: 8, w: 8, c: 3 };
        let net = random_small_net(&mut rng, shape, 10, "a");
        let params = ParamSet::init_random_seeded(&net, 4, &dev);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.safetensors");
        params.save_safetensors(&net, &path).unwrap();
        let back = ParamSet::load_safetensors(&net, &path, &dev).unwrap();
        assert_eq!(values(&back, &net), values(&params, &net));
        let other = loop {
            let n = random_small_net(&mut rng, shape, 10, "b");
            if n.nodes
                .iter()
                .map(|v| &v.op)
                .ne(net.nodes.iter().map(|v| &v.op))
            {
                break n;
            }
        };
        let err = ParamSet::load_safetensors(&other, &path, &dev).unwrap_err();
        assert!(matches!(err, ParamsFileError::Tensor { .. }), "{err}");
        std::fs::write(&path, b"not safetensors").unwrap();
        let err = ParamSet::load_safetensors(&net, &path, &dev).unwrap_err();
        assert!(matches!(err, ParamsFileError::Format { .. }), "{err}");
    }
}

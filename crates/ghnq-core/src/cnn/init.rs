//! The twelve weight initialisers of the random-initialisation study (seed paper §2.3 and §3):
//! three naive uniform and three naive normal ranges, Glorot and He in both flavours, and the
//! "modified" Glorot uniform of Eq. 8 with C = 36 and C = 1296.
//!
//! Fan-in and fan-out follow Eq. 7 on this crate's (PyTorch) layouts: a conv weight
//! `(O, I/g, k, k)` has `fan_in = k·k·(I/g)` and `fan_out = k·k·O`; a linear weight `(O, I)` has
//! `fan_in = I`, `fan_out = O`. For regular convs this is also what Keras computes. For a
//! depthwise conv Keras (the paper's framework) swaps the two (its kernel is `(k, k, C, 1)`:
//! `fan_in = k·k·C`, `fan_out = k·k`); Glorot's `fan_in + fan_out` is the same either way, He's
//! `fan_in` is not.
//!
//! The normal flavours of Glorot and He are Keras's (`glorot_normal`, `he_normal`): a normal
//! truncated at two standard deviations and rescaled so that the variance is exactly
//! `2/(fan_in + fan_out)` resp. `2/fan_in`. The naive `RandNorm` ranges are plain normals
//! (Keras `RandomNormal`).
//!
//! As in the paper, only the convolutions after the first one get the studied initialiser: the
//! first conv and every dense layer are always Glorot uniform. Biases start at zero and BatchNorm
//! at γ = 1, β = 0 (Keras defaults).

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::params::{LayerParams, ParamSet};
use crate::arch::{Net, Op};

/// A weight initialiser of the study, named as in the paper's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Initializer {
    /// U[−0.25, 0.25].
    RandUniSmall,
    /// U[−0.5, 0.5].
    RandUniMed,
    /// U[−1, 1].
    RandUniLarge,
    /// N(0, 0.1²).
    RandNormSmall,
    /// N(0, 0.5²).
    RandNormMed,
    /// N(0, 1).
    RandNormLarge,
    /// U[±√(6/(fan_in + fan_out))] (Glorot & Bengio).
    GlorotUni,
    /// Truncated normal with variance 2/(fan_in + fan_out).
    GlorotNorm,
    /// U[±√(6/fan_in)] (He et al.).
    HeUni,
    /// Truncated normal with variance 2/fan_in.
    HeNorm,
    /// Eq. 8 with C = 36: U[±√(36/(fan_in + fan_out))].
    ModGlorotUniMed,
    /// Eq. 8 with C = 1296: U[±√(1296/(fan_in + fan_out))].
    ModGlorotUniLarge,
}

/// Fan-in and fan-out of a weight tensor (Eq. 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fans {
    /// Inputs each output unit sums over.
    pub fan_in: usize,
    /// Outputs each input unit feeds (the PyTorch/Eq. 7 count `k·k·O` for convs).
    pub fan_out: usize,
}

impl Fans {
    /// A conv weight `(cout, cin_per_group, k, k)`: `fan_in = k·k·cin_per_group`,
    /// `fan_out = k·k·cout`.
    pub fn conv(cout: usize, cin_per_group: usize, kernel: usize) -> Fans {
        let rf = kernel * kernel;
        Fans {
            fan_in: rf * cin_per_group,
            fan_out: rf * cout,
        }
    }

    /// A linear weight `(cout, cin)`.
    pub fn linear(cin: usize, cout: usize) -> Fans {
        Fans {
            fan_in: cin,
            fan_out: cout,
        }
    }

    /// From a PyTorch-layout weight shape: `(O, I)` or `(O, I/g, k, k)` (any trailing kernel
    /// dims multiply in as the receptive field).
    pub fn of_shape(shape: &[usize]) -> Fans {
        match shape {
            [] => Fans {
                fan_in: 1,
                fan_out: 1,
            },
            [n] => Fans {
                fan_in: *n,
                fan_out: *n,
            },
            [o, i, rest @ ..] => {
                let rf: usize = rest.iter().product();
                Fans {
                    fan_in: i * rf,
                    fan_out: o * rf,
                }
            }
        }
    }
}

/// A sampling distribution, centred at 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    /// U[−bound, bound].
    Uniform {
        /// Half-width.
        bound: f64,
    },
    /// N(0, std²).
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// A normal N(0, σ²) truncated (by resampling) to [−2σ, 2σ], with σ chosen so that the
    /// result has standard deviation `std` (Keras's `truncated_normal` variance scaling).
    TruncatedNormal {
        /// Standard deviation of the truncated result.
        std: f64,
    },
}

/// Standard deviation of a unit normal truncated to [−2, 2] (Keras's constant).
pub const TRUNCATED_STD: f64 = 0.879_625_661_034_239_8;

impl Dist {
    /// The variance of a draw.
    pub fn variance(&self) -> f64 {
        match *self {
            Dist::Uniform { bound } => bound * bound / 3.0,
            Dist::Normal { std } | Dist::TruncatedNormal { std } => std * std,
        }
    }

    /// The largest magnitude a draw can have (`None` for a plain normal).
    pub fn bound(&self) -> Option<f64> {
        match *self {
            Dist::Uniform { bound } => Some(bound),
            Dist::Normal { .. } => None,
            Dist::TruncatedNormal { std } => Some(2.0 * std / TRUNCATED_STD),
        }
    }

    /// `n` independent draws.
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Vec<f32> {
        match *self {
            Dist::Uniform { bound } => (0..n)
                .map(|_| (rng.random::<f64>() * 2.0 - 1.0) * bound)
                .map(|v| v as f32)
                .collect(),
            Dist::Normal { std } => (0..n).map(|_| (std * std_normal(rng)) as f32).collect(),
            Dist::TruncatedNormal { std } => {
                let sigma = std / TRUNCATED_STD;
                (0..n)
                    .map(|_| {
                        loop {
                            let z = std_normal(rng);
                            if z.abs() <= 2.0 {
                                break (sigma * z) as f32;
                            }
                        }
                    })
                    .collect()
            }
        }
    }
}

/// One N(0, 1) draw (Box–Muller; `1 − u` keeps the logarithm finite).
fn std_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl Initializer {
    /// All twelve, in the paper's order (naive uniform, naive normal, layer-aware, modified).
    pub const ALL: [Initializer; 12] = [
        Initializer::RandUniSmall,
        Initializer::RandUniMed,
        Initializer::RandUniLarge,
        Initializer::RandNormSmall,
        Initializer::RandNormMed,
        Initializer::RandNormLarge,
        Initializer::GlorotUni,
        Initializer::GlorotNorm,
        Initializer::HeUni,
        Initializer::HeNorm,
        Initializer::ModGlorotUniMed,
        Initializer::ModGlorotUniLarge,
    ];

    /// All twelve, in the paper's order.
    pub fn all() -> [Initializer; 12] {
        Self::ALL
    }

    /// The name used in tables and file names (`RandUni_Large`, `ModGlorotUni_Med`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Initializer::RandUniSmall => "RandUni_Small",
            Initializer::RandUniMed => "RandUni_Med",
            Initializer::RandUniLarge => "RandUni_Large",
            Initializer::RandNormSmall => "RandNorm_Small",
            Initializer::RandNormMed => "RandNorm_Med",
            Initializer::RandNormLarge => "RandNorm_Large",
            Initializer::GlorotUni => "GlorotUni",
            Initializer::GlorotNorm => "GlorotNorm",
            Initializer::HeUni => "HeUni",
            Initializer::HeNorm => "HeNorm",
            Initializer::ModGlorotUniMed => "ModGlorotUni_Med",
            Initializer::ModGlorotUniLarge => "ModGlorotUni_Large",
        }
    }

    /// Eq. 8's constant C of the Glorot-uniform family (6 for Glorot's own), if this is one.
    pub fn glorot_c(self) -> Option<f64> {
        match self {
            Initializer::GlorotUni => Some(6.0),
            Initializer::ModGlorotUniMed => Some(36.0),
            Initializer::ModGlorotUniLarge => Some(1296.0),
            _ => None,
        }
    }

    /// The distribution of a weight with these fans.
    pub fn dist(self, fans: Fans) -> Dist {
        let sum = (fans.fan_in + fans.fan_out).max(1) as f64;
        let fan_in = fans.fan_in.max(1) as f64;
        match self {
            Initializer::RandUniSmall => Dist::Uniform { bound: 0.25 },
            Initializer::RandUniMed => Dist::Uniform { bound: 0.5 },
            Initializer::RandUniLarge => Dist::Uniform { bound: 1.0 },
            Initializer::RandNormSmall => Dist::Normal { std: 0.1 },
            Initializer::RandNormMed => Dist::Normal { std: 0.5 },
            Initializer::RandNormLarge => Dist::Normal { std: 1.0 },
            Initializer::GlorotNorm => Dist::TruncatedNormal {
                std: (2.0 / sum).sqrt(),
            },
            Initializer::HeUni => Dist::Uniform {
                bound: (6.0 / fan_in).sqrt(),
            },
            Initializer::HeNorm => Dist::TruncatedNormal {
                std: (2.0 / fan_in).sqrt(),
            },
            Initializer::GlorotUni
            | Initializer::ModGlorotUniMed
            | Initializer::ModGlorotUniLarge => Dist::Uniform {
                bound: (self.glorot_c().expect("Glorot family") / sum).sqrt(),
            },
        }
    }
}

impl fmt::Display for Initializer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Lower-case, without `_`, `-` and spaces, and with `medium` spelled `med`.
fn canonical(s: &str) -> String {
    s.trim()
        .to_ascii_lowercase()
        .replace(['_', '-', ' '], "")
        .replace("medium", "med")
}

impl FromStr for Initializer {
    type Err = String;

    /// The table name, case-insensitive, with or without `_` (`glorotuni`, `He_Uni`,
    /// `randuni_medium`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let want = canonical(s);
        Initializer::ALL
            .into_iter()
            .find(|i| canonical(i.name()) == want)
            .ok_or_else(|| {
                let names: Vec<&str> = Initializer::ALL.iter().map(|i| i.name()).collect();
                format!(
                    "unknown initialiser '{s}': one of {} (or all)",
                    names.join(", ")
                )
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

fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    leaf(Tensor::from_data(TensorData::new(values, shape), device))
}

/// Which initialiser each weighted node gets: the first conv (in node order) and every linear
/// layer are Glorot uniform, the other convs `init`; `None` for nodes without weights.
pub fn assignment(net: &Net, init: Initializer) -> Vec<Option<Initializer>> {
    let first_conv = net
        .nodes
        .iter()
        .position(|n| matches!(n.op, Op::Conv { .. }));
    net.nodes
        .iter()
        .enumerate()
        .map(|(i, n)| match n.op {
            Op::Conv { .. } if Some(i) == first_conv => Some(Initializer::GlorotUni),
            Op::Conv { .. } => Some(init),
            Op::Linear { .. } => Some(Initializer::GlorotUni),
            _ => None,
        })
        .collect()
}

/// Parameters of `net` initialised for the study with `init` (see the module docs), drawn from a
/// ChaCha8 stream seeded by `seed`, so a (net, initialiser, seed) triple always gives the same
/// values on any device. Tensors are trainable leaves on autodiff devices.
pub fn init_params(net: &Net, init: Initializer, seed: u64, device: &Device) -> ParamSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let plan = assignment(net, init);
    let layers = net
        .nodes
        .iter()
        .zip(plan)
        .map(|(node, which)| match (&node.op, which) {
            (
                &Op::Conv {
                    kernel,
                    groups,
                    cin,
                    cout,
                    bias,
                    ..
                },
                Some(which),
            ) => {
                let ipg = cin / groups.max(1);
                let fans = Fans::conv(cout, ipg, kernel);
                let shape = [cout, ipg, kernel, kernel];
                let values = which.dist(fans).sample(shape.iter().product(), &mut rng);
                LayerParams::Conv {
                    weight: tensor(values, shape, device),
                    bias: bias.then(|| tensor(vec![0.0; cout], [cout], device)),
                }
            }
            (&Op::Linear { cin, cout, bias }, Some(which)) => {
                let values = which
                    .dist(Fans::linear(cin, cout))
                    .sample(cin * cout, &mut rng);
                LayerParams::Linear {
                    weight: tensor(values, [cout, cin], device),
                    bias: bias.then(|| tensor(vec![0.0; cout], [cout], device)),
                }
            }
            (&Op::BatchNorm { channels }, _) => LayerParams::BatchNorm {
                gamma: tensor(vec![1.0; channels], [channels], device),
                beta: tensor(vec![0.0; channels], [channels], device),
                running: None,
            },
            _ => LayerParams::None,
        })
        .collect();
    ParamSet { layers }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ImageShape;
    use crate::arch::predefined::by_name;
    use crate::train::host_values;

    /// Mean, variance, max |x|, and excess kurtosis of `v`.
    fn moments(v: &[f32]) -> (f64, f64, f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        let m4 = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(4))
            .sum::<f64>()
            / n;
        let peak = v.iter().fold(0f64, |m, &x| m.max(f64::from(x).abs()));
        (mean, var, peak, m4 / (var * var) - 3.0)
    }

    /// The expected (variance, bound or None, excess kurtosis) of each initialiser, computed by
    /// hand from its definition rather than from [`Initializer::dist`].
    fn expected(init: Initializer, f: Fans) -> (f64, Option<f64>, f64) {
        let (fi, fo) = (f.fan_in as f64, f.fan_out as f64);
        // Uniform U[−b, b]: variance b²/3, excess kurtosis −1.2. Normal: excess kurtosis 0.
        let uni = |b: f64| (b * b / 3.0, Some(b), -1.2);
        let trunc = |var: f64| {
            (
                var,
                Some(2.0 * var.sqrt() / 0.879_625_661_034_239_8),
                TRUNC_EXCESS_KURTOSIS,
            )
        };
        match init {
            Initializer::RandUniSmall => uni(0.25),
            Initializer::RandUniMed => uni(0.5),
            Initializer::RandUniLarge => uni(1.0),
            Initializer::RandNormSmall => (0.01, None, 0.0),
            Initializer::RandNormMed => (0.25, None, 0.0),
            Initializer::RandNormLarge => (1.0, None, 0.0),
            Initializer::GlorotUni => uni((6.0 / (fi + fo)).sqrt()),
            Initializer::GlorotNorm => trunc(2.0 / (fi + fo)),
            Initializer::HeUni => uni((6.0 / fi).sqrt()),
            Initializer::HeNorm => trunc(2.0 / fi),
            Initializer::ModGlorotUniMed => uni((36.0 / (fi + fo)).sqrt()),
            Initializer::ModGlorotUniLarge => uni((1296.0 / (fi + fo)).sqrt()),
        }
    }

    /// Excess kurtosis of a unit normal truncated to [−a, a], a = 2. With φ = φ(a) and
    /// P = Φ(a) − Φ(−a), integration by parts gives E[z²] = 1 − 2aφ/P and
    /// E[z⁴] = 3 − 2(a³ + 3a)φ/P.
    const TRUNC_EXCESS_KURTOSIS: f64 = {
        // φ(2) = e^(−2)/√(2π).
        let phi = 0.053_990_966_513_188_06;
        let p = 0.954_499_736_103_641_6;
        let m2 = 1.0 - 4.0 * phi / p;
        let m4 = 3.0 - 2.0 * (8.0 + 6.0) * phi / p;
        m4 / (m2 * m2) - 3.0
    };

    #[test]
    fn every_initializer_draws_from_the_distribution_it_names() {
        // A conv (64, 32, 3, 3): fan_in 288, fan_out 576 (Eq. 7).
        let fans = Fans::conv(64, 32, 3);
        assert_eq!((fans.fan_in, fans.fan_out), (288, 576));
        let n = 400_000;
        for (k, init) in Initializer::ALL.into_iter().enumerate() {
            let mut rng = ChaCha8Rng::seed_from_u64(k as u64);
            let v = init.dist(fans).sample(n, &mut rng);
            let (mean, var, peak, kurt) = moments(&v);
            let (want_var, want_bound, want_kurt) = expected(init, fans);
            let sd = want_var.sqrt();
            // Mean: within 5 standard errors; variance within 1.5 %; kurtosis within 0.05.
            assert!(
                mean.abs() < 5.0 * sd / (n as f64).sqrt(),
                "{init}: mean {mean}"
            );
            assert!(
                (var / want_var - 1.0).abs() < 0.015,
                "{init}: variance {var}, want {want_var}"
            );
            assert!(
                (kurt - want_kurt).abs() < 0.05,
                "{init}: excess kurtosis {kurt}, want {want_kurt}"
            );
            match want_bound {
                // Bounded: never beyond, and the extremes are reached (within 0.1 %).
                Some(b) => {
                    assert!(peak <= b * (1.0 + 1e-6), "{init}: |x| {peak} > {b}");
                    assert!(peak > 0.999 * b, "{init}: |x| only reaches {peak} of {b}");
                    assert_eq!(
                        init.dist(fans).bound().map(|x| (x / b - 1.0).abs() < 1e-12),
                        Some(true)
                    );
                }
                // A normal of 400k draws reaches beyond 4σ.
                None => assert!(peak > 4.0 * sd, "{init}: max |x| {peak}"),
            }
            assert!(
                (init.dist(fans).variance() / want_var - 1.0).abs() < 1e-12,
                "{init}"
            );
        }
    }

    #[test]
    fn fans_follow_eq_7() {
        // Regular conv (O, I, k, k).
        assert_eq!(
            Fans::conv(128, 64, 3),
            Fans {
                fan_in: 576,
                fan_out: 1152
            }
        );
        // Depthwise (C, 1, k, k): fan_in k·k, fan_out k·k·C.
        assert_eq!(
            Fans::conv(32, 1, 3),
            Fans {
                fan_in: 9,
                fan_out: 288
            }
        );
        // Pointwise and linear.
        assert_eq!(
            Fans::conv(64, 32, 1),
            Fans {
                fan_in: 32,
                fan_out: 64
            }
        );
        assert_eq!(
            Fans::linear(128, 10),
            Fans {
                fan_in: 128,
                fan_out: 10
            }
        );
        assert_eq!(Fans::of_shape(&[64, 32, 3, 3]), Fans::conv(64, 32, 3));
        assert_eq!(Fans::of_shape(&[10, 128]), Fans::linear(128, 10));
    }

    #[test]
    fn mod_glorot_is_eq_8() {
        // fan_in + fan_out = 9·32 + 9·64 = 864.
        let f = Fans::conv(64, 32, 3);
        let b = |i: Initializer| i.dist(f).bound().unwrap();
        assert!((b(Initializer::GlorotUni) - (6.0f64 / 864.0).sqrt()).abs() < 1e-15);
        assert!((b(Initializer::ModGlorotUniMed) - (36.0f64 / 864.0).sqrt()).abs() < 1e-15);
        assert!((b(Initializer::ModGlorotUniLarge) - (1296.0f64 / 864.0).sqrt()).abs() < 1e-15);
        // C = 36 = 6·6 and 1296 = 6·216: √6 and √216 = 6√6 times Glorot's range.
        assert!(
            (b(Initializer::ModGlorotUniMed) / b(Initializer::GlorotUni) - 6f64.sqrt()).abs()
                < 1e-12
        );
        assert!(
            (b(Initializer::ModGlorotUniLarge) / b(Initializer::GlorotUni) - 6.0 * 6f64.sqrt())
                .abs()
                < 1e-12
        );
        // He: fan_in only.
        assert!((b(Initializer::HeUni) - (6.0f64 / 288.0).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn names_parse_and_print() {
        for i in Initializer::all() {
            assert_eq!(i.to_string().parse::<Initializer>(), Ok(i));
            assert_eq!(i.name().to_lowercase().parse::<Initializer>(), Ok(i));
        }
        assert_eq!("He_Uni".parse(), Ok(Initializer::HeUni));
        assert_eq!("randuni-medium".parse(), Ok(Initializer::RandUniMed));
        assert_eq!(
            "ModGlorotUni_Large".parse(),
            Ok(Initializer::ModGlorotUniLarge)
        );
        let e = "Orthogonal".parse::<Initializer>().unwrap_err();
        assert!(e.contains("GlorotUni") && e.contains("Orthogonal"), "{e}");
        let mut names: Vec<&str> = Initializer::ALL.iter().map(|i| i.name()).collect();
        names.dedup();
        assert_eq!(names.len(), 12);
    }

    #[test]
    fn first_conv_and_dense_layers_are_glorot_uniform() {
        let dev = Device::flex();
        let net = by_name("DWS_Conv_With_BN", ImageShape::FASHION_MNIST, 10)
            .unwrap()
            .unwrap();
        let p = init_params(&net, Initializer::RandUniLarge, 5, &dev);
        p.check_shapes(&net).unwrap();
        let plan = assignment(&net, Initializer::RandUniLarge);
        let mut first = true;
        let (mut convs, mut linears, mut bns) = (0, 0, 0);
        for ((node, layer), which) in net.nodes.iter().zip(&p.layers).zip(&plan) {
            match (&node.op, layer) {
                (Op::Conv { .. }, LayerParams::Conv { weight, bias }) => {
                    let want = if first {
                        Initializer::GlorotUni
                    } else {
                        Initializer::RandUniLarge
                    };
                    first = false;
                    assert_eq!(*which, Some(want), "{}", node.name);
                    let bound = want.dist(Fans::of_shape(&weight.dims())).bound().unwrap();
                    let v = host_values(weight);
                    let peak = v.iter().fold(0f32, |m, &x| m.max(x.abs()));
                    assert!(
                        f64::from(peak) <= bound && f64::from(peak) > 0.5 * bound,
                        "{}",
                        node.name
                    );
                    assert!(bias.is_none(), "BN nets' convs have no bias");
                    convs += 1;
                }
                (Op::Linear { .. }, LayerParams::Linear { weight, bias }) => {
                    assert_eq!(*which, Some(Initializer::GlorotUni));
                    let bound = Initializer::GlorotUni
                        .dist(Fans::of_shape(&weight.dims()))
                        .bound()
                        .unwrap();
                    let peak = host_values(weight)
                        .iter()
                        .fold(0f32, |m, &x| m.max(x.abs()));
                    assert!(f64::from(peak) <= bound);
                    assert!(
                        host_values(bias.as_ref().unwrap())
                            .iter()
                            .all(|&b| b == 0.0)
                    );
                    linears += 1;
                }
                (
                    Op::BatchNorm { .. },
                    LayerParams::BatchNorm {
                        gamma,
                        beta,
                        running,
                    },
                ) => {
                    assert!(host_values(gamma).iter().all(|&g| g == 1.0));
                    assert!(host_values(beta).iter().all(|&b| b == 0.0));
                    assert!(running.is_none());
                    bns += 1;
                }
                (op, LayerParams::None) => assert!(!op.has_params(), "{}", node.name),
                _ => panic!("{}: parameters of the wrong kind", node.name),
            }
        }
        assert_eq!((convs, linears), (9, 2));
        assert_eq!(bns, 9);
        // No-BN nets: conv biases start at zero.
        let net = by_name("Regular_Conv_No_BN", ImageShape::FASHION_MNIST, 10)
            .unwrap()
            .unwrap();
        let p = init_params(&net, Initializer::HeNorm, 1, &dev);
        for l in &p.layers {
            if let LayerParams::Conv { bias, .. } = l {
                assert!(
                    host_values(bias.as_ref().unwrap())
                        .iter()
                        .all(|&b| b == 0.0)
                );
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_values() {
        let dev = Device::flex();
        let net = by_name("Regular_Conv_No_BN", ImageShape::FASHION_MNIST, 10)
            .unwrap()
            .unwrap();
        let a = init_params(&net, Initializer::GlorotNorm, 9, &dev).named_tensors(&net);
        let b = init_params(&net, Initializer::GlorotNorm, 9, &dev).named_tensors(&net);
        let c = init_params(&net, Initializer::GlorotNorm, 10, &dev).named_tensors(&net);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}

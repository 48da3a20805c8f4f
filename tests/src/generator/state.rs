//! The generator's state (builder, tensors so far, calibration values, coverage, description)
//! and what every op shares: drawing activation specs and clamps, emitting an op, picking the next.

use std::fmt::Write as _;

use shared_format::{BuildError, Clamp, ModelBuilder, Op, Rounding, Shape, TensorId, TensorSpec};

use super::{Features, GenConfig, Rng, random_input, range_of};

pub(super) struct Gen {
    pub(super) rng: Rng,
    pub(super) config: GenConfig,
    pub(super) b: ModelBuilder,
    pub(super) rounding: Rounding,
    /// Every tensor produced so far (including the input), with its spec.
    pub(super) tensors: Vec<(TensorId, TensorSpec)>,
    pub(super) current: TensorId,
    pub(super) features: Features,
    pub(super) desc: String,
    /// The calibration input and every tensor's values on it (what a host calibrates on).
    pub(super) input: Vec<i8>,
    pub(super) values: Vec<Vec<i8>>,
}

impl Gen {
    pub(super) fn new(seed: u64, config: GenConfig) -> Self {
        let mut rng = Rng::new(seed);
        let rounding = if rng.chance(0.5) {
            Rounding::Double
        } else {
            Rounding::Single
        };
        let shape = Shape::new(
            rng.range(1, config.max_spatial as i64) as u16,
            rng.range(1, config.max_spatial as i64) as u16,
            rng.range(1, 4) as u16,
        );
        let input = Self::act_spec_with(&mut rng, shape);
        let mut b = ModelBuilder::new(input, 0.05);
        b.rounding(rounding);
        let mut features = Features::default();
        features.rounding.insert(match rounding {
            Rounding::Double => "double",
            Rounding::Single => "single",
        });
        features.act_bits.insert(input.bits);
        let desc = format!(
            "seed {seed:#x}: {rounding:?} rounding, input {}x{}x{} a{} z{}\n",
            shape.h, shape.w, shape.c, input.bits, input.zero_point
        );
        let values = random_input(&mut rng, input);
        Self {
            rng,
            config,
            b,
            rounding,
            tensors: vec![(0, input)],
            current: 0,
            features,
            desc,
            input: values.clone(),
            values: vec![values],
        }
    }

    pub(super) fn act_spec_with(rng: &mut Rng, shape: Shape) -> TensorSpec {
        let bits = if rng.chance(0.9) {
            rng.pick(&[2u8, 4, 8])
        } else {
            rng.range(2, 8) as u8
        };
        let (lo, hi) = range_of(bits);
        // Mostly near the middle as calibration would put it; sometimes at either extreme.
        let zero_point = match rng.below(12) {
            0..=1 => 0,
            2 => lo,
            3 => hi,
            _ => rng.range(lo / 2, hi / 2),
        } as i8;
        TensorSpec {
            shape,
            zero_point,
            bits,
        }
    }

    pub(super) fn spec(&self, id: TensorId) -> TensorSpec {
        self.b.spec(id).expect("declared tensor")
    }

    pub(super) fn clamp_for(&mut self, spec: TensorSpec) -> Clamp {
        let (lo, hi) = range_of(spec.bits);
        let z = spec.zero_point as i64;
        let (min, max) = match self.rng.below(20) {
            0..=13 => (lo, hi),
            14..=16 => (z, hi), // ReLU
            _ => (self.rng.range(lo, z), self.rng.range(z, hi)),
        };
        Clamp {
            min: min as i8,
            max: max as i8,
        }
    }

    /// Declares an output tensor, pushes the op, makes it current.
    pub(super) fn emit(
        &mut self,
        op: &Op<'_>,
        spec: TensorSpec,
        line: String,
    ) -> Result<TensorId, BuildError> {
        let id = self.b.push(op)?;
        debug_assert_eq!(self.spec(id), spec);
        // Run the partial model so later ops can be calibrated on real activations.
        let blob = self.b.finish(id, 1.0)?;
        let model = shared_format::Model::from_bytes(&blob)?;
        self.values = crate::golden::run_all(&model, &self.input).expect("valid input");
        self.tensors.push((id, spec));
        self.current = id;
        self.features.ops.insert(op.kind().name());
        self.features.act_bits.insert(spec.bits);
        let _ = writeln!(
            self.desc,
            "  t{id} = {line} -> {}x{}x{} a{} z{} clamp[{}, {}]",
            spec.shape.h,
            spec.shape.w,
            spec.shape.c,
            spec.bits,
            spec.zero_point,
            op.clamp().min,
            op.clamp().max
        );
        Ok(id)
    }

    /// Picks the input of a unary op: mostly the latest tensor, sometimes an earlier one (a
    /// branch, which keeps that tensor alive longer in the memory plan).
    fn pick_input(&mut self) -> TensorId {
        if self.rng.chance(0.75) {
            self.current
        } else {
            self.tensors[self.rng.below(self.tensors.len() as u64) as usize].0
        }
    }

    pub(super) fn step(&mut self) -> Result<(), BuildError> {
        let x = self.pick_input();
        match self.rng.below(22) {
            0..=3 => self.conv(x, None).map(drop),
            4..=5 => self.depthwise(x, None).map(drop),
            6 => self.pool(x, false, None).map(drop),
            7 => self.pool(x, true, None).map(drop),
            8 => self.global_avg_pool(x).map(drop),
            9..=10 => self.add(x).map(drop),
            11..=12 => self.concat(x).map(drop),
            13..=15 => self.linear(x).map(drop),
            16 => self.mean(x).map(drop),
            // Softmax over any tensor's channels: each position normalised on its own.
            17 => self.softmax(x).map(drop),
            18 => self.mul(x).map(drop),
            19 => self.logistic(x).map(drop),
            20 => self.hard_swish(x).map(drop),
            _ => self.table(x).map(drop),
        }
    }
}

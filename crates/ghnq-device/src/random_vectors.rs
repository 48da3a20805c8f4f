//! Test vectors for a model that comes without a data set (an imported .tflite): seeded uniform
//! int8 inputs with the host runtime's outputs. Labels are the host's top-1, so a device's
//! "top-1" against such a bundle measures agreement with the host, not accuracy.

use rand::{Rng, SeedableRng};
use shared_format::vectors::top1;
use shared_format::{Model, TestVectorsBuilder};

/// A bundle of `samples` random inputs (seeded) with the host runtime's outputs.
pub fn random_vectors(
    model: &Model<'_>,
    samples: usize,
    seed: u64,
) -> Result<Vec<u8>, crate::DeviceError> {
    let input_len = model.input_tensor().bytes() as usize;
    let output_len = model.output_tensor().bytes() as usize;
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interpreter = edge_runtime::Interpreter::new(model, &mut arena)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut b = TestVectorsBuilder::new(model.header().crc32, input_len, output_len);
    for _ in 0..samples {
        let input: Vec<i8> = (0..input_len).map(|_| rng.random()).collect();
        let output = interpreter.run(&input)?;
        let label = top1(output).min(255) as u8;
        b.push(&input, label, output)?;
    }
    Ok(b.finish()?)
}

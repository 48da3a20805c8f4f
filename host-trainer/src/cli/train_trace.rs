//! `ghnq train --trace DIR`: everything a run trains on, written as it is drawn, so that another
//! trainer can replay the same steps — ppuda's own loop in `tools/ppuda-golden/parity.py`, for
//! the learning-curve parity of issue 16. Files: `trace.json` (meta-batch, batch, image shape),
//! `nets.jsonl` (every sampled net's IR, one per line, in draw order), `images.f32` (every
//! batch's normalised, augmented images, NCHW, little-endian f32) and `labels.u8`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use ghnq_core::arch::{ImageShape, Net};
use ghnq_core::train::{ArchSource, ImageSource, LabeledBatch};

/// Creates the trace files in `dir` (which must not hold a trace already: a replay needs one
/// run's draws) and wraps the two sources so that every draw is written.
pub fn create<'a>(
    dir: &Path,
    archs: &'a mut dyn ArchSource,
    images: &'a mut dyn ImageSource,
    meta_batch: usize,
    batch: usize,
) -> Result<(TracedArchs<'a>, TracedImages<'a>)> {
    anyhow::ensure!(
        !dir.join("trace.json").exists(),
        "{} already holds a trace; give an empty directory",
        dir.display()
    );
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let shape = images.shape();
    let header = serde_json::json!({
        "meta_batch": meta_batch,
        "batch": batch,
        "image": {"h": shape.h, "w": shape.w, "c": shape.c},
        "layout": "NCHW f32 little-endian, normalised and augmented as trained on",
    });
    ghnq_core::atomic::write(&dir.join("trace.json"), header.to_string().as_bytes())?;
    let open = |name: &str| -> Result<BufWriter<File>> {
        let path = dir.join(name);
        Ok(BufWriter::new(
            File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        ))
    };
    Ok((
        TracedArchs {
            inner: archs,
            nets: open("nets.jsonl")?,
            error: None,
        },
        TracedImages {
            inner: images,
            images: open("images.f32")?,
            labels: open("labels.u8")?,
            error: None,
        },
    ))
}

/// Keeps the first write error (the sources' traits cannot return one).
fn keep(error: &mut Option<std::io::Error>, r: std::io::Result<()>) {
    if error.is_none()
        && let Err(e) = r
    {
        *error = Some(e);
    }
}

/// An architecture source whose draws are traced.
pub struct TracedArchs<'a> {
    inner: &'a mut dyn ArchSource,
    nets: BufWriter<File>,
    error: Option<std::io::Error>,
}

impl TracedArchs<'_> {
    /// Flushes the file; the first write error, if any.
    pub fn finish(mut self) -> Result<()> {
        match self.error.take() {
            Some(e) => Err(e).context("writing the trace's nets"),
            None => Ok(self.nets.flush()?),
        }
    }
}

impl ArchSource for TracedArchs<'_> {
    fn sample(&mut self) -> Net {
        let net = self.inner.sample();
        let r = serde_json::to_writer(&mut self.nets, &net)
            .map_err(std::io::Error::from)
            .and_then(|()| self.nets.write_all(b"\n"));
        keep(&mut self.error, r);
        net
    }
}

/// An image source whose batches are traced.
pub struct TracedImages<'a> {
    inner: &'a mut dyn ImageSource,
    images: BufWriter<File>,
    labels: BufWriter<File>,
    error: Option<std::io::Error>,
}

impl TracedImages<'_> {
    /// Flushes the files; the first write error, if any.
    pub fn finish(mut self) -> Result<()> {
        match self.error.take() {
            Some(e) => Err(e).context("writing the trace's images"),
            None => {
                self.images.flush()?;
                Ok(self.labels.flush()?)
            }
        }
    }
}

impl ImageSource for TracedImages<'_> {
    fn shape(&self) -> ImageShape {
        self.inner.shape()
    }

    fn next_batch(&mut self, batch: usize) -> LabeledBatch {
        let b = self.inner.next_batch(batch);
        let bytes: Vec<u8> = b.images.iter().flat_map(|v| v.to_le_bytes()).collect();
        let labels: Vec<u8> = b.labels.iter().map(|&l| l as u8).collect();
        let r = self
            .images
            .write_all(&bytes)
            .and_then(|()| self.labels.write_all(&labels));
        keep(&mut self.error, r);
        b
    }

    fn len(&self) -> usize {
        self.inner.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ghnq_core::sources::{SyntheticImages, random_small_net};
    use rand::SeedableRng;

    /// The trace holds exactly what the run drew, in order: the nets parse back to the sampled
    /// ones, and every batch's images and labels are where a replay looks for them.
    #[test]
    fn a_trace_replays_the_draws() {
        let dir = tempfile::tempdir().unwrap();
        let shape = ImageShape { h: 8, w: 8, c: 3 };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut sampled = Vec::new();
        let mut archs = || random_small_net(&mut rng, shape, 10, "t");
        let mut images = SyntheticImages::new(shape, 10, 40, 3);
        let mut batches = Vec::new();
        {
            let (mut a, mut i) = create(dir.path(), &mut archs, &mut images, 2, 5).unwrap();
            for _ in 0..3 {
                sampled.push(a.sample());
                sampled.push(a.sample());
                batches.push(i.next_batch(5));
            }
            a.finish().unwrap();
            i.finish().unwrap();
        }
        let nets = std::fs::read_to_string(dir.path().join("nets.jsonl")).unwrap();
        let back: Vec<Net> = nets.lines().map(|l| Net::from_json(l).unwrap()).collect();
        assert_eq!(back, sampled);
        let bytes = std::fs::read(dir.path().join("images.f32")).unwrap();
        let floats: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let all: Vec<f32> = batches.iter().flat_map(|b| b.images.clone()).collect();
        assert_eq!(floats, all);
        let labels = std::fs::read(dir.path().join("labels.u8")).unwrap();
        let want: Vec<u8> = batches
            .iter()
            .flat_map(|b| b.labels.iter().map(|&l| l as u8))
            .collect();
        assert_eq!(labels, want);
        let header: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("trace.json")).unwrap())
                .unwrap();
        assert_eq!(header["meta_batch"], 2);
        assert_eq!(header["image"]["c"], 3);
        // A second trace into the same directory is refused.
        let mut archs2 =
            || random_small_net(&mut rand::rngs::StdRng::seed_from_u64(2), shape, 10, "u");
        assert!(create(dir.path(), &mut archs2, &mut images, 2, 5).is_err());
    }
}

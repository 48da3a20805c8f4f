//! CIFAR-10 in its standard binary layout (`cifar-10-batches-bin`): `data_batch_1.bin` ..
//! `data_batch_5.bin` and `test_batch.bin`, each 10,000 records of 1 label byte + 3,072 pixel bytes
//! (1,024 R, 1,024 G, 1,024 B, each plane row-major 32x32). The records are already planar (CHW),
//! which is the layout [`super::Dataset`] keeps, so loading is a copy.
//!
//! The data is not shipped (no package registry carries it): a user passes `--cifar-dir` or sets
//! `GHNQ_CIFAR_DIR`, pointing at the `cifar-10-batches-bin` folder or at its parent.

use std::path::{Path, PathBuf};

use super::DataError;

/// Environment variable naming the CIFAR-10 folder.
pub const ENV_DIR: &str = "GHNQ_CIFAR_DIR";
/// Bytes per record: 1 label + 32·32·3 pixels.
pub const RECORD: usize = 1 + IMAGE;
/// Pixel bytes per image.
pub const IMAGE: usize = 32 * 32 * 3;
/// Records per standard batch file.
pub const PER_FILE: usize = 10_000;
/// Training files, in canonical order.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// Test file.
pub const TEST_FILE: &str = "test_batch.bin";
/// Class names, label order.
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The folder holding the batch files: `dir` (or `$GHNQ_CIFAR_DIR`), or its `cifar-10-batches-bin`
/// subfolder if it has one.
pub fn resolve_dir(dir: Option<&Path>) -> Result<PathBuf, DataError> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::var_os(ENV_DIR).map(PathBuf::from).ok_or_else(|| DataError::NotFound {
            dataset: "cifar10",
            detail: format!(
                "no folder given: pass --cifar-dir or set {ENV_DIR} to a `cifar-10-batches-bin` folder \
                 (../shared/data/cifar10/prepare.py DEST materialises one)"
            ),
        })?,
    };
    let nested = dir.join("cifar-10-batches-bin");
    let dir = if nested.join(TEST_FILE).is_file() {
        nested
    } else {
        dir
    };
    if !dir.join(TEST_FILE).is_file() {
        return Err(DataError::NotFound {
            dataset: "cifar10",
            detail: format!(
                "{} has no {TEST_FILE} (nor a cifar-10-batches-bin folder with one)",
                dir.display()
            ),
        });
    }
    Ok(dir)
}

/// Read one batch file: planar CHW images (3,072 bytes each) and labels. Any whole number of records
/// is accepted (a partial file such as the first-932 test slice is fine); a length that is not a
/// multiple of 3,073 or a label ≥ 10 is an error naming the file.
pub fn read_batch(path: &Path) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.into(),
        source,
    })?;
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(DataError::Truncated {
            path: path.into(),
            len: bytes.len(),
            detail: format!(
                "not a whole number of {RECORD}-byte records ({} whole, {} bytes left over)",
                bytes.len() / RECORD,
                bytes.len() % RECORD
            ),
        });
    }
    let n = bytes.len() / RECORD;
    let mut images = Vec::with_capacity(n * IMAGE);
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] >= 10 {
            return Err(DataError::Corrupt {
                path: path.into(),
                detail: format!(
                    "record {i} (byte offset {}) has label {} (expected 0..=9)",
                    i * RECORD,
                    rec[0]
                ),
            });
        }
        labels.push(rec[0]);
        images.extend_from_slice(&rec[1..]);
    }
    Ok((images, labels))
}

/// Read a standard file and check it holds exactly 10,000 records.
fn read_standard(path: &Path) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    let len = std::fs::metadata(path)
        .map_err(|source| DataError::Io {
            path: path.into(),
            source,
        })?
        .len();
    let want = (PER_FILE * RECORD) as u64;
    if len != want {
        return Err(DataError::Truncated {
            path: path.into(),
            len: len as usize,
            detail: format!(
                "a standard CIFAR-10 batch file has {want} bytes ({PER_FILE} records of {RECORD})"
            ),
        });
    }
    read_batch(path)
}

/// Load the 50,000 training images (`train = true`) or the 10,000 test images from `dir`.
pub fn load(dir: &Path, train: bool) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    let files: &[&str] = if train { &TRAIN_FILES } else { &[TEST_FILE] };
    let mut images = Vec::with_capacity(files.len() * PER_FILE * IMAGE);
    let mut labels = Vec::with_capacity(files.len() * PER_FILE);
    for f in files {
        let (i, l) = read_standard(&dir.join(f))?;
        images.extend(i);
        labels.extend(l);
    }
    Ok((images, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cifar10/` of the shared data folder beside the repository (never copied into it), or
    /// `None` when the test should skip (`shared_data::for_test`).
    fn shared(test: &str) -> Option<PathBuf> {
        crate::shared_data::for_test(test, "cifar10/test_batch_lossless_first932.bin")
            .and_then(|f| f.parent().map(Path::to_path_buf))
    }

    #[test]
    fn first_932_test_records_match_official_labels() {
        let Some(dir) = shared("first_932_test_records_match_official_labels") else {
            return;
        };
        let (images, labels) = read_batch(&dir.join("test_batch_lossless_first932.bin")).unwrap();
        assert_eq!(labels.len(), 932);
        assert_eq!(images.len(), 932 * IMAGE);
        let official = std::fs::read(dir.join("test_labels.u8")).unwrap();
        assert_eq!(official.len(), 10_000);
        assert_eq!(labels, official[..932]);
        // The first test image is a cat (label 3); its first red pixels are 158, 159, 165 in the
        // official release (plane R starts right after the label byte).
        assert_eq!(labels[0], 3);
        assert_eq!(&images[..3], &[158, 159, 165]);
    }

    #[test]
    fn truncated_file_names_file_and_length() {
        let Some(dir) = shared("truncated_file_names_file_and_length") else {
            return;
        };
        let src = std::fs::read(dir.join("test_batch_lossless_first932.bin")).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cut.bin");
        std::fs::write(&path, &src[..2 * RECORD + 100]).unwrap();
        let err = read_batch(&path).unwrap_err().to_string();
        assert!(
            err.contains("cut.bin") && err.contains(&(2 * RECORD + 100).to_string()),
            "{err}"
        );

        // A whole-record file that is not a standard 10,000-record batch.
        let fake = tmp.path().join(TEST_FILE);
        std::fs::write(&fake, &src[..3 * RECORD]).unwrap();
        let dir = resolve_dir(Some(tmp.path())).unwrap();
        let err = load(&dir, false).unwrap_err().to_string();
        assert!(
            err.contains(TEST_FILE) && err.contains(&(3 * RECORD).to_string()),
            "{err}"
        );
        // Missing training files name the file.
        let err = load(&dir, true).unwrap_err().to_string();
        assert!(err.contains("data_batch_1.bin"), "{err}");

        let mut bad = src[..RECORD].to_vec();
        bad[0] = 12;
        std::fs::write(&path, &bad).unwrap();
        let err = read_batch(&path).unwrap_err().to_string();
        assert!(err.contains("cut.bin") && err.contains("label 12"), "{err}");
    }

    #[test]
    fn wrong_dir_is_a_clear_error() {
        let err = resolve_dir(Some(Path::new("/nonexistent/cifar")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/cifar") && err.contains(TEST_FILE),
            "{err}"
        );
    }

    /// Full batches materialised by `prepare.py` (JPEG-decoded, so pixels are close, labels exact).
    /// Run with `GHNQ_CIFAR_DIR=/tmp/cifar cargo test -p ghnq-core --lib -- --ignored cifar10`.
    #[test]
    #[ignore = "needs GHNQ_CIFAR_DIR with the full cifar-10-batches-bin (prepare.py)"]
    fn full_batches_from_env() {
        let dir = resolve_dir(None).unwrap();
        let Some(shared) = shared("full_batches_from_env") else {
            return;
        };
        let (train_img, train_lab) = load(&dir, true).unwrap();
        let (test_img, test_lab) = load(&dir, false).unwrap();
        assert_eq!(train_img.len(), 50_000 * IMAGE);
        assert_eq!(
            train_lab,
            std::fs::read(shared.join("train_labels.u8")).unwrap()
        );
        assert_eq!(
            test_lab,
            std::fs::read(shared.join("test_labels.u8")).unwrap()
        );
        let (exact, _) = read_batch(&shared.join("test_batch_lossless_first932.bin")).unwrap();
        let mae = exact
            .iter()
            .zip(&test_img)
            .map(|(&a, &b)| f64::from(a.abs_diff(b)))
            .sum::<f64>()
            / exact.len() as f64;
        assert!(
            mae < 8.0,
            "mean absolute error {mae} against the lossless slice"
        );
        // Per-channel training means agree with the normalisation constants.
        let (mean, _) = super::super::DatasetKind::Cifar10.normalization();
        for (ch, &m) in mean.iter().enumerate() {
            let sum: u64 = train_img
                .chunks_exact(IMAGE)
                .flat_map(|im| &im[ch * 1024..(ch + 1) * 1024])
                .map(|&p| u64::from(p))
                .sum();
            let got = sum as f64 / (50_000.0 * 1024.0 * 255.0);
            assert!(
                (got - f64::from(m)).abs() < 0.01,
                "channel {ch}: mean {got} vs {m}"
            );
        }
    }
}

//! IDX files (the MNIST / Fashion-MNIST format), gzipped or not: a big-endian header
//! `0x00 0x00 <type> <ndim>` (type 0x08 = u8), `ndim` big-endian u32 dimensions, then the row-major
//! data. Fashion-MNIST comes from Debian's `dataset-fashion-mnist` package, installed by
//! `cargo xtask setup` into [`DEFAULT_FASHION_DIR`]; `GHNQ_FASHION_DIR` or `--data-dir` override it.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::DataError;

/// Where Debian's `dataset-fashion-mnist` puts the four `.gz` files.
pub const DEFAULT_FASHION_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Environment variable overriding [`DEFAULT_FASHION_DIR`].
pub const ENV_FASHION_DIR: &str = "GHNQ_FASHION_DIR";
/// Fashion-MNIST class names, label order.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// A decoded IDX array of u8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first (`[n, 28, 28]` for images, `[n]` for labels).
    pub dims: Vec<usize>,
    /// Row-major data.
    pub data: Vec<u8>,
}

/// Read a file, gunzipping it if it starts with the gzip magic `1f 8b`.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io {
        path: path.into(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::Corrupt {
                path: path.into(),
                detail: format!(
                    "gzip stream broken after {} decompressed bytes: {e}",
                    out.len()
                ),
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parse an IDX u8 array with `ndim` dimensions from `path`.
pub fn read_idx(path: &Path, ndim: usize) -> Result<IdxArray, DataError> {
    let bytes = read_maybe_gz(path)?;
    let header = 4 + 4 * ndim;
    let magic = [0u8, 0, 0x08, ndim as u8];
    if bytes.len() >= 4 && bytes[..4] != magic {
        return Err(DataError::Corrupt {
            path: path.into(),
            detail: format!(
                "wrong IDX magic {:02x?}, expected {magic:02x?} (u8 data, {ndim} dimensions)",
                &bytes[..4]
            ),
        });
    }
    if bytes.len() < header {
        return Err(DataError::Truncated {
            path: path.into(),
            len: bytes.len(),
            detail: format!("shorter than the {header}-byte IDX header"),
        });
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let want = dims.iter().product::<usize>();
    let got = bytes.len() - header;
    if got != want {
        return Err(DataError::Truncated {
            path: path.into(),
            len: bytes.len(),
            detail: format!(
                "dimensions {dims:?} need {want} data bytes after the header, found {got}"
            ),
        });
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// The Fashion-MNIST folder: `dir`, else `$GHNQ_FASHION_DIR`, else [`DEFAULT_FASHION_DIR`].
pub fn resolve_fashion_dir(dir: Option<&Path>) -> Result<PathBuf, DataError> {
    let dir = dir
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(ENV_FASHION_DIR).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_FASHION_DIR));
    if find(&dir, "t10k-images-idx3-ubyte").is_none() {
        return Err(DataError::NotFound {
            dataset: "fashion-mnist",
            detail: format!(
                "{} has no t10k-images-idx3-ubyte[.gz]; install Debian's dataset-fashion-mnist (cargo xtask \
                 setup) or point --data-dir / {ENV_FASHION_DIR} at the IDX files",
                dir.display()
            ),
        });
    }
    Ok(dir)
}

/// `stem.gz` or `stem` inside `dir`, whichever exists.
fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()]
        .into_iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

/// Load images `[n, h, w]` and labels `[n]` of a pair of IDX files, checking they agree.
pub fn load_pair(images: &Path, labels: &Path) -> Result<(IdxArray, Vec<u8>), DataError> {
    let img = read_idx(images, 3)?;
    let lab = read_idx(labels, 1)?;
    if img.dims[0] != lab.dims[0] {
        return Err(DataError::Mismatch {
            detail: format!(
                "{} holds {} images but {} holds {} labels",
                images.display(),
                img.dims[0],
                labels.display(),
                lab.dims[0]
            ),
        });
    }
    if let Some(i) = lab.data.iter().position(|&l| l >= 10) {
        return Err(DataError::Corrupt {
            path: labels.into(),
            detail: format!("label {i} is {} (expected 0..=9)", lab.data[i]),
        });
    }
    Ok((img, lab.data))
}

/// Load Fashion-MNIST train (`train = true`, 60,000) or test (10,000) images `[n, 28, 28]` + labels.
pub fn load_fashion(dir: &Path, train: bool) -> Result<(IdxArray, Vec<u8>), DataError> {
    let prefix = if train { "train" } else { "t10k" };
    let path = |kind: &str| {
        let stem = format!("{prefix}-{kind}");
        find(dir, &stem).ok_or_else(|| DataError::NotFound {
            dataset: "fashion-mnist",
            detail: format!("{} has no {stem}[.gz]", dir.display()),
        })
    };
    load_pair(&path("images-idx3-ubyte")?, &path("labels-idx1-ubyte")?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(data);
        v
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn parses_plain_and_gzip_and_rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let images: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        std::fs::write(p("img"), idx(&[2, 3, 4], &images)).unwrap();
        std::fs::write(p("lab.gz"), gz(&idx(&[2], &[7, 1]))).unwrap();
        let (img, lab) = load_pair(&p("img"), &p("lab.gz")).unwrap();
        assert_eq!(img.dims, vec![2, 3, 4]);
        assert_eq!(img.data, images);
        assert_eq!(lab, vec![7, 1]);

        // Truncated data (gzipped): names the file and the lengths.
        std::fs::write(p("short.gz"), gz(&idx(&[2, 3, 4], &images[..20]))).unwrap();
        let err = read_idx(&p("short.gz"), 3).unwrap_err().to_string();
        assert!(
            err.contains("short.gz") && err.contains("need 24") && err.contains("found 20"),
            "{err}"
        );
        // Truncated gzip stream.
        let cut = gz(&idx(&[2, 3, 4], &images));
        std::fs::write(p("cut.gz"), &cut[..cut.len() - 12]).unwrap();
        let err = read_idx(&p("cut.gz"), 3).unwrap_err().to_string();
        assert!(err.contains("cut.gz"), "{err}");
        // Header too short.
        std::fs::write(p("tiny"), [0u8, 0, 8]).unwrap();
        assert!(
            read_idx(&p("tiny"), 1)
                .unwrap_err()
                .to_string()
                .contains("tiny")
        );
        // Wrong magic (labels file read as images).
        let err = read_idx(&p("lab.gz"), 3).unwrap_err().to_string();
        assert!(err.contains("lab.gz") && err.contains("magic"), "{err}");
        // Count mismatch names both files.
        std::fs::write(p("lab3"), idx(&[3], &[0, 1, 2])).unwrap();
        let err = load_pair(&p("img"), &p("lab3")).unwrap_err().to_string();
        assert!(
            err.contains("img")
                && err.contains("lab3")
                && err.contains("2 images")
                && err.contains("3 labels"),
            "{err}"
        );
        // Missing folder.
        let err = resolve_fashion_dir(Some(&p("nowhere")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nowhere") && err.contains("dataset-fashion-mnist"),
            "{err}"
        );
    }

    /// The Debian package is installed by `cargo xtask setup`; without it this test fails loudly.
    #[test]
    fn fashion_mnist_test_set_loads() {
        let dir = resolve_fashion_dir(Some(Path::new(DEFAULT_FASHION_DIR)))
            .unwrap_or_else(|e| panic!("{e} (run `cargo xtask setup`)"));
        let (img, lab) = load_fashion(&dir, false).unwrap();
        assert_eq!(img.dims, vec![10_000, 28, 28]);
        assert_eq!(lab.len(), 10_000);
        // The official t10k labels begin 9 (ankle boot), 2, 1, 1, 6.
        assert_eq!(&lab[..5], &[9, 2, 1, 1, 6]);
        let mut per_class = [0usize; 10];
        lab.iter().for_each(|&l| per_class[l as usize] += 1);
        assert_eq!(per_class, [1000; 10]);
    }
}

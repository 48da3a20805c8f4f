//! The text form of a [`Net`]: pretty JSON via serde (see [`Net::to_json`] for the layout). Users bring
//! their own nets as JSON files; every error names the file.

use std::path::{Path, PathBuf};

use super::ir::{ArchError, Net};

/// Reading or writing a net file failed; carries the path.
#[allow(missing_docs)] // The variants' fields are spelled out by their #[error] messages.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a valid net (JSON syntax, unknown op, or a validation error naming the node).
    #[error("{path}: {source}")]
    Invalid { path: PathBuf, source: ArchError },
}

/// Read and validate a net from a JSON file.
pub fn read_net(path: &Path) -> Result<Net, TextError> {
    let text = std::fs::read_to_string(path).map_err(|source| TextError::Io {
        path: path.into(),
        source,
    })?;
    Net::from_json(&text).map_err(|source| TextError::Invalid {
        path: path.into(),
        source,
    })
}

/// Write `net` as pretty JSON to `path` atomically: a temporary file in the same directory, then a
/// rename, so a reader never sees half a file.
pub fn write_net(net: &Net, path: &Path) -> Result<(), TextError> {
    write_atomic(path, net.to_json().as_bytes())
}

/// Write `bytes` and a final newline to `path` atomically: a temporary file beside it (tempfile's
/// `NamedTempFile`), synced, then renamed over it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TextError> {
    use std::io::Write;
    let io = |source| TextError::Io {
        path: path.into(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut f = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.write_all(b"\n").map_err(io)?;
    f.as_file().sync_all().map_err(io)?;
    f.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// `manifest.json` of a folder written by `ghnq graphs`: how the nets were made and their file names.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// Split name (`test`, `bn-free`, ...).
    pub split: String,
    /// Base seed of the split.
    pub seed: u64,
    /// Dataset the nets are shaped for.
    pub dataset: String,
    /// Input shape of every net.
    pub input: super::ir::ImageShape,
    /// Classes of every net.
    pub classes: usize,
    /// Parameter budget the nets were generated under (`None` for predefined nets).
    pub budget: Option<usize>,
    /// Net file names (relative to the folder), in index order.
    pub nets: Vec<String>,
}

/// File name of the manifest inside a split folder.
pub const MANIFEST: &str = "manifest.json";

/// Write `nets` as `<dir>/<name>.json` plus `<dir>/manifest.json`, each atomically; creates `dir`.
pub fn write_split_dir(dir: &Path, nets: &[Net], mut manifest: Manifest) -> Result<(), TextError> {
    std::fs::create_dir_all(dir).map_err(|source| TextError::Io {
        path: dir.into(),
        source,
    })?;
    manifest.nets.clear();
    for net in nets {
        let file = format!("{}.json", net.name);
        write_net(net, &dir.join(&file))?;
        manifest.nets.push(file);
    }
    let text = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
    write_atomic(&dir.join(MANIFEST), text.as_bytes())
}

/// Read a folder written by [`write_split_dir`]: the manifest and every net it lists, validated.
pub fn read_split_dir(dir: &Path) -> Result<(Manifest, Vec<Net>), TextError> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|source| TextError::Io {
        path: path.clone(),
        source,
    })?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| TextError::Invalid {
        path: path.clone(),
        source: ArchError::Json(e.to_string()),
    })?;
    let nets = manifest
        .nets
        .iter()
        .map(|f| read_net(&dir.join(f)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((manifest, nets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ImageShape;
    use crate::predefined;

    #[test]
    fn file_round_trip_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let net = predefined::resnet8(ImageShape::CIFAR10, 10).unwrap();
        let path = dir.path().join("resnet8.json");
        write_net(&net, &path).unwrap();
        assert_eq!(read_net(&path).unwrap(), net);
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let missing = dir.path().join("missing.json");
        let err = read_net(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.json"), "{err}");

        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, net.to_json().replace("\"cin\":16", "\"cin\":17")).unwrap();
        let err = read_net(&broken).unwrap_err().to_string();
        assert!(
            err.contains("broken.json") && err.contains("node "),
            "{err}"
        );
    }

    #[test]
    fn split_dir_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let nets = predefined::all(ImageShape::FASHION_MNIST, 10).unwrap();
        let manifest = Manifest {
            split: "predefined".into(),
            seed: 0,
            dataset: "fashion-mnist".into(),
            input: ImageShape::FASHION_MNIST,
            classes: 10,
            budget: None,
            nets: vec![],
        };
        write_split_dir(&dir.path().join("out"), &nets, manifest).unwrap();
        let (m, back) = read_split_dir(&dir.path().join("out")).unwrap();
        assert_eq!(back, nets);
        assert_eq!(m.nets[8], "ResNet8.json");
    }
}

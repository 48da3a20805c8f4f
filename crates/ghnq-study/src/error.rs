//! What can stop a study: the one error type of this crate.

use std::path::PathBuf;

/// Why a study, or one of its records, tables or plots, could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// A file or directory operation failed.
    #[error(transparent)]
    Io(#[from] ghnq_core::file_error::FileError),
    /// A JSON file (record or recipe) that does not parse as this version's.
    #[error("parsing {}{hint}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What to do about it (may be empty).
        hint: &'static str,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// A record that would not read back once written (a non-finite number: a bug here).
    #[error("{id}: the record would not read back (a non-finite number?): {source}")]
    Unreadable {
        /// The pair's id.
        id: String,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// A recipe or record serialised to JSON.
    #[error("writing JSON: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The study's images could not be loaded.
    #[error("loading the {dataset} {what} images: {source}")]
    Images {
        /// The data set.
        dataset: String,
        /// test, calibration or training.
        what: &'static str,
        /// Why (boxed, as the large variants here: errors are the cold path).
        #[source]
        source: Box<ghnq_core::sources::SourceError>,
    },
    /// A data set's files missing or unreadable, or an unknown data-set name.
    #[error(transparent)]
    Data(Box<ghnq_core::data::DataError>),
    /// An architecture the study does not have.
    #[error("unknown architecture '{0}'")]
    UnknownArch(String),
    /// A study architecture that cannot be built for these images.
    #[error("{arch}: {detail}")]
    Arch {
        /// The architecture.
        arch: String,
        /// Why.
        detail: String,
    },
    /// A record naming an initialiser this version does not have.
    #[error("unknown initialiser '{0}'")]
    UnknownInit(String),
    /// Options or records that do not fit together (a recipe's values, another study's
    /// records in the same directory, ...).
    #[error("{0}")]
    Invalid(String),
    /// Export of the trained net failed.
    #[error(transparent)]
    Export(Box<ghnq_export::ExportError>),
    /// The exported blob could not be compared with its simulation.
    #[error(transparent)]
    Compare(Box<ghnq_export::CompareError>),
    /// The native engine could not run the net.
    #[error(transparent)]
    Native(#[from] ghnq_core::cnn::native::NativeError),
    /// A plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
}

impl From<ghnq_core::data::DataError> for StudyError {
    fn from(e: ghnq_core::data::DataError) -> Self {
        StudyError::Data(Box::new(e))
    }
}

impl From<ghnq_export::ExportError> for StudyError {
    fn from(e: ghnq_export::ExportError) -> Self {
        StudyError::Export(Box::new(e))
    }
}

impl From<ghnq_export::CompareError> for StudyError {
    fn from(e: ghnq_export::CompareError) -> Self {
        StudyError::Compare(Box::new(e))
    }
}

/// This crate's result.
pub type Result<T, E = StudyError> = std::result::Result<T, E>;

/// Maps an I/O error to [`StudyError::Io`] naming `action` and `path`.
pub(crate) fn io(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> StudyError {
    let on = ghnq_core::file_error::FileError::on(action, path);
    move |e| StudyError::Io(on(e))
}

/// `Err(StudyError::Invalid(message))` unless `cond`.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::error::StudyError::Invalid(format!($($fmt)+)));
        }
    };
}
pub(crate) use ensure;

//! What every bit-width's export and comparison of one net's parameters share: the float net's
//! BatchNorm population statistics on the calibration images and its logits on the test images.
//!
//! WHY: an evaluation at float, W8A8 and W4A4 calibrated and ran the same float net once per
//! bit-width; computed once per net, a quantized pair costs about an eighth less.

use ghnq_core::cnn::ParamSet;

/// Filled by the first export and comparison of a parameter set, read by the later ones. One per
/// parameter set, calibration set and test set: a caller that changes any of them starts a new
/// one ([`FloatReference::default`]).
#[derive(Debug, Clone, Default)]
pub struct FloatReference {
    /// The parameters with the float net's BatchNorm population statistics.
    pub(crate) params: Option<ParamSet>,
    /// The float net's logits, one vector per test batch, in order.
    pub(crate) logits: Vec<Vec<f32>>,
}

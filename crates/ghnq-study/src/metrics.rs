//! §3.1's measures on output vectors, and the divergence rule.
//!
//! - QMSE: the mean squared difference between the float net's outputs and the quantized net's
//!   dequantized outputs, both as softmax probabilities, averaged over the classes and then over
//!   the images.
//! - QCE: the cross-entropy `−Σ p_float · log p_quant` between the two output distributions,
//!   averaged over the images (it equals the float net's own entropy when quantization changes
//!   nothing, so it is never below that).
//! - Percent accuracy decrease: `100 · (fp32 − quint8) / fp32`.
//!
//! `export::compare` computes QMSE and QCE the same way while it runs the integer runtime; these
//! functions are the definitions, tested on hand-computed cases and checked against `compare`.

/// Probabilities of one logit vector (computed through a stable log-softmax).
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    log_softmax(logits).into_iter().map(f64::exp).collect()
}

/// Log-probabilities of one logit vector.
pub fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let m = logits
        .iter()
        .fold(f64::NEG_INFINITY, |a, &b| a.max(f64::from(b)));
    let lse = logits
        .iter()
        .map(|&x| (f64::from(x) - m).exp())
        .sum::<f64>()
        .ln()
        + m;
    logits.iter().map(|&x| f64::from(x) - lse).collect()
}

/// QMSE over images: `float` and `quant` hold `classes` logits per image, image after image.
pub fn qmse(float: &[f32], quant: &[f32], classes: usize) -> f64 {
    per_image_mean(float, quant, classes, |pf, q| {
        let pq = softmax(q);
        pf.iter()
            .zip(&pq)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            / classes as f64
    })
}

/// QCE over images (natural logarithm), laid out like [`qmse`]'s arguments.
pub fn qce(float: &[f32], quant: &[f32], classes: usize) -> f64 {
    per_image_mean(float, quant, classes, |pf, q| {
        -pf.iter()
            .zip(log_softmax(q))
            .map(|(p, l)| p * l)
            .sum::<f64>()
    })
}

fn per_image_mean(
    float: &[f32],
    quant: &[f32],
    classes: usize,
    f: impl Fn(&[f64], &[f32]) -> f64,
) -> f64 {
    assert_eq!(
        float.len(),
        quant.len(),
        "one quantized output per float output"
    );
    assert!(classes > 0 && float.len().is_multiple_of(classes));
    let n = float.len() / classes;
    if n == 0 {
        return 0.0;
    }
    float
        .chunks_exact(classes)
        .zip(quant.chunks_exact(classes))
        .map(|(a, b)| f(&softmax(a), b))
        .sum::<f64>()
        / n as f64
}

/// `100 · (fp32 − quant) / fp32` (accuracies in %); `None` when the float accuracy is 0.
pub fn percent_decrease(fp32: f64, quant: f64) -> Option<f64> {
    (fp32 > 0.0).then(|| 100.0 * (fp32 - quant) / fp32)
}

/// When a training run counts as diverged.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DivergenceRule {
    /// A finite loss above this bound counts as exploding (chance level is ln 10 ≈ 2.3; a
    /// loss of 1000 means the logits are thousands apart).
    pub max_loss: f64,
    /// The run diverged when the loss stays above `max_loss` for this many consecutive steps
    /// (a non-finite loss ends the run at once).
    pub patience: usize,
}

impl Default for DivergenceRule {
    fn default() -> Self {
        DivergenceRule {
            max_loss: 1e3,
            patience: 10,
        }
    }
}

/// Why and where a run diverged.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Divergence {
    /// The (0-based) step at which the rule fired.
    pub step: usize,
    /// The loss of that step (`None` when it was NaN or infinite).
    pub loss: Option<f64>,
    /// `non-finite loss` or `loss above <bound> for <n> steps`.
    pub reason: String,
}

/// Watches the losses of one run.
#[derive(Debug, Clone)]
pub struct DivergenceWatch {
    rule: DivergenceRule,
    above: usize,
}

impl DivergenceWatch {
    /// A fresh watch.
    pub fn new(rule: DivergenceRule) -> DivergenceWatch {
        DivergenceWatch { rule, above: 0 }
    }

    /// At the end of training (`last` = the last step taken): a run whose last loss is still
    /// above the bound has diverged too, however short it was.
    pub fn finish(&self, last: usize, loss: f64) -> Option<Divergence> {
        (self.above > 0).then(|| Divergence {
            step: last,
            loss: Some(loss),
            reason: format!("loss above {} at the end of training", self.rule.max_loss),
        })
    }

    /// Feed the loss of step `step`; `Some` once the run has diverged.
    pub fn check(&mut self, step: usize, loss: f64) -> Option<Divergence> {
        if !loss.is_finite() {
            return Some(Divergence {
                step,
                loss: None,
                reason: format!("non-finite loss ({loss})"),
            });
        }
        if loss > self.rule.max_loss {
            self.above += 1;
        } else {
            self.above = 0;
        }
        (self.above >= self.rule.patience.max(1)).then(|| Divergence {
            step,
            loss: Some(loss),
            reason: format!(
                "loss above {} for {} steps",
                self.rule.max_loss,
                self.rule.patience.max(1)
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logits are f32 (ln 3 is not exact): agreement to 1e-7.
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-7
    }

    #[test]
    fn qmse_and_qce_by_hand() {
        // Two classes. Float logits (0, 0) → p = (1/2, 1/2). Quantized logits (ln 3, 0) →
        // q = (3/4, 1/4). QMSE = ((1/2 − 3/4)² + (1/2 − 1/4)²)/2 = 1/16.
        // QCE = −(1/2·ln 3/4 + 1/2·ln 1/4) = ln 4 − ½ ln 3.
        let f = [0.0f32, 0.0];
        let q = [3f32.ln(), 0.0];
        assert!(close(qmse(&f, &q, 2), 1.0 / 16.0));
        assert!(close(qce(&f, &q, 2), 4f64.ln() - 0.5 * 3f64.ln()));
        // Identical outputs: QMSE 0, QCE = the entropy of p (ln 2 for a fair coin), whatever
        // the logits' common shift.
        assert!(close(qmse(&f, &[5.0, 5.0], 2), 0.0));
        assert!(close(qce(&f, &[5.0, 5.0], 2), 2f64.ln()));
        // Means over images: the second image is a confident match (p = q = (1, 0) in the
        // limit: large logit gap).
        let f2 = [0.0f32, 0.0, 60.0, 0.0];
        let q2 = [3f32.ln(), 0.0, 60.0, 0.0];
        assert!((qmse(&f2, &q2, 2) - 1.0 / 32.0).abs() < 1e-7);
        assert!((qce(&f2, &q2, 2) - (4f64.ln() - 0.5 * 3f64.ln()) / 2.0).abs() < 1e-7);
        // Three classes, float one-hot-ish p = softmax(0, 0, 0) against q = softmax(ln 2, 0, 0)
        // = (1/2, 1/4, 1/4): QMSE = ((1/6)² + 2·(1/12)²)/3 = (1/36 + 1/72)/3 = 1/72.
        let f3 = [0.0f32, 0.0, 0.0];
        let q3 = [2f32.ln(), 0.0, 0.0];
        assert!((qmse(&f3, &q3, 3) - 1.0 / 72.0).abs() < 1e-7);
        // QCE = −(1/3)(ln ½ + 2 ln ¼) = (ln 2 + 4 ln 2)/3 = 5/3 · ln 2.
        assert!((qce(&f3, &q3, 3) - 5.0 / 3.0 * 2f64.ln()).abs() < 1e-7);
        assert_eq!(qmse(&[], &[], 10), 0.0);
    }

    #[test]
    fn softmax_is_stable() {
        let p = softmax(&[1000.0, 1000.0]);
        assert!(close(p[0], 0.5) && close(p[1], 0.5));
        let l = log_softmax(&[-1e4, 0.0]);
        assert!(l[0].is_finite() && close(l[1], 0.0));
    }

    #[test]
    fn percent_decrease_is_relative() {
        assert_eq!(percent_decrease(80.0, 60.0), Some(25.0));
        assert_eq!(percent_decrease(50.0, 55.0), Some(-10.0));
        assert_eq!(percent_decrease(0.0, 0.0), None);
    }

    #[test]
    fn divergence_rule() {
        let rule = DivergenceRule {
            max_loss: 100.0,
            patience: 3,
        };
        let mut w = DivergenceWatch::new(rule);
        // A spike that recovers is not divergence.
        for (t, l) in [2.3, 500.0, 600.0, 2.0, 1e6, 1e6].into_iter().enumerate() {
            assert_eq!(w.check(t, l), None, "step {t}");
        }
        let d = w.check(6, 1e7).unwrap();
        assert_eq!(d.step, 6);
        assert_eq!(d.loss, Some(1e7));
        assert!(d.reason.contains("above 100"), "{}", d.reason);
        // Non-finite: at once.
        for bad in [f64::NAN, f64::INFINITY] {
            let d = DivergenceWatch::new(rule).check(0, bad).unwrap();
            assert_eq!((d.step, d.loss), (0, None));
            assert!(d.reason.contains("non-finite"));
        }
        // Patience 0 acts as 1.
        let mut w = DivergenceWatch::new(DivergenceRule {
            max_loss: 1.0,
            patience: 0,
        });
        assert!(w.check(0, 1.5).is_some());
        // Training that ends above the bound (fewer steps than the patience) has diverged.
        let mut w = DivergenceWatch::new(rule);
        assert_eq!(w.check(0, 5e3), None);
        assert_eq!(
            w.finish(0, 5e3).unwrap().reason,
            "loss above 100 at the end of training"
        );
        assert_eq!(w.check(1, 2.0), None);
        assert_eq!(w.finish(1, 2.0), None);
        // A JSON round trip keeps a non-finite divergence readable.
        let d = DivergenceWatch::new(rule).check(4, f64::NAN).unwrap();
        let back: Divergence = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }
}

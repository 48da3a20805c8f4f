//! Per-layer precision (mixed precision): overrides of the net-wide bit-widths for chosen
//! weighted layers, e.g. `first=w8a8,last=w8a8` (the usual low-bit recipe: the stem sees raw
//! pixels and the classifier's errors go straight to the logits) or `cell2.op0.pw=w8a4`.
//!
//! An override sets the weight bits of its layer and the activation bits of the tensor the layer
//! writes (after fused BatchNorm and ReLU). Tensors no weighted layer writes (pools, adds,
//! concats) keep the net-wide activation bits; the image and the logits stay 8-bit.
//! `first` and `last` mean the first and last weighted layer of each net, so they also work
//! over a whole split, where layer names differ from net to net.

use std::fmt;
use std::str::FromStr;

use super::config::Precision;
use ghnq_core::arch::{Net, Op};

/// Which layer an override applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSelector {
    /// The first weighted layer (the stem convolution).
    First,
    /// The last weighted layer (the classifier).
    Last,
    /// The node with this name.
    Name(String),
}

/// The overrides, applied in order (a later one wins where two select the same layer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerBits(Vec<(LayerSelector, Precision)>);

impl LayerBits {
    /// No override: every layer at the net-wide precision.
    pub fn none() -> LayerBits {
        LayerBits(Vec::new())
    }

    /// Whether there is no override.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The precision of node `node` of `net`: that of the last override selecting it, or
    /// `default`.
    pub fn of(&self, net: &Net, node: usize, default: Precision) -> Precision {
        if self.0.is_empty() {
            return default;
        }
        let weighted = weighted_nodes(net);
        let selects = |s: &LayerSelector| match s {
            LayerSelector::First => weighted.first() == Some(&node),
            LayerSelector::Last => weighted.last() == Some(&node),
            LayerSelector::Name(n) => net.nodes.get(node).is_some_and(|x| &x.name == n),
        };
        self.0
            .iter()
            .rev()
            .find(|(s, _)| selects(s))
            .map_or(default, |&(_, p)| p)
    }

    /// Checks that every named override names exactly one weighted layer of `net`; the error
    /// lists the names that would.
    pub fn check(&self, net: &Net) -> Result<(), LayerBitsError> {
        let weighted = weighted_nodes(net);
        for (s, _) in &self.0 {
            let LayerSelector::Name(name) = s else {
                continue;
            };
            let hits = weighted
                .iter()
                .filter(|&&i| &net.nodes[i].name == name)
                .count();
            if hits != 1 {
                return Err(LayerBitsError {
                    name: name.clone(),
                    several: hits > 1,
                    net: net.name.clone(),
                    weighted: weighted
                        .iter()
                        .map(|&i| net.nodes[i].name.clone())
                        .collect(),
                });
            }
        }
        Ok(())
    }
}

/// A `--layer-bits` name that selects no weighted layer of a net, or several.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--layer-bits: '{name}' {} of {net}; its weighted layers are: first, last, {}",
    if *several { "names several weighted layers" } else { "is not a weighted layer" },
    weighted.join(", ")
)]
pub struct LayerBitsError {
    /// The override's layer name.
    pub name: String,
    /// Whether it matched several layers (otherwise none).
    pub several: bool,
    /// The net's name.
    pub net: String,
    /// The names of the net's weighted layers, the ones an override can select.
    pub weighted: Vec<String>,
}

/// The layers an override can select, in topological order: convolutions and the classifier
/// (a lone BatchNorm, stored as a 1×1 depthwise convolution, keeps the net-wide bits).
fn weighted_nodes(net: &Net) -> Vec<usize> {
    net.nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.op, Op::Conv { .. } | Op::Linear { .. }))
        .map(|(i, _)| i)
        .collect()
}

impl FromStr for LayerBits {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = Vec::new();
        for item in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (layer, bits) = item.split_once('=').ok_or_else(|| {
                format!("'{item}' is not a layer override: write <layer>=w<bits>a<bits>, e.g. first=w8a8")
            })?;
            let selector = match layer.trim() {
                "" => return Err(format!("'{item}': the layer name is empty")),
                "first" => LayerSelector::First,
                "last" => LayerSelector::Last,
                name => LayerSelector::Name(name.to_string()),
            };
            out.push((selector, bits.parse::<Precision>()?));
        }
        Ok(LayerBits(out))
    }
}

impl fmt::Display for LayerBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (s, p)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            match s {
                LayerSelector::First => write!(f, "{sep}first={p}")?,
                LayerSelector::Last => write!(f, "{sep}last={p}")?,
                LayerSelector::Name(n) => write!(f, "{sep}{n}={p}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ghnq_core::arch::{ImageShape, predefined};

    #[test]
    fn overrides_parse_and_print() {
        let l: LayerBits = "first=w8a8, last=W8A4,cell0.op1=w2a2".parse().unwrap();
        assert_eq!(l.to_string(), "first=w8a8,last=w8a4,cell0.op1=w2a2");
        for bad in ["first", "=w8a8", "first=w9a8", "last=8"] {
            assert!(bad.parse::<LayerBits>().is_err(), "{bad}");
        }
        assert!("".parse::<LayerBits>().unwrap().is_empty());
    }

    #[test]
    fn selectors_pick_their_layers() {
        let net = predefined::resnet8(ImageShape::CIFAR10, 10).unwrap();
        let weighted = weighted_nodes(&net);
        let (first, last) = (weighted[0], *weighted.last().unwrap());
        let name = net.nodes[weighted[1]].name.clone();
        let l: LayerBits = format!("first=w8a8,last=w8a4,{name}=w2a2").parse().unwrap();
        let d = Precision::new(4, 4);
        assert_eq!(l.of(&net, first, d), Precision::new(8, 8));
        assert_eq!(l.of(&net, last, d), Precision::new(8, 4));
        assert_eq!(l.of(&net, weighted[1], d), Precision::new(2, 2));
        assert_eq!(l.of(&net, weighted[2], d), d);
        assert!(l.check(&net).is_ok());
        // A later override wins.
        let l: LayerBits = "first=w8a8,first=w2a4".parse().unwrap();
        assert_eq!(l.of(&net, first, d), Precision::new(2, 4));
        // Unknown names are refused with the list of weighted layers.
        let e = "no.such=w8a8"
            .parse::<LayerBits>()
            .unwrap()
            .check(&net)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a weighted layer") && e.contains(&name),
            "{e}"
        );
    }
}

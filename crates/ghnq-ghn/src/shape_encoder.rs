//! Shape encoder look-up tables (GHN_SPEC §2.2, ppuda `layers.py: ShapeEncoder`).
//!
//! A parameter shape is brought to 4-D — `(C,)` → `(C,1,1,1)`, `(O,I)` → `(O,I,1,1)` — and each of
//! its four sizes is mapped to a row of a channel table (out, in) or a spatial table (h, w). Nodes
//! without a shape use the extra "no shape" row of each table.

/// The channel and spatial tables for a given class count and maximal kernel size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeTables {
    /// Channel values, ascending and unique.
    pub channels: Vec<usize>,
    /// Spatial values, ascending and unique.
    pub spatial: Vec<usize>,
}

impl ShapeTables {
    /// Tables for `num_classes` classes and a decoder with `max_sp × max_sp` kernels.
    pub fn new(num_classes: usize, max_sp: usize) -> ShapeTables {
        let mut channels = vec![1, 3, num_classes];
        channels.extend((8..=56).step_by(8));
        channels.extend((64..=4080).step_by(16));
        channels.extend((4096..=8192).step_by(32));
        channels.sort_unstable();
        channels.dedup();
        let mut spatial: Vec<usize> = (1..max_sp.max(12)).step_by(2).collect();
        spatial.extend([14, 16]);
        spatial.sort_unstable();
        spatial.dedup();
        ShapeTables { channels, spatial }
    }

    /// Row of the "no shape" entry in the channel table.
    pub fn no_channel(&self) -> usize {
        self.channels.len()
    }

    /// Row of the "no shape" entry in the spatial table.
    pub fn no_spatial(&self) -> usize {
        self.spatial.len()
    }

    /// Row of a channel count: 4..=7 → the entry of 8; otherwise the nearest value (ties → smaller),
    /// values above the table → its largest entry.
    pub fn channel_index(&self, c: usize) -> usize {
        let c = if (4..8).contains(&c) { 8 } else { c };
        nearest(&self.channels, c)
    }

    /// Row of a spatial size: 2 → 3; otherwise the nearest value (ties → smaller), above → largest.
    pub fn spatial_index(&self, s: usize) -> usize {
        let s = if s == 2 { 3 } else { s };
        nearest(&self.spatial, s)
    }

    /// The four rows `(out, in, h, w)` for a parameter shape, or the "no shape" rows.
    pub fn encode(&self, shape: Option<&[usize]>) -> [usize; 4] {
        let Some(shape) = shape else {
            return [
                self.no_channel(),
                self.no_channel(),
                self.no_spatial(),
                self.no_spatial(),
            ];
        };
        let s4 = match *shape {
            [c] => [c, 1, 1, 1],
            [o, i] => [o, i, 1, 1],
            [o, i, h, w] => [o, i, h, w],
            _ => [shape[0], 1, 1, 1],
        };
        [
            self.channel_index(s4[0]),
            self.channel_index(s4[1]),
            self.spatial_index(s4[2]),
            self.spatial_index(s4[3]),
        ]
    }
}

/// Index of the nearest table entry, ties to the smaller one.
fn nearest(table: &[usize], v: usize) -> usize {
    match table.binary_search(&v) {
        Ok(i) => i,
        Err(0) => 0,
        Err(i) if i == table.len() => table.len() - 1,
        Err(i) => {
            let (lo, hi) = (table[i - 1], table[i]);
            if v - lo <= hi - v { i - 1 } else { i }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cifar_table_sizes_and_lookups() {
        let t = ShapeTables::new(10, 11);
        assert_eq!(t.channels.len(), 391);
        assert_eq!(t.no_channel(), 391);
        assert_eq!(t.spatial, vec![1, 3, 5, 7, 9, 11, 14, 16]);
        assert_eq!(t.no_spatial(), 8);
        for (c, i) in [
            (1, 0),
            (3, 1),
            (8, 2),
            (10, 3),
            (16, 4),
            (24, 5),
            (32, 6),
            (48, 8),
            (64, 10),
            (128, 14),
            (256, 22),
            (4096, 262),
            (8192, 390),
        ] {
            assert_eq!(t.channel_index(c), i, "channel {c}");
        }
        for (s, i) in [
            (1, 0),
            (3, 1),
            (5, 2),
            (7, 3),
            (9, 4),
            (11, 5),
            (14, 6),
            (16, 7),
        ] {
            assert_eq!(t.spatial_index(s), i, "spatial {s}");
        }
        // Unseen values (GHN_SPEC §2.2 / §8.2).
        assert_eq!(t.channel_index(5), t.channel_index(8));
        assert_eq!(t.channel_index(4), t.channel_index(8));
        assert_eq!(t.channel_index(9000), 390);
        assert_eq!(t.spatial_index(2), 1);
        assert_eq!(t.spatial_index(4), 1);
        assert_eq!(t.spatial_index(12), 5);
        assert_eq!(t.spatial_index(13), 6);
        assert_eq!(t.spatial_index(15), 6);
        assert_eq!(t.spatial_index(40), 7);
        assert_eq!(t.encode(None), [391, 391, 8, 8]);
        assert_eq!(t.encode(Some(&[16])), [4, 0, 0, 0]);
        assert_eq!(t.encode(Some(&[10, 64])), [3, 10, 0, 0]);
        assert_eq!(t.encode(Some(&[48, 3, 3, 3])), [8, 1, 1, 1]);
        // ImageNet-style 16x16 decoder: 10 spatial values.
        assert_eq!(ShapeTables::new(1000, 16).spatial.len(), 10);
    }
}

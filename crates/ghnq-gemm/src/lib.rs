//! Single-precision matrix products through the `gemm` crate (the one burn's flex backend uses),
//! behind a safe, bounds-checked signature.
//!
//! WHY a crate of its own: `gemm::gemm` takes raw pointers and strides. Every caller (the native
//! executor of `ghnq-core`) multiplies row-major slices, possibly transposed, so one checked
//! entry point here lets every host library crate keep `#![forbid(unsafe_code)]`; this file's one
//! `unsafe` block is the host's only one outside the generated TFLite schema. `gemm` picks its
//! AVX2/FMA or AVX-512 kernels at run time, so the binary still runs on every x86-64 host.

#![deny(unsafe_code)]
#![warn(missing_docs)]

/// A row-major matrix view of a slice, or its transpose: element `(r, c)` is
/// `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> View<'a> {
    /// `rows × cols`, row-major (`data[r * cols + c]`).
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> View<'a> {
        View {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, without copying.
    pub fn t(self) -> View<'a> {
        View {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Whether every element the strides address lies inside `data`.
    fn in_bounds(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride;
        last < self.data.len()
    }
}

/// `dst (m × n, row-major) = [dst +] a (m × k) · b (k × n)`; `accumulate` adds to `dst`.
///
/// # Panics
/// When the shapes disagree or a view addresses memory outside its slice (a caller bug; the
/// native executor derives every shape from a validated net).
pub fn matmul(dst: &mut [f32], a: View<'_>, b: View<'_>, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(
        b.rows, k,
        "inner dimensions differ: {}x{k} · {}x{n}",
        m, b.rows
    );
    assert!(dst.len() >= m * n, "destination {} < {m}x{n}", dst.len());
    assert!(a.in_bounds() && b.in_bounds(), "matrix view out of bounds");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: `dst` holds at least m·n elements addressed row-major (row stride n, column stride
    // 1); `a` and `b` were checked above to address only elements inside their slices for every
    // (row, col) in range; the three slices cannot overlap since `dst` is borrowed mutably.
    // `read_dst = accumulate` with alpha 1 keeps or drops the old `dst`; beta 1 scales the product.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: View<'_>, b: View<'_>) -> Vec<f32> {
        let at = |v: &View<'_>, r: usize, c: usize| v.data[r * v.row_stride + c * v.col_stride];
        let mut out = vec![0.0; a.rows * b.cols];
        for r in 0..a.rows {
            for c in 0..b.cols {
                out[r * b.cols + c] = (0..a.cols).map(|i| at(&a, r, i) * at(&b, i, c)).sum();
            }
        }
        out
    }

    #[test]
    fn products_with_transposes_and_accumulation_match_the_definition() {
        let x: Vec<f32> = (0..35).map(|i| (i as f32 * 0.37).sin()).collect();
        let y: Vec<f32> = (0..35).map(|i| (i as f32 * 0.11).cos()).collect();
        for (a, b) in [
            (View::new(&x, 5, 7), View::new(&y, 7, 5)),
            (View::new(&x, 7, 5).t(), View::new(&y, 5, 7).t()),
            (View::new(&x, 5, 7), View::new(&y, 5, 7).t()),
        ] {
            let want = naive(a, b);
            let mut got = vec![1.0; want.len()];
            matmul(&mut got, a, b, false);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "{g} vs {w}");
            }
            matmul(&mut got, a, b, true);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - 2.0 * w).abs() < 1e-5, "accumulated {g} vs {}", 2.0 * w);
            }
        }
    }

    /// Without accumulation `dst` is only written, never read: the native engine hands GEMMs
    /// recycled buffers holding stale values (NaN after a diverged net) as outputs.
    #[test]
    fn a_product_without_accumulation_ignores_what_dst_held() {
        for (m, k, n) in [
            (1, 7, 1),
            (3, 5, 1),
            (1, 9, 4),
            (4, 6, 5),
            (16, 16, 16),
            (70, 33, 41),
        ] {
            let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let y: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
            for (a, b) in [
                (View::new(&x, m, k), View::new(&y, k, n)),
                (View::new(&x, k, m).t(), View::new(&y, n, k).t()),
            ] {
                let want = naive(a, b);
                let mut got = vec![f32::NAN; want.len()];
                matmul(&mut got, a, b, false);
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-4, "{m}x{k}x{n}: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "inner dimensions")]
    fn mismatched_shapes_panic_instead_of_reading_out_of_bounds() {
        let x = vec![0.0; 6];
        let mut d = vec![0.0; 4];
        matmul(&mut d, View::new(&x, 2, 3), View::new(&x, 2, 3), false);
    }
}

//! Depthwise convolutions at stride 1 with channel counts that are multiples of [`LANES`]: the
//! `sep_conv` and `dil_conv` ops, a quarter of a meta-training step on the general loops.
//!
//! WHY a kernel of its own: a depthwise conv does 2·k² flops per output value, so the general
//! loops (one pass over a whole row per tap: load output, input and weights, store output) are
//! bound by L1 traffic and index arithmetic, not by arithmetic. Here each block of [`LANES`]
//! channels of an image is first copied into a zero-bordered plane of 8-float vectors, so no tap
//! needs a border check; then [`PX`] output pixels are summed in registers over all taps (one
//! weight load serves `PX` pixels, the output is written once). Eight lanes are the AVX2 width
//! (on AVX-512 machines that split 512-bit operations in two, such as AMD Zen 4, they cost the
//! same per flop). The vectors are explicit (`pulp`'s `V3` token, detected at run time): written
//! as plain arrays, LLVM kept the sums on the stack. Hosts without AVX2 and FMA, strided convs and
//! other channel counts take the general loops in `conv`.
//!
//! All three passes are one padded correlation `out[r][q] = Σ src[r + kh·dil][q + kw·dil] · w[kh][kw]`:
//! the forward pass on the input bordered by `pad`, the input gradient on the output gradient
//! bordered by `(k−1)·dil − pad` with the kernel flipped; the weight gradient sums
//! `src[r + kh·dil][q + kw·dil] · dy[r][q]` with one register sum per kernel column.

use pulp::bytemuck::{Zeroable, cast};
use pulp::f32x8;
use pulp::x86::V3;

use super::conv::ConvGeom;

/// Channels per vector.
const LANES: usize = 8;
/// Output pixels summed at once (plus a weight and an input vector: 10 of AVX2's 16 registers).
const PX: usize = 8;
/// Largest kernel (GHN-2's `sep_conv` goes to 7).
const MAX_K: usize = 7;

/// The AVX2 token when these kernels can run `g` (else the general loops in `conv` do).
pub fn supported(g: &ConvGeom) -> Option<V3> {
    let fits = g.stride == 1
        && g.cout.is_multiple_of(LANES)
        && g.k <= MAX_K
        && g.pad <= (g.k - 1) * g.dil
        && g.ho + (g.k - 1) * g.dil == g.h + 2 * g.pad
        && g.wo + (g.k - 1) * g.dil == g.w + 2 * g.pad;
    if fits { V3::try_new() } else { None }
}

/// A zero-bordered plane of one channel block of one image.
struct Plane {
    v: Vec<f32x8>,
    /// Width with the borders.
    wp: usize,
}

impl Plane {
    /// Channels `c0..c0 + LANES` of image `n` of NHWC `src` (`h × w × c`), bordered by `border`.
    fn pack(
        src: &[f32],
        (h, w, c): (usize, usize, usize),
        n: usize,
        c0: usize,
        border: usize,
        into: &mut Plane,
    ) {
        let wp = w + 2 * border;
        into.wp = wp;
        into.v.clear();
        into.v.resize((h + 2 * border) * wp, f32x8::zeroed());
        for y in 0..h {
            let dst = &mut into.v[(y + border) * wp + border..][..w];
            let row = &src[(n * h + y) * w * c..][..w * c];
            for (d, px) in dst.iter_mut().zip(row.chunks_exact(c)) {
                let lanes: [f32; LANES] = px[c0..c0 + LANES].try_into().expect("LANES values");
                *d = cast(lanes);
            }
        }
    }
}

/// Per-tap weight vectors of channel block `c0` from taps laid out `k · k · c`, flipped for the
/// input gradient.
fn tap_vectors(taps: &[f32], k: usize, c: usize, c0: usize, flip: bool) -> Vec<f32x8> {
    (0..k * k)
        .map(|t| {
            let t = if flip { k * k - 1 - t } else { t };
            let lanes: [f32; LANES] = taps[t * c + c0..][..LANES]
                .try_into()
                .expect("LANES values");
            cast(lanes)
        })
        .collect()
}

/// `P` output pixels from column `q` of output row `r`, summed over all taps.
#[inline(always)]
fn block<const P: usize>(
    v3: V3,
    src: &Plane,
    w: &[f32x8],
    k: usize,
    dil: usize,
    r: usize,
    q: usize,
) -> [f32x8; P] {
    let mut acc = [f32x8::zeroed(); P];
    for kh in 0..k {
        let row = &src.v[(r + kh * dil) * src.wp..][..src.wp];
        for kw in 0..k {
            let wv = w[kh * k + kw];
            let seg: &[f32x8; P] = row[q + kw * dil..][..P].try_into().expect("P vectors");
            for p in 0..P {
                acc[p] = v3.mul_add_f32x8(seg[p], wv, acc[p]);
            }
        }
    }
    acc
}

/// Adds the correlation of `src` with `w` (`ho × wo` outputs) onto channel block `c0` of image
/// `n` of NHWC `out`.
#[inline(always)]
fn correlate(
    v3: V3,
    src: &Plane,
    w: &[f32x8],
    g: &ConvGeom,
    (ho, wo, c): (usize, usize, usize),
    (n, c0): (usize, usize),
    out: &mut [f32],
) {
    let add = |out: &mut [f32], r: usize, q: usize, acc: &[f32x8]| {
        for (p, a) in acc.iter().enumerate() {
            let a: [f32; LANES] = cast(*a);
            let o = &mut out[((n * ho + r) * wo + q + p) * c + c0..][..LANES];
            for (o, a) in o.iter_mut().zip(a) {
                *o += a;
            }
        }
    };
    for r in 0..ho {
        let mut q = 0;
        while q + PX <= wo {
            add(out, r, q, &block::<PX>(v3, src, w, g.k, g.dil, r, q));
            q += PX;
        }
        while q < wo {
            add(out, r, q, &block::<1>(v3, src, w, g.k, g.dil, r, q));
            q += 1;
        }
    }
}

/// Forward: adds the conv of `x` with `taps` (`k · k · c`) onto `out`.
pub fn forward(v3: V3, x: &[f32], g: &ConvGeom, taps: &[f32], out: &mut [f32]) {
    v3.vectorize(
        #[inline(always)]
        || {
            let c = g.cout;
            let mut plane = Plane {
                v: Vec::new(),
                wp: 0,
            };
            for c0 in (0..c).step_by(LANES) {
                let w = tap_vectors(taps, g.k, c, c0, false);
                for n in 0..g.n {
                    Plane::pack(x, (g.h, g.w, c), n, c0, g.pad, &mut plane);
                    correlate(v3, &plane, &w, g, (g.ho, g.wo, c), (n, c0), out);
                }
            }
        },
    );
}

/// Backward: adds d loss / d x to `dx` (when given) and d loss / d taps to `dtaps`.
pub fn backward(
    v3: V3,
    x: &[f32],
    g: &ConvGeom,
    taps: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dtaps: &mut [f32],
) {
    let mut dx = dx;
    let c = g.cout;
    let border = (g.k - 1) * g.dil - g.pad;
    let mut xp = Plane {
        v: Vec::new(),
        wp: 0,
    };
    let mut dyp = Plane {
        v: Vec::new(),
        wp: 0,
    };
    for c0 in (0..c).step_by(LANES) {
        let wf = tap_vectors(taps, g.k, c, c0, true);
        let mut dw = vec![f32x8::zeroed(); g.k * g.k];
        for n in 0..g.n {
            Plane::pack(dy, (g.ho, g.wo, c), n, c0, border, &mut dyp);
            if let Some(dx) = dx.as_deref_mut() {
                v3.vectorize(
                    #[inline(always)]
                    || correlate(v3, &dyp, &wf, g, (g.h, g.w, c), (n, c0), dx),
                );
            }
            Plane::pack(x, (g.h, g.w, c), n, c0, g.pad, &mut xp);
            weight_grad(v3, &xp, &dyp, border, g, &mut dw);
        }
        for (t, v) in dw.iter().enumerate() {
            let v: [f32; LANES] = cast(*v);
            for (d, v) in dtaps[t * c + c0..][..LANES].iter_mut().zip(v) {
                *d += v;
            }
        }
    }
}

/// Adds one image's d loss / d taps onto `dw`, the kernel size a constant so the sums stay in
/// registers.
fn weight_grad(v3: V3, xp: &Plane, dyp: &Plane, border: usize, g: &ConvGeom, dw: &mut [f32x8]) {
    macro_rules! run {
        ($k:literal) => {
            v3.vectorize(
                #[inline(always)]
                || weight_grad_k::<$k>(v3, xp, dyp, border, g, dw),
            )
        };
    }
    match g.k {
        1 => run!(1),
        2 => run!(2),
        3 => run!(3),
        4 => run!(4),
        5 => run!(5),
        6 => run!(6),
        _ => run!(7),
    }
}

/// Per output row and kernel row, one register sum per kernel column; each `dy` vector is
/// loaded once for all of them.
#[inline(always)]
fn weight_grad_k<const K: usize>(
    v3: V3,
    xp: &Plane,
    dyp: &Plane,
    border: usize,
    g: &ConvGeom,
    dw: &mut [f32x8],
) {
    let span = (K - 1) * g.dil + 1;
    for r in 0..g.ho {
        let drow = &dyp.v[(r + border) * dyp.wp + border..][..g.wo];
        for kh in 0..K {
            let row = &xp.v[(r + kh * g.dil) * xp.wp..][..xp.wp];
            let mut acc = [f32x8::zeroed(); K];
            for (q, &d) in drow.iter().enumerate() {
                let seg = &row[q..][..span];
                for (kw, a) in acc.iter_mut().enumerate() {
                    *a = v3.mul_add_f32x8(seg[kw * g.dil], d, *a);
                }
            }
            for (kw, a) in acc.iter().enumerate() {
                let t = &mut dw[kh * K + kw];
                *t = v3.mul_add_f32x8(*a, v3.splat_f32x8(1.0), *t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::super::conv::{depthwise_backward, depthwise_forward};
    use super::*;

    fn geom(
        n: usize,
        (h, w): (usize, usize),
        c: usize,
        k: usize,
        dil: usize,
        pad: usize,
    ) -> ConvGeom {
        ConvGeom {
            n,
            h,
            w,
            cin: c,
            ho: h + 2 * pad - dil * (k - 1),
            wo: w + 2 * pad - dil * (k - 1),
            cout: c,
            k,
            stride: 1,
            pad,
            dil,
            groups: c,
        }
    }

    fn random(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    fn assert_close(what: &str, got: &[f32], want: &[f32]) {
        let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-5 * scale, "{what}[{i}]: {g} vs {w}");
        }
    }

    /// Values and both gradients equal the general loops' (to float rounding: the sums run in
    /// another order) for every kernel size, dilation and padding the kernels accept, with widths
    /// that leave partial pixel blocks.
    #[test]
    fn matches_the_general_loops() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let cases = [
            ((5, 6), 8, 1, 1, 0),
            ((7, 9), 16, 3, 1, 1),
            ((9, 10), 8, 3, 2, 2),
            ((10, 11), 24, 5, 1, 2),
            ((12, 12), 8, 5, 2, 4),
            ((9, 8), 16, 7, 1, 3),
            ((6, 13), 8, 3, 1, 0),
            ((8, 8), 8, 2, 1, 1),
            ((11, 17), 32, 4, 1, 0),
        ];
        for ((h, w), c, k, dil, pad) in cases {
            let g = geom(2, (h, w), c, k, dil, pad);
            let what = format!("{h}x{w}x{c} k{k} dil{dil} pad{pad}");
            let Some(v3) = supported(&g) else {
                // Only a host without AVX2 and FMA may refuse a geometry these kernels accept.
                assert!(
                    !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")),
                    "{what}: refused"
                );
                continue;
            };
            let x = random(&mut rng, g.n * h * w * c);
            let taps = random(&mut rng, k * k * c);
            let dy = random(&mut rng, g.n * g.ho * g.wo * c);
            let bias = random(&mut rng, g.n * g.ho * g.wo * c);

            let (mut got, mut want) = (bias.clone(), bias.clone());
            forward(v3, &x, &g, &taps, &mut got);
            depthwise_forward(&x, &g, &taps, &mut want);
            assert_close(&format!("{what} forward"), &got, &want);

            let dx0 = random(&mut rng, x.len());
            let (mut dx_got, mut dx_want) = (dx0.clone(), dx0);
            let (mut dt_got, mut dt_want) = (vec![0.5; taps.len()], vec![0.5; taps.len()]);
            backward(v3, &x, &g, &taps, &dy, Some(&mut dx_got), &mut dt_got);
            depthwise_backward(&x, &g, &taps, &dy, Some(&mut dx_want), &mut dt_want);
            assert_close(&format!("{what} dx"), &dx_got, &dx_want);
            assert_close(&format!("{what} dtaps"), &dt_got, &dt_want);

            let mut dt_only = vec![0.5; taps.len()];
            backward(v3, &x, &g, &taps, &dy, None, &mut dt_only);
            assert_close(&format!("{what} dtaps without dx"), &dt_only, &dt_want);
        }
    }

    /// Strides, channel counts off the vector width, and paddings wider than the kernel reach go to
    /// the general loops.
    #[test]
    fn refuses_what_it_does_not_cover() {
        let mut strided = geom(1, (8, 8), 8, 3, 1, 1);
        strided.stride = 2;
        strided.ho = 4;
        strided.wo = 4;
        assert!(supported(&strided).is_none());
        assert!(supported(&geom(1, (8, 8), 12, 3, 1, 1)).is_none());
        assert!(supported(&geom(1, (8, 8), 8, 3, 1, 3)).is_none());
    }
}

//! The Armv7E-M DSP kernels, the crate's only `unsafe`: one pixel's convolution window against
//! a block of output channels ([`window`], one `asm!` loop) and one tap of four depthwise
//! channels ([`lanes4`], eight register-only instructions).
//!
//! The instructions, as CMSIS-NN's `arm_nn_mat_mult_kernel_s8_s16` uses them:
//! * `SXTB16` / `SXTB16 …, ROR #8`: sign-extend bytes 0 and 2 (or 1 and 3) of a word into two
//!   16-bit halves (CMSIS-NN's `read_and_pad_reordered`);
//! * `SXTAB16`: the same plus a per-half offset (CMSIS-NN's `read_and_pad` with the input
//!   offset), which centres activations, `x − z_x` in −255..=255, at no extra cost;
//! * `SMLAD`: `acc + lo(a)·lo(b) + hi(a)·hi(b)` over signed 16-bit halves, two MACs in one
//!   instruction, wrapping modulo 2^32 (it only sets the sticky Q flag on overflow).
//!
//! Splitting both operands of a product with the same extraction pairs byte `i` of one with byte
//! `i` of the other, so `smlad(sxtb16(w), sxtab16(−z, x)) + smlad(sxtb16_ror8(w),
//! sxtab16_ror8(−z, x))` is exactly `Σ_i w_i·(x_i − z)` over the four bytes: neither operand needs
//! reordering, and the sum is the same exact integer the reference kernel forms.
//!
//! `cfg(edge_dsp)` is set by `build.rs` for Armv7E-M targets (Cortex-M4, M7). Elsewhere the same
//! loop runs on a portable model of the instructions, so the kernel is tested on the host; those
//! targets never call it (`conv::conv2d` dispatches to it only under `cfg(edge_dsp)`).

#![allow(unsafe_code)]

#[cfg(edge_dsp)]
use core::arch::asm;

/// Bytes 0 and 2 of `x`, sign-extended into the low and high 16-bit halves (`SXTB16`).
#[cfg(all(test, not(edge_dsp)))]
fn sxtb16(x: u32) -> u32 {
    let lo = x as u8 as i8 as i16 as u16 as u32;
    let hi = (x >> 16) as u8 as i8 as i16 as u16 as u32;
    lo | hi << 16
}

/// Bytes 1 and 3 of `x`, sign-extended into the low and high 16-bit halves (`SXTB16 …, ROR #8`).
#[cfg(all(test, not(edge_dsp)))]
fn sxtb16_ror8(x: u32) -> u32 {
    sxtb16(x.rotate_right(8))
}

/// `off + sxtb16(x)` per 16-bit half, wrapping (`SXTAB16`).
#[cfg(all(test, not(edge_dsp)))]
fn sxtab16(off: u32, x: u32) -> u32 {
    add16(off, sxtb16(x))
}

/// `off + sxtb16_ror8(x)` per 16-bit half, wrapping (`SXTAB16 …, ROR #8`).
#[cfg(all(test, not(edge_dsp)))]
fn sxtab16_ror8(off: u32, x: u32) -> u32 {
    add16(off, sxtb16_ror8(x))
}

/// Halfword-wise wrapping sum.
#[cfg(all(test, not(edge_dsp)))]
fn add16(a: u32, b: u32) -> u32 {
    let lo = (a as u16).wrapping_add(b as u16) as u32;
    let hi = ((a >> 16) as u16).wrapping_add((b >> 16) as u16) as u32;
    lo | hi << 16
}

/// `acc + lo(a)·lo(b) + hi(a)·hi(b)` with signed 16-bit halves, wrapping (`SMLAD`).
#[cfg(all(test, not(edge_dsp)))]
fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let lo = (a as i16 as i32).wrapping_mul(b as i16 as i32);
    let hi = ((a >> 16) as i16 as i32).wrapping_mul((b >> 16) as i16 as i32);
    acc.wrapping_add(lo).wrapping_add(hi)
}

/// Four bytes as a little-endian word.
#[cfg(all(test, not(edge_dsp)))]
fn word(x: &[i8; 4]) -> u32 {
    u32::from_le_bytes([x[0] as u8, x[1] as u8, x[2] as u8, x[3] as u8])
}

/// `v` in both 16-bit halves of a word: the offset operand of `SXTAB16`.
#[inline(always)]
pub(crate) const fn splat16(v: i16) -> u32 {
    let h = v as u16 as u32;
    h | h << 16
}

/// `acc[j] += (w_j − z_w)·(x_j − z_x)` for the four bytes `j` of `x` and `w`: one tap of four
/// depthwise channels, `centre` being [`splat16`]`(−z_x)` and `centre_w` [`splat16`]`(−z_w)`
/// (0 for symmetric weights). Both factors fit 16 bits (−255..=255). On Armv7E-M eight
/// register-only instructions (`SXTAB16` four times, then `SMLABB`/`SMLATT`, one exact MAC
/// each); elsewhere plain Rust.
#[inline(always)]
pub(crate) fn lanes4(x: &[i8; 4], w: &[i8; 4], centre: u32, centre_w: u32, acc: &mut [i32; 4]) {
    #[cfg(edge_dsp)]
    {
        let xw = u32::from_le_bytes(x.map(|v| v as u8));
        let ww = u32::from_le_bytes(w.map(|v| v as u8));
        let [mut a0, mut a1, mut a2, mut a3] = *acc;
        // SAFETY: register-only instructions of every Armv7E-M core (cfg(edge_dsp)); SMLAxy may
        // set the sticky Q flag, which nothing reads, so flags are not declared preserved.
        unsafe {
            asm!(
                "sxtab16 {x02}, {off}, {x}",
                "sxtab16 {x13}, {off}, {x}, ror #8",
                "sxtab16 {w02}, {offw}, {w}",
                "sxtab16 {w13}, {offw}, {w}, ror #8",
                "smlabb {a0}, {w02}, {x02}, {a0}",
                "smlatt {a2}, {w02}, {x02}, {a2}",
                "smlabb {a1}, {w13}, {x13}, {a1}",
                "smlatt {a3}, {w13}, {x13}, {a3}",
                x = in(reg) xw,
                w = in(reg) ww,
                off = in(reg) centre,
                offw = in(reg) centre_w,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                x02 = out(reg) _,
                x13 = out(reg) _,
                w02 = out(reg) _,
                w13 = out(reg) _,
                options(pure, nomem, nostack),
            );
        }
        *acc = [a0, a1, a2, a3];
    }
    #[cfg(not(edge_dsp))]
    {
        let z = -(centre as u16 as i16 as i32);
        let z_w = -(centre_w as u16 as i16 as i32);
        for ((a, &w), &x) in acc.iter_mut().zip(w).zip(x) {
            *a = a.wrapping_add((w as i32 - z_w) * (x as i32 - z));
        }
    }
}

/// The shape of one pixel's valid window for [`window`]: `rows` runs of `len` bytes, the input
/// runs `x_step` bytes apart, the filter runs `w_step` bytes apart.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Runs {
    /// Valid tap rows.
    pub rows: usize,
    /// Bytes per run: valid taps of a row × C_in.
    pub len: usize,
    /// Input bytes from one run to the next (a multiple of the input row), at least `len`.
    pub x_step: usize,
    /// Filter bytes from one run to the next (`kw·C_in`), at least `len`.
    pub w_step: usize,
}

/// `acc[c] = Σ_runs Σ_i w[c·stride + r·w_step + i]·(x[r·x_step + i] − z_x)` for the
/// `acc.len()` output channels whose filters start `stride` bytes apart in `w`: one pixel's
/// window (its valid taps) against a block of channels, activations centred on `z_x`.
///
/// On Armv7E-M all groups of four channels go through one `asm!` block: per input word one load
/// and two `SXTAB16` (widen and centre), then per channel one load, two `SXTB16` and two `SMLAD`,
/// i.e. 16 MACs in about 24.75 instructions with the loop (unrolled four times); the last
/// `len % 4` bytes of a run take one `SMLABB` per channel. It uses 12 registers (four
/// accumulators, four temporaries, three pointers and the stride) and keeps the counters, steps
/// and offset in a 56-byte stack frame of its own, since the compiler's allocation of the same
/// loop spills. The last `acc.len() % 4` channels are summed in plain Rust. Returns `false`,
/// touching nothing, if a run would leave `x` or `w` or the steps are shorter than a run.
#[inline(always)]
pub(crate) fn window(
    x: &[i8],
    w: &[i8],
    stride: usize,
    runs: Runs,
    z_x: i8,
    acc: &mut [i32],
) -> bool {
    let Runs {
        rows,
        len,
        x_step,
        w_step,
    } = runs;
    if rows == 0 || len == 0 || acc.is_empty() {
        acc.fill(0);
        return true;
    }
    if x_step < len || w_step < len {
        return false;
    }
    // The last run ends at (rows − 1)·step + len; the last channel starts at (C − 1)·stride.
    let end = |step: usize| (rows - 1).checked_mul(step)?.checked_add(len);
    let x_end = end(x_step);
    let w_end = end(w_step).and_then(|e| e.checked_add(stride.checked_mul(acc.len() - 1)?));
    if x_end.is_none_or(|e| e > x.len()) || w_end.is_none_or(|e| e > w.len()) {
        return false;
    }
    let (quads, rest) = acc.as_chunks_mut::<4>();
    if !quads.is_empty() {
        quad_words(x, w, stride, runs, z_x, quads);
    }
    // Channel k's filter runs, from `w[k·stride..]` (inside `w`: checked above).
    let filter = |k: usize| w.get(k * stride..).unwrap_or_default();
    for (k, acc) in (4 * quads.len()..).zip(rest) {
        *acc = centred_dot(x, filter(k), runs, z_x);
    }
    true
}

/// `Σ_runs Σ_i w[r·w_step + i]·(x[r·x_step + i] − z_x)`: one channel of [`window`] in plain
/// Rust (bounds already checked there, so the slicing cannot fail).
#[inline(always)]
fn centred_dot(x: &[i8], w: &[i8], runs: Runs, z_x: i8) -> i32 {
    let mut sum = 0i32;
    for r in 0..runs.rows {
        let (xr, wr) = (r * runs.x_step, r * runs.w_step);
        let (Some(xs), Some(ws)) = (x.get(xr..xr + runs.len), w.get(wr..wr + runs.len)) else {
            return sum;
        };
        for (&w, &x) in ws.iter().zip(xs) {
            sum = sum.wrapping_add(w as i32 * (x as i32 - z_x as i32));
        }
    }
    sum
}

/// [`window`] for `4·acc.len()` channels (at least 4), bounds already checked by the caller
/// (`runs.rows ≥ 1`, `runs.len ≥ 1`).
#[inline(always)]
fn quad_words(x: &[i8], w: &[i8], stride: usize, runs: Runs, z_x: i8, acc: &mut [[i32; 4]]) {
    #[cfg(edge_dsp)]
    {
        let Runs {
            rows,
            len,
            x_step,
            w_step,
        } = runs;
        let centre = splat16(-(z_x as i16));
        let xp = x.as_ptr();
        let wa = w.as_ptr();
        let (quads, out) = (acc.len(), acc.as_mut_ptr());
        let words = len & !3; // whole words of a run, then len − words single bytes
        // SAFETY: for quad q and run r the loop reads [xp + r·x_step, … + len) of `x` and, for
        // k in 0..4, [wa + (4q + k)·stride + r·w_step, … + len) of `w`, all inside the slices
        // (`window` checked them for all of `acc`'s channels); it writes quad q's four sums to
        // `acc[q]`. `quads ≥ 1` and `rows ≥ 1`, so those loops run at least once; the word loop
        // runs only if `words > 0` (entered part-way through its first pass when the word count
        // is not a multiple of 4) and ends exactly at its end pointer; the byte loop runs only
        // if `len − words > 0`, that many times. Besides `acc` the block writes only its own
        // 56 bytes below the stack pointer, released before it ends, and its register operands.
        unsafe {
            asm!(
                "sub sp, sp, #56",
                "str {t0}, [sp]",       // whole words of a run, in bytes
                "str {wc}, [sp, #44]",  // bytes past them
                "str {t3}, [sp, #48]",  // −z_x
                "str {d}, [sp, #4]",    // centre
                "str {b}, [sp, #12]",   // x_step − len
                "str {a}, [sp, #16]",   // w_step − len
                "str {x}, [sp, #24]",   // window start
                "str {wa}, [sp, #28]",  // this quad's filters
                "str {t1}, [sp, #32]",  // quads left
                "str {t2}, [sp, #36]",  // where this quad's sums go
                "str {c}, [sp, #40]",   // runs
                "4:",
                "ldr {x}, [sp, #24]",
                "ldr {wa}, [sp, #28]",
                "add {wc}, {wa}, {fl}, lsl #1",
                "ldr {t0}, [sp, #40]",
                "str {t0}, [sp, #8]",   // runs left
                "movs {a}, #0",
                "movs {b}, #0",
                "movs {c}, #0",
                "movs {d}, #0",
                "3:",
                "ldr {t3}, [sp]",
                "cmp {t3}, #0",
                "beq 9f",               // no whole word in a run: only bytes
                "add {t0}, {t3}, {x}",
                "str {t0}, [sp, #20]",  // end of this run's words
                // The loop does four words a pass; a run of 4·q + r words (r > 0) starts
                // inside the first pass, at the word that leaves r of it.
                "ands {t3}, {t3}, #12",
                "beq 2f",
                "cmp {t3}, #8",
                "beq 7f",
                "bhi 6f",
                "b 8f",
                "2:",
                "ldr {t0}, [{x}], #4",
                "ldr {t1}, [sp, #4]",
                "sxtab16 {t2}, {t1}, {t0}",
                "sxtab16 {t1}, {t1}, {t0}, ror #8",
                "ldr {t0}, [{wa}, {fl}]",
                "sxtb16 {t3}, {t0}",
                "sxtb16 {t0}, {t0}, ror #8",
                "smlad {b}, {t3}, {t2}, {b}",
                "smlad {b}, {t0}, {t1}, {b}",
                "ldr {t0}, [{wa}], #4",
                "sxtb16 {t3}, {t0}",
                "sxtb16 {t0}, {t0}, ror #8",
                "smlad {a}, {t3}, {t2}, {a}",
                "smlad {a}, {t0}, {t1}, {a}",
                "ldr {t0}, [{wc}, {fl}]",
                "sxtb16 {t3}, {t0}",
                "sxtb16 {t0}, {t0}, ror #8",
                "smlad {d}, {t3}, {t2}, {d}",
                "smlad {d}, {t0}, {t1}, {d}",
                "ldr {t0}, [{wc}], #4",
                "sxtb16 {t3}, {t0}",
                "sxtb16 {t0}, {t0}, ror #8",
                "smlad {c}, {t3}, {t2}, {c}",
                "smlad {c}, {t0}, {t1}, {c}",
                "6:",
                "ldr {t0}, [{x}], #4",
                "ldr {t1}, [sp, #4]",
                "sxtab16 {t2}, {t1}, {t0}",
                "sxtab16 {t1}, {t1}, {t0}, ror #8",
                "ldr {t0}, [{wa}, {fl}]",
                "sxtb16 {t3}, {t0}",
                "sxtb16 {t0}, {t0}, ror #8",
                "smlad {b}, {t3}, {t2}, {b}",
                "smlad {b}, {t0}, {t1}, {b}",
                "ldr {t0}, [{wa}], #4",
                "sxtb16 {t3}, {t0}",
                "sxtb16 {t0}, {t0}, ror #8",
                "smlad {a}, {t3}, {t2}, {a}",
                "smlad {a}, {t0}, {t1}, {a}",
                "ldr {t0}, [{wc}, {fl}]",
                "sxtb16 {t3}, {t0}",
                "sxtb16 {t0}, {t0}, ror #8",
                "smlad {d}, {t3}, {t2}, {d}",
                "smlad {d}, {t0}, {t1}, {d}",
                "ldr {t0}, [{wc}], #4",
                "sxtb16 {t3}, {t0}",
                "sxtb16 {t0}, {t0}, ror #8",
                "smlad {c}, {t3}, {t2}, {c}",
                "smlad {c}, {t0}, {t1}, {c}",
                "7:",
                "ldr {t0}, [{x}], #4",
                "ldr {t1}, [sp, #4]",
                "sxtab16 {t2}, {t1}, {t0}",
                "sxtab16 {t1}, {t1}, {t0}, ror #8",
                "ldr {t0}, [{wa}, {fl}]",
                "sxtb16 {t3}, {t0}",
                "sxtb16 {t0}, {t0}, ror #8",
                "smlad {b}, {t3}, {t2}, {b}",
                "smlad {b}, {t0}, {t1}, {b}",
                "ldr {t0}, [{wa}], #4",
                "sxtb16 {t3}, {t0}",
                "sxtb16 {t0}, {t0}, ror #8",
                "smlad {a}, {t3}, {t2}, {a}",
                "smlad {a}, {t0}, {t1}, {a}",
                "ldr {t0}, [{wc}, {fl}]",
                "sxtb16 {t3}, {t0}",
                "sxtb16 {t0}, {t0}, ror #8",
                "smlad {d}, {t3}, {t2}, {d}",
                "smlad {d}, {t0}, {t1}, {d}",
                "ldr {t0}, [{wc}], #4",
                "sxtb16 {t3}, {t0}",
                "sxtb16 {t0}, {t0}, ror #8",
                "smlad {c}, {t3}, {t2}, {c}",
                "smlad {c}, {t0}, {t1}, {c}",
                "8:",
                "ldr {t0}, [{x}], #4",
                "ldr {t1}, [sp, #4]",
                "sxtab16 {t2}, {t1}, {t0}",
                "sxtab16 {t1}, {t1}, {t0}, ror #8",
                "ldr {t0}, [{wa}, {fl}]",
                "sxtb16 {t3}, {t0}",
                "sxtb16 {t0}, {t0}, ror #8",
                "smlad {b}, {t3}, {t2}, {b}",
                "smlad {b}, {t0}, {t1}, {b}",
                "ldr {t0}, [{wa}], #4",
                "sxtb16 {t3}, {t0}",
                "sxtb16 {t0}, {t0}, ror #8",
                "smlad {a}, {t3}, {t2}, {a}",
                "smlad {a}, {t0}, {t1}, {a}",
                "ldr {t0}, [{wc}, {fl}]",
                "sxtb16 {t3}, {t0}",
                "sxtb16 {t0}, {t0}, ror #8",
                "smlad {d}, {t3}, {t2}, {d}",
                "smlad {d}, {t0}, {t1}, {d}",
                "ldr {t0}, [{wc}], #4",
                "sxtb16 {t3}, {t0}",
                "sxtb16 {t0}, {t0}, ror #8",
                "smlad {c}, {t3}, {t2}, {c}",
                "smlad {c}, {t0}, {t1}, {c}",
                "ldr {t3}, [sp, #20]",
                "cmp {x}, {t3}",
                "bne 2b",
                // The last len % 4 bytes of the run, one at a time (SMLABB: one MAC each).
                "9:",
                "ldr {t3}, [sp, #44]",
                "cmp {t3}, #0",
                "beq 13f",
                "12:",
                "ldrsb {t0}, [{x}], #1",
                "ldr {t1}, [sp, #48]",
                "add {t0}, {t0}, {t1}",
                "ldrsb {t2}, [{wa}, {fl}]",
                "smlabb {b}, {t2}, {t0}, {b}",
                "ldrsb {t2}, [{wa}], #1",
                "smlabb {a}, {t2}, {t0}, {a}",
                "ldrsb {t2}, [{wc}, {fl}]",
                "smlabb {d}, {t2}, {t0}, {d}",
                "ldrsb {t2}, [{wc}], #1",
                "smlabb {c}, {t2}, {t0}, {c}",
                "subs {t3}, {t3}, #1",
                "bne 12b",
                "13:",
                "ldr {t0}, [sp, #12]",
                "add {x}, {x}, {t0}",
                "ldr {t0}, [sp, #16]",
                "add {wa}, {wa}, {t0}",
                "add {wc}, {wc}, {t0}",
                "ldr {t0}, [sp, #8]",
                "subs {t0}, {t0}, #1",
                "str {t0}, [sp, #8]",
                "bne 3b",
                "ldr {t0}, [sp, #36]",
                "str {a}, [{t0}]",
                "str {b}, [{t0}, #4]",
                "str {c}, [{t0}, #8]",
                "str {d}, [{t0}, #12]",
                "add {t0}, {t0}, #16",
                "str {t0}, [sp, #36]",
                "ldr {t0}, [sp, #28]",
                "add {t0}, {t0}, {fl}, lsl #2",
                "str {t0}, [sp, #28]",
                "ldr {t0}, [sp, #32]",
                "subs {t0}, {t0}, #1",
                "str {t0}, [sp, #32]",
                "bne 4b",
                "add sp, sp, #56",
                x = inout(reg) xp => _,
                wa = inout(reg) wa => _,
                wc = inout(reg) len - words => _,
                fl = in(reg) stride,
                a = inout(reg) w_step - len => _,
                b = inout(reg) x_step - len => _,
                c = inout(reg) rows => _,
                d = inout(reg) centre => _,
                t0 = inout(reg) words => _,
                t1 = inout(reg) quads => _,
                t2 = inout(reg) out => _,
                t3 = inout(reg) -(z_x as i32) => _,
            );
        }
    }
    #[cfg(target_arch = "x86_64")]
    super::x86::quad_words(x, w, stride, runs, z_x, acc);
    #[cfg(not(any(edge_dsp, target_arch = "x86_64")))]
    for (k, acc) in acc.as_flattened_mut().iter_mut().enumerate() {
        *acc = centred_dot(x, w.get(k * stride..).unwrap_or_default(), runs, z_x);
    }
}

/// The assembly of [`quad_words`] step for step on the portable model of its instructions, for
/// host tests of its arithmetic (the assembly itself runs in the QEMU board tests).
#[cfg(all(test, not(edge_dsp)))]
fn quad_words_model(x: &[i8], w: &[i8], stride: usize, runs: Runs, z_x: i8, acc: &mut [[i32; 4]]) {
    let Runs {
        rows,
        len,
        x_step,
        w_step,
    } = runs;
    let centre = splat16(-(z_x as i16));
    {
        for (k, acc) in acc.as_flattened_mut().iter_mut().enumerate() {
            let mut sum = 0i32;
            for r in 0..rows {
                let xs = &x[r * x_step..r * x_step + len];
                let w0 = k * stride + r * w_step;
                let ws = &w[w0..w0 + len];
                let ((w4, w1), (x4, x1)) = (ws.as_chunks::<4>(), xs.as_chunks::<4>());
                for (w, x) in w4.iter().zip(x4) {
                    let (w, x) = (word(w), word(x));
                    sum = smlad(sxtb16(w), sxtab16(centre, x), sum);
                    sum = smlad(sxtb16_ror8(w), sxtab16_ror8(centre, x), sum);
                }
                // The bytes past the last word (SMLABB in the assembly).
                for (&w, &x) in w1.iter().zip(x1) {
                    sum = sum.wrapping_add(w as i32 * (x as i32 - z_x as i32));
                }
            }
            *acc = sum;
        }
    }
}

#[cfg(all(test, not(edge_dsp)))]
mod tests {
    use super::*;

    /// The instruction model of the assembly forms the same sums as the host's kernel for every
    /// run length (whole words, single bytes past them) and zero point.
    #[test]
    fn model_matches_host_kernel() {
        for len in [1usize, 3, 4, 5, 8, 13, 48] {
            for z_x in [-128i8, -7, 0, 127] {
                let runs = Runs {
                    rows: 2,
                    len,
                    x_step: len + 3,
                    w_step: len + 1,
                };
                let stride = 2 * (len + 1) + 2;
                let x: Vec<i8> = (0..2 * (len + 3)).map(|i| (i * 37 + 11) as i8).collect();
                let w: Vec<i8> = (0..8 * stride).map(|i| (i * 91 + len) as i8).collect();
                let (mut model, mut host) = ([[0i32; 4]; 2], [[0i32; 4]; 2]);
                quad_words_model(&x, &w, stride, runs, z_x, &mut model);
                quad_words(&x, &w, stride, runs, z_x, &mut host);
                assert_eq!(model, host, "len {len}, z_x {z_x}");
            }
        }
    }

    #[test]
    fn four_byte_dot_products() {
        let vals = [0i8, 1, -1, 127, -128, 77, -3, 64];
        for a in 0..vals.len() {
            for b in 0..vals.len() {
                let w = [vals[a], vals[b], vals[(a + 3) % 8], vals[(b + 5) % 8]];
                let x = [vals[(a + b) % 8], vals[b], vals[a], vals[(a * b) % 8]];
                let expect: i32 = w.iter().zip(&x).map(|(&w, &x)| w as i32 * x as i32).sum();
                let (ww, xw) = (word(&w), word(&x));
                let got = smlad(sxtb16(ww), sxtb16(xw), 5);
                let got = smlad(sxtb16_ror8(ww), sxtb16_ror8(xw), got);
                assert_eq!(got, expect + 5, "{w:?}·{x:?}");
            }
        }
        // With an offset: the bytes centred on a zero point, Σ w·(x − z).
        for z in [-128i16, -1, 0, 5, 127] {
            let w = [3i8, -128, 127, -7];
            let x = [-128i8, 127, 0, 99];
            let expect: i32 = w
                .iter()
                .zip(&x)
                .map(|(&w, &x)| w as i32 * (x as i32 - z as i32))
                .sum();
            let (ww, xw, off) = (word(&w), word(&x), splat16(-z));
            let got = smlad(sxtb16(ww), sxtab16(off, xw), 0);
            let got = smlad(sxtb16_ror8(ww), sxtab16_ror8(off, xw), got);
            assert_eq!(got, expect, "z = {z}");
        }
        // Wrapping, like the instruction.
        assert_eq!(smlad(0x0001_0001, 0x0001_0001, i32::MAX), i32::MIN + 1);
    }
}

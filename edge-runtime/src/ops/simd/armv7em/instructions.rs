//! The Armv7E-M DSP instructions the kernels of this module are written over, one function
//! each: under `cfg(edge_dsp)` one register-only `asm!` instruction (a short `USUB8`/`SEL`
//! sequence for [`clamp8`]), elsewhere a portable model of the instruction under the same name,
//! so that the kernels' arithmetic runs in host tests (the assembly itself runs in the QEMU
//! board tests).

#![allow(unsafe_code)]

#[cfg(edge_dsp)]
use core::arch::asm;

/// Bytes 0 and 2 of `x`, sign-extended into the low and high 16-bit halves (`SXTB16`).
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
#[inline(always)]
pub(super) fn sxtb16(x: u32) -> u32 {
    let lo = x as u8 as i8 as i16 as u16 as u32;
    let hi = (x >> 16) as u8 as i8 as i16 as u16 as u32;
    lo | hi << 16
}

/// Bytes 1 and 3 of `x`, sign-extended into the low and high 16-bit halves (`SXTB16 …, ROR #8`).
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
#[inline(always)]
pub(super) fn sxtb16_ror8(x: u32) -> u32 {
    sxtb16(x.rotate_right(8))
}

/// `off + sxtb16(x)` per 16-bit half, wrapping (`SXTAB16`).
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
#[inline(always)]
pub(super) fn sxtab16(off: u32, x: u32) -> u32 {
    add16(off, sxtb16(x))
}

/// `off + sxtb16_ror8(x)` per 16-bit half, wrapping (`SXTAB16 …, ROR #8`).
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
#[inline(always)]
pub(super) fn sxtab16_ror8(off: u32, x: u32) -> u32 {
    add16(off, sxtb16_ror8(x))
}

/// Halfword-wise wrapping sum.
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
#[inline(always)]
pub(super) fn add16(a: u32, b: u32) -> u32 {
    let lo = (a as u16).wrapping_add(b as u16) as u32;
    let hi = ((a >> 16) as u16).wrapping_add((b >> 16) as u16) as u32;
    lo | hi << 16
}

/// `acc + lo(a)·lo(b) + hi(a)·hi(b)` with signed 16-bit halves, wrapping (`SMLAD`).
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
#[inline(always)]
pub(super) fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let lo = (a as i16 as i32).wrapping_mul(b as i16 as i32);
    let hi = ((a >> 16) as i16 as i32).wrapping_mul((b >> 16) as i16 as i32);
    acc.wrapping_add(lo).wrapping_add(hi)
}

/// The low half of `lo` below the low half of `hi` (`PKHBT …, LSL #16`).
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
#[inline(always)]
pub(super) fn pkhbt(lo: u32, hi: u32) -> u32 {
    (lo & 0xffff) | hi << 16
}

/// The high half of `hi` above the high half of `lo` (`PKHTB …, ASR #16`).
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
#[inline(always)]
pub(super) fn pkhtb(hi: u32, lo: u32) -> u32 {
    (hi & 0xffff_0000) | lo >> 16
}

/// `SXTB16` on Armv7E-M.
#[cfg(edge_dsp)]
#[inline(always)]
pub(super) fn sxtb16(x: u32) -> u32 {
    let r;
    // SAFETY: a register-only instruction of every Armv7E-M core (cfg(edge_dsp)).
    unsafe {
        asm!("sxtb16 {r}, {x}", r = lateout(reg) r, x = in(reg) x,
             options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// `SXTB16 …, ROR #8` on Armv7E-M.
#[cfg(edge_dsp)]
#[inline(always)]
pub(super) fn sxtb16_ror8(x: u32) -> u32 {
    let r;
    // SAFETY: a register-only instruction of every Armv7E-M core (cfg(edge_dsp)).
    unsafe {
        asm!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) r, x = in(reg) x,
             options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// `SXTAB16` on Armv7E-M.
#[cfg(edge_dsp)]
#[inline(always)]
pub(super) fn sxtab16(off: u32, x: u32) -> u32 {
    let r;
    // SAFETY: a register-only instruction of every Armv7E-M core (cfg(edge_dsp)).
    unsafe {
        asm!("sxtab16 {r}, {o}, {x}", r = lateout(reg) r, o = in(reg) off, x = in(reg) x,
             options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// `SXTAB16 …, ROR #8` on Armv7E-M.
#[cfg(edge_dsp)]
#[inline(always)]
pub(super) fn sxtab16_ror8(off: u32, x: u32) -> u32 {
    let r;
    // SAFETY: a register-only instruction of every Armv7E-M core (cfg(edge_dsp)).
    unsafe {
        asm!("sxtab16 {r}, {o}, {x}, ror #8", r = lateout(reg) r, o = in(reg) off, x = in(reg) x,
             options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// `SMLAD` on Armv7E-M.
#[cfg(edge_dsp)]
#[inline(always)]
pub(super) fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let r;
    // SAFETY: a register-only instruction of every Armv7E-M core (cfg(edge_dsp)); it may set
    // the sticky Q flag, which nothing reads, so flags are not declared preserved.
    unsafe {
        asm!("smlad {r}, {a}, {b}, {c}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b,
             c = in(reg) acc, options(pure, nomem, nostack));
    }
    r
}

/// `PKHBT …, LSL #16` on Armv7E-M.
#[cfg(edge_dsp)]
#[inline(always)]
pub(super) fn pkhbt(lo: u32, hi: u32) -> u32 {
    let r;
    // SAFETY: a register-only instruction of every Armv7E-M core (cfg(edge_dsp)).
    unsafe {
        asm!("pkhbt {r}, {l}, {h}, lsl #16", r = lateout(reg) r, l = in(reg) lo, h = in(reg) hi,
             options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// `PKHTB …, ASR #16` on Armv7E-M.
#[cfg(edge_dsp)]
#[inline(always)]
pub(super) fn pkhtb(hi: u32, lo: u32) -> u32 {
    let r;
    // SAFETY: a register-only instruction of every Armv7E-M core (cfg(edge_dsp)).
    unsafe {
        asm!("pkhtb {r}, {h}, {l}, asr #16", r = lateout(reg) r, h = in(reg) hi, l = in(reg) lo,
             options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// `UADD16` on Armv7E-M: the halfword-wise wrapping sum (it sets the GE flags, which nothing
/// reads).
#[cfg(edge_dsp)]
#[inline(always)]
pub(super) fn add16(a: u32, b: u32) -> u32 {
    let r;
    // SAFETY: a register-only instruction of every Armv7E-M core (cfg(edge_dsp)); it writes the
    // GE flags, so flags are not declared preserved.
    unsafe {
        asm!("uadd16 {r}, {a}, {b}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b,
             options(pure, nomem, nostack));
    }
    r
}

/// `lo(a)·lo(b)` over signed 16-bit halves (`SMULBB`).
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
#[inline(always)]
pub(super) fn smulbb(a: u32, b: u32) -> i32 {
    (a as i16 as i32).wrapping_mul(b as i16 as i32)
}

/// `hi(a)·lo(b)` over signed 16-bit halves (`SMULTB`).
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
#[inline(always)]
pub(super) fn smultb(a: u32, b: u32) -> i32 {
    ((a >> 16) as i16 as i32).wrapping_mul(b as i16 as i32)
}

/// `SMULBB` on Armv7E-M.
#[cfg(edge_dsp)]
#[inline(always)]
pub(super) fn smulbb(a: u32, b: u32) -> i32 {
    let r;
    // SAFETY: a register-only instruction of every Armv7E-M core (cfg(edge_dsp)).
    unsafe {
        asm!("smulbb {r}, {a}, {b}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b,
             options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// `SMULTB` on Armv7E-M.
#[cfg(edge_dsp)]
#[inline(always)]
pub(super) fn smultb(a: u32, b: u32) -> i32 {
    let r;
    // SAFETY: a register-only instruction of every Armv7E-M core (cfg(edge_dsp)).
    unsafe {
        asm!("smultb {r}, {a}, {b}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b,
             options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// Byte-wise wrapping sum (`UADD8`; the Armv7E-M build writes it inside `pointwise_a2`'s
/// assembly).
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
#[inline(always)]
pub(super) fn uadd8(a: u32, b: u32) -> u32 {
    let (a, b) = (a.to_le_bytes(), b.to_le_bytes());
    u32::from_le_bytes(core::array::from_fn(|i| a[i].wrapping_add(b[i])))
}

/// Four bytes as a little-endian word.
#[cfg(all(test, not(edge_dsp)))]
pub(super) fn word(x: &[i8; 4]) -> u32 {
    u32::from_le_bytes([x[0] as u8, x[1] as u8, x[2] as u8, x[3] as u8])
}

/// Each unsigned byte of `w` raised to at least that of `lo`, then lowered to at most that of
/// `hi` (`USUB8` and `SEL`, twice); as [`clamp_to_i8`](crate::requant::clamp_to_i8), `hi` wins
/// where `lo > hi`.
#[cfg(edge_dsp)]
#[inline(always)]
pub(super) fn clamp8(w: u32, lo: u32, hi: u32) -> u32 {
    let r;
    // SAFETY: register-only instructions of every Armv7E-M core (cfg(edge_dsp)); `SEL` reads
    // the GE flags the `USUB8` before it wrote, inside this one block.
    unsafe {
        asm!(
            "usub8 {t}, {w}, {lo}",
            "sel {w}, {w}, {lo}",
            "usub8 {t}, {hi}, {w}",
            "sel {w}, {w}, {hi}",
            w = inout(reg) w => r,
            lo = in(reg) lo,
            hi = in(reg) hi,
            t = out(reg) _,
            options(pure, nomem, nostack),
        );
    }
    r
}

/// The model of [`clamp8`] on Armv7E-M.
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
pub(super) fn clamp8(w: u32, lo: u32, hi: u32) -> u32 {
    let (w, lo, hi) = (w.to_le_bytes(), lo.to_le_bytes(), hi.to_le_bytes());
    u32::from_le_bytes(core::array::from_fn(|i| w[i].max(lo[i]).min(hi[i])))
}

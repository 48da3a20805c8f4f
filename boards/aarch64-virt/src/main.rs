//! QEMU aarch64 `virt` with a Cortex-A55, bare metal: the core of mobile SoCs with an exact
//! instruction count (the `aarch64-linux` harness under qemu-user only has wall-clock time).
//!
//! QEMU starts an ELF kernel at its entry point at EL1 (no `virtualization=on` or `secure=on`),
//! with the MMU off. aarch64-rt's start-up then enables the MMU with the identity map below,
//! lets EL1 use FP/SIMD (CPACR_EL1.FPEN; Rust uses the NEON registers freely), zeroes `.bss`,
//! sets the stack and installs exception vectors whose handlers panic, which the semihosting
//! panic handler turns into exit status 101. `.data` needs no copy: QEMU's ELF loader puts it at
//! its address in DRAM. Reports and the exit status go out through semihosting (`hlt #0xf000`).
#![no_std]
#![no_main]

use aarch64_rt::{InitialPagetable, entry, exception_handlers, initial_pagetable};

/// The PMU cycle counter's clock under QEMU (`ARM_CPU_FREQ`): with `-icount shift=0`, 10^9
/// counts per 10^9 instructions, measured with the `calibrate` feature.
const PMU_HZ: u64 = 1_000_000_000;

/// Level-1 block descriptor for 1 GiB of normal memory: valid block (0b01), MAIR index 1
/// (aarch64-rt's DEFAULT_MAIR: write-back cacheable), inner shareable, access flag set.
const NORMAL_1GIB_BLOCK: usize = 0b01 | (1 << 2) | (0b11 << 8) | (1 << 10);

// Identity map of DRAM (0x4000_0000..0x8000_0000) as normal memory. With the MMU off every data
// access would be Device memory, where an unaligned access faults: the firmware is built
// without `strict-align` (so NEON loads of int8 rows stay single instructions, as on a phone),
// which needs normal memory. Nothing else is mapped: the firmware touches no device (semihosting
// is a trap to QEMU), and a stray access faults instead of reading zeros.
initial_pagetable!({
    let mut table = [0; 512];
    table[1] = 0x4000_0000 | NORMAL_1GIB_BLOCK;
    InitialPagetable(table)
});

struct Exceptions;

// The trait's default handlers panic with the kind of exception.
impl aarch64_rt::ExceptionHandlers for Exceptions {}

exception_handlers!(Exceptions);

// 16 pages (64 KiB) of boot stack; the board table keeps it out of the RAM budget.
entry!(main, 16);

fn main(_dtb: u64, _x1: u64, _x2: u64, _x3: u64) -> ! {
    #[cfg(feature = "calibrate")]
    calibrate::run();
    #[cfg(not(feature = "calibrate"))]
    board_common::run(
        "aarch64-virt",
        &mut board_common::PmccntrCounter::icount(PMU_HZ),
    )
}

/// How many counts of each clock a retired instruction is worth under `-icount shift=0`.
#[cfg(feature = "calibrate")]
mod calibrate {
    use core::arch::asm;

    use board_common::PmccntrCounter;
    use semihosting::println;

    /// PMU event number of INST_RETIRED (Arm ARM, "Common event numbers").
    const INST_RETIRED: u64 = 0x08;

    /// What PMCCNTR_EL0, CNTVCT_EL0 and PMEVCNTR0_EL0 (counting INST_RETIRED) advance over
    /// exactly `2 * iterations + 3` instructions: from the first counter read (inclusive) to
    /// the second read of the same counter (exclusive) lie the other two reads and a loop of
    /// `subs` and `b.ne` per iteration. One `asm!` block, so the compiler adds nothing between.
    fn measure(iterations: u64) -> [u64; 3] {
        let (c0, t0, r0, c1, t1, r1): (u64, u64, u64, u64, u64, u64);
        // SAFETY: reads counters at EL1 (no side effect) and spins on a register; it touches
        // no memory and only the flags.
        unsafe {
            asm!(
                "isb",
                "mrs {c0}, pmccntr_el0",
                "mrs {t0}, cntvct_el0",
                "mrs {r0}, pmevcntr0_el0",
                "1:",
                "subs {n}, {n}, #1",
                "b.ne 1b",
                "mrs {c1}, pmccntr_el0",
                "mrs {t1}, cntvct_el0",
                "mrs {r1}, pmevcntr0_el0",
                n = inout(reg) iterations => _,
                c0 = out(reg) c0,
                t0 = out(reg) t0,
                r0 = out(reg) r0,
                c1 = out(reg) c1,
                t1 = out(reg) t1,
                r1 = out(reg) r1,
                options(nomem, nostack),
            );
        }
        // PMEVCNTR0 is 32 bits wide.
        [c1 - c0, t1 - t0, r1.wrapping_sub(r0) & 0xffff_ffff]
    }

    pub fn run() -> ! {
        // Enables the PMU (PMCR_EL0.E) and its cycle counter, as the firmware does.
        let _ = PmccntrCounter::icount(super::PMU_HZ);
        let frequency: u64;
        // SAFETY: event counter 0 counts INST_RETIRED at EL0 and EL1 (PMEVTYPER0_EL0 filter
        // bits clear); nothing else uses the PMU. Reading CNTFRQ_EL0 has no side effect.
        unsafe {
            asm!(
                "msr pmevtyper0_el0, {event}",
                "msr pmcntenset_el0, {counter0}",
                "isb",
                "mrs {frequency}, cntfrq_el0",
                event = in(reg) INST_RETIRED,
                counter0 = in(reg) 1u64,
                frequency = out(reg) frequency,
                options(nomem, nostack, preserves_flags),
            );
        }
        let current_el: u64;
        // SAFETY: reading CurrentEL has no side effect.
        unsafe {
            asm!(
                "mrs {el}, CurrentEL",
                el = out(reg) current_el,
                options(nomem, nostack, preserves_flags),
            );
        }
        println!("running at EL{}", (current_el >> 2) & 0b11);
        println!("CNTFRQ_EL0 = {frequency} Hz");
        let mut exact = true;
        for iterations in [1_000_000u64, 2_000_000, 4_000_000] {
            let instructions = 2 * iterations + 3;
            let [cycles, ticks, retired] = measure(iterations);
            println!(
                "{instructions} instructions: PMCCNTR_EL0 +{cycles}, INST_RETIRED +{retired}, CNTVCT_EL0 +{ticks} ({:.3} instructions per tick)",
                instructions as f64 / ticks as f64
            );
            exact &= cycles == instructions && retired == instructions;
        }
        println!(
            "PMCCNTR_EL0 {} one per instruction",
            if exact { "counts" } else { "does NOT count" }
        );
        semihosting::process::exit(if exact { 0 } else { 1 })
    }
}

//! What every board shares, so a board crate is only its memory map, clock, UART and counter
//! choice: the embedded suite, the static arena, the report sinks (semihosting under QEMU, any
//! embedded-io UART on silicon) and the counters (SysTick, DWT CYCCNT, `minstret`, PMCCNTR_EL0).
#![no_std]

use firmware::{Counter, Event, Outcome, Report, Unit};

include!(concat!(env!("OUT_DIR"), "/suite.rs"));

/// The arena, in `.bss` so the linker checks it against the board's RAM.
static mut ARENA: [u8; ARENA_BYTES] = [0; ARENA_BYTES];

/// Validates the embedded suite, reporting to `report`. Call once.
pub fn validate(board: &str, counter: &mut impl Counter, report: &mut impl Report) -> Outcome {
    // SAFETY: `validate` is the only code naming ARENA and boards call it once, from their
    // entry point; no interrupt handler touches it, so this is the only reference ever made.
    #[allow(static_mut_refs)]
    let arena: &'static mut [u8] = unsafe { &mut *core::ptr::addr_of_mut!(ARENA) };
    firmware::validate_suite(board, SUITE, arena, counter, report)
}

/// Streaming mode: serves the first embedded model over `uart` until the host says Bye.
pub fn serve<U: embedded_io::Read + embedded_io::Write>(
    board: &str,
    counter: &mut impl Counter,
    uart: &mut U,
) -> Outcome {
    let Some((blob, _)) = SUITE.first() else {
        return Outcome::Error;
    };
    // SAFETY: as in `validate`; a board calls either `validate` or `serve`, once.
    #[allow(static_mut_refs)]
    let arena: &'static mut [u8] = unsafe { &mut *core::ptr::addr_of_mut!(ARENA) };
    let mut rx = [0u8; STREAM_RX_BYTES];
    let mut tx = [0u8; STREAM_TX_BYTES];
    firmware::stream::serve(board, blob, arena, counter, uart, &mut rx, &mut tx)
        .unwrap_or(Outcome::Error)
}

/// QEMU boards: validates the embedded suite and exits QEMU with the outcome's status (0 pass,
/// 1 a logit differs from the host's, 2 a model could not run, 101 a panic).
#[cfg(feature = "semihosting")]
pub fn run(board: &str, counter: &mut impl Counter) -> ! {
    #[cfg(not(feature = "defmt"))]
    let outcome = validate(board, counter, &mut Semihosting);
    #[cfg(feature = "defmt")]
    let outcome = validate(board, counter, &mut Defmt);
    exit(outcome)
}

/// Logs each event as a defmt frame (feature `defmt`), carried by semihosting under QEMU.
#[cfg(feature = "defmt")]
pub struct Defmt;

#[cfg(feature = "defmt")]
impl Report for Defmt {
    fn event(&mut self, event: &Event<'_>) {
        defmt::println!("{}", event);
    }
}

#[cfg(feature = "defmt")]
use defmt_semihosting as _;

/// Exits QEMU with `outcome`'s status.
#[cfg(feature = "semihosting")]
pub fn exit(outcome: Outcome) -> ! {
    semihosting::process::exit(outcome.exit_code())
}

/// Prints each event as a line on the host's standard output.
#[cfg(feature = "semihosting")]
pub struct Semihosting;

#[cfg(feature = "semihosting")]
impl Report for Semihosting {
    fn event(&mut self, event: &Event<'_>) {
        semihosting::println!("{event}");
    }
}

/// Writes each event as a `\r\n`-terminated line to a UART (any embedded-io 0.7 writer, which
/// the nRF and RP HALs implement); the host reads it with `ghnq hil --port`.
pub struct UartReport<W>(pub W);

impl<W: embedded_io::Write> Report for UartReport<W> {
    fn event(&mut self, event: &Event<'_>) {
        // A report line that cannot be written cannot be reported either: drop it.
        let _ = write!(Adapter(&mut self.0), "{event}\r\n");
        let _ = self.0.flush();
    }
}

/// A UART whose HAL splits it into a transmitter and a receiver (the nRF's UARTE), joined
/// again for streaming mode, which both reads and writes.
pub struct Duplex<Tx, Rx> {
    /// Transmit half.
    pub tx: Tx,
    /// Receive half.
    pub rx: Rx,
}

impl<Tx: embedded_io::ErrorType, Rx: embedded_io::ErrorType> embedded_io::ErrorType
    for Duplex<Tx, Rx>
{
    // The two halves' errors, reduced to their kind.
    type Error = embedded_io::ErrorKind;
}

impl<Tx: embedded_io::ErrorType, Rx: embedded_io::Read> embedded_io::Read for Duplex<Tx, Rx> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        use embedded_io::Error as _;
        self.rx.read(buf).map_err(|e| e.kind())
    }
}

impl<Tx: embedded_io::Write, Rx: embedded_io::ErrorType> embedded_io::Write for Duplex<Tx, Rx> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        use embedded_io::Error as _;
        self.tx.write(buf).map_err(|e| e.kind())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        use embedded_io::Error as _;
        self.tx.flush().map_err(|e| e.kind())
    }
}

/// core::fmt over embedded-io, without buffering.
struct Adapter<'w, W>(&'w mut W);

impl<W: embedded_io::Write> core::fmt::Write for Adapter<'_, W> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.write_all(s.as_bytes()).map_err(|_| core::fmt::Error)
    }
}

use core::fmt::Write as _;

/// SysTick wraps counted by the boards' SysTick exception handlers ([`systick_wrapped`]).
#[cfg(target_arch = "arm")]
static SYSTICK_WRAPS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Counts one SysTick wrap. Every board that uses a [`SysTickCounter`] calls this from its
/// `#[exception] fn SysTick()`.
#[cfg(target_arch = "arm")]
pub fn systick_wrapped() {
    use core::sync::atomic::Ordering::Relaxed;
    // The handler is the only writer, so a load/store pair (ARMv6-M has no atomic add) is enough.
    SYSTICK_WRAPS.store(SYSTICK_WRAPS.load(Relaxed).wrapping_add(1), Relaxed);
}

/// SysTick as a counter. Under QEMU `-icount shift=0` each instruction is 1 ns of virtual time,
/// so a tick of a SysTick clocked at `hz` is `10^9 / hz` instructions (40 at 25 MHz); on silicon
/// SysTick counts core cycles ([`SysTickCounter::cycles`]). The 24-bit counter is extended by
/// the wrap interrupt ([`systick_wrapped`]), so an inference may take any number of wraps
/// (one is 0.13 s on a 125 MHz RP2040).
#[cfg(target_arch = "arm")]
pub struct SysTickCounter {
    unit: Unit,
    /// Units per tick as a fraction: (10^9, hz) for instructions under QEMU, (1, 1) for cycles.
    scale: (u64, u64),
    ticks: u64,
}

#[cfg(target_arch = "arm")]
impl SysTickCounter {
    const PERIOD: u64 = 1 << 24;

    /// QEMU with `-icount shift=0`: counts instructions through a SysTick clocked at `hz`.
    pub fn icount(syst: cortex_m::peripheral::SYST, hz: u32) -> Self {
        Self::start(syst, Unit::Instructions, (1_000_000_000, u64::from(hz)))
    }

    /// Silicon: counts core clock cycles.
    pub fn cycles(syst: cortex_m::peripheral::SYST) -> Self {
        Self::start(syst, Unit::Cycles, (1, 1))
    }

    /// Starts SysTick on the core clock, free-running over its whole 24-bit range with the wrap
    /// interrupt on. The peripheral is consumed: nothing else may reprogram it.
    fn start(mut syst: cortex_m::peripheral::SYST, unit: Unit, scale: (u64, u64)) -> Self {
        use cortex_m::peripheral::syst::SystClkSource;
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload((Self::PERIOD - 1) as u32);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Self {
            unit,
            scale,
            ticks: 0,
        }
    }
}

#[cfg(target_arch = "arm")]
impl Counter for SysTickCounter {
    fn unit(&self) -> Unit {
        self.unit
    }

    fn now(&mut self) -> u64 {
        use core::sync::atomic::Ordering::Relaxed;
        let wraps = u64::from(SYSTICK_WRAPS.load(Relaxed));
        let elapsed = Self::PERIOD - 1 - u64::from(cortex_m::peripheral::SYST::get_current());
        let mut ticks = wraps * Self::PERIOD + elapsed;
        // The counter may have wrapped after `wraps` was read and before its interrupt ran:
        // readings are far less than a period apart, so a step back is exactly one period.
        if ticks < self.ticks {
            ticks += Self::PERIOD;
        }
        self.ticks = ticks;
        ticks * self.scale.0 / self.scale.1
    }
}

/// DWT CYCCNT: core cycles on a real Cortex-M3/M4/M7 (QEMU does not emulate it: it reads 0).
#[cfg(all(target_arch = "arm", not(armv6m)))]
pub struct DwtCounter {
    last: u32,
    cycles: u64,
}

#[cfg(all(target_arch = "arm", not(armv6m)))]
impl DwtCounter {
    /// Enables tracing and the cycle counter.
    pub fn new(dcb: &mut cortex_m::peripheral::DCB, dwt: &mut cortex_m::peripheral::DWT) -> Self {
        dcb.enable_trace();
        dwt.enable_cycle_counter();
        Self {
            last: cortex_m::peripheral::DWT::cycle_count(),
            cycles: 0,
        }
    }
}

#[cfg(all(target_arch = "arm", not(armv6m)))]
impl Counter for DwtCounter {
    fn unit(&self) -> Unit {
        Unit::Cycles
    }

    fn now(&mut self) -> u64 {
        // 32 bits wrap every 67 s at 64 MHz; readings are far more frequent.
        let current = cortex_m::peripheral::DWT::cycle_count();
        self.cycles += u64::from(current.wrapping_sub(self.last));
        self.last = current;
        self.cycles
    }
}

/// RISC-V `minstret`: retired instructions, exact on QEMU and on silicon.
#[cfg(target_arch = "riscv32")]
pub struct MinstretCounter;

#[cfg(target_arch = "riscv32")]
impl Counter for MinstretCounter {
    fn unit(&self) -> Unit {
        Unit::Instructions
    }

    fn now(&mut self) -> u64 {
        riscv::register::minstret::read64()
    }
}

/// The Armv8-A PMU cycle counter PMCCNTR_EL0 (64 bits, so it never wraps in a run). QEMU clocks
/// it at 1 GHz of virtual time, and `-icount shift=0` makes every instruction 1 ns of virtual
/// time, so under QEMU each count is one instruction (checked against loops of known length by
/// `aarch64-virt`'s `calibrate` feature); on silicon it counts core cycles.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub struct PmccntrCounter {
    unit: Unit,
    /// Units per count as a fraction: (10^9, hz) for instructions under QEMU.
    scale: (u64, u64),
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
impl PmccntrCounter {
    /// QEMU with `-icount shift=0`: counts instructions through a cycle counter clocked at `hz`.
    ///
    /// Must run at EL1 (where QEMU's `virt` starts a kernel), which may program the PMU.
    pub fn icount(hz: u64) -> Self {
        // PMCR_EL0: E (bit 0) enables the counters, C (bit 2) zeroes the cycle counter, LC
        // (bit 6) makes it overflow at 64 bits. PMCCFILTR_EL0 = 0 counts at EL0 and EL1.
        // PMCNTENSET_EL0 bit 31 switches the cycle counter on.
        //
        // SAFETY: at EL1 these PMU registers are ours to program (nothing else in the firmware
        // uses the PMU) and writing them touches no memory; the `isb` makes the counter run
        // before the first read.
        unsafe {
            core::arch::asm!(
                "mrs {tmp}, pmcr_el0",
                "orr {tmp}, {tmp}, {pmcr_e_c_lc}",
                "msr pmcr_el0, {tmp}",
                "msr pmccfiltr_el0, xzr",
                "msr pmcntenset_el0, {pmcntenset_c}",
                "isb",
                tmp = out(reg) _,
                pmcr_e_c_lc = in(reg) (1u64 << 0) | (1 << 2) | (1 << 6),
                pmcntenset_c = in(reg) 1u64 << 31,
                options(nomem, nostack, preserves_flags),
            );
        }
        Self {
            unit: Unit::Instructions,
            scale: (1_000_000_000, hz),
        }
    }

    /// The raw count, before the unit's scale.
    fn read() -> u64 {
        let count: u64;
        // SAFETY: reading PMCCNTR_EL0 at EL1 has no side effect. The `isb` first makes the read
        // come after every instruction before it (the counter is not ordered otherwise).
        unsafe {
            core::arch::asm!(
                "isb",
                "mrs {count}, pmccntr_el0",
                count = out(reg) count,
                options(nomem, nostack, preserves_flags),
            );
        }
        count
    }
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
impl Counter for PmccntrCounter {
    fn unit(&self) -> Unit {
        self.unit
    }

    fn now(&mut self) -> u64 {
        let count = Self::read();
        if self.scale.0 == self.scale.1 {
            // QEMU's 1 GHz: one count per instruction, and no division inside the measurement.
            return count;
        }
        // u128: at 1 GHz a u64 product would overflow after 18 s of counting.
        (u128::from(count) * u128::from(self.scale.0) / u128::from(self.scale.1)) as u64
    }
}

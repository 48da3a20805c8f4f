//! What a board measures time with.

/// What one count of a [`Counter`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Retired instructions: exact and repeatable (QEMU with `-icount shift=0`, RISC-V `minstret`).
    Instructions,
    /// Core clock cycles (DWT CYCCNT on a real Cortex-M4/M7, `mcycle` on real RISC-V).
    Cycles,
    /// Wall-clock nanoseconds (the std harness under qemu-user, where nothing counts
    /// instructions).
    Nanoseconds,
}

impl Unit {
    /// Name as in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Unit::Instructions => "instructions",
            Unit::Cycles => "cycles",
            Unit::Nanoseconds => "nanoseconds",
        }
    }
}

impl core::fmt::Display for Unit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A monotonic counter of instructions or cycles.
///
/// Implementations extend narrow hardware counters (SysTick is 24 bits and counts down) in
/// software; a reading must be taken at least once per hardware wrap, which the validation loop
/// does (it reads before and after every inference).
pub trait Counter {
    /// What [`Counter::now`] counts.
    fn unit(&self) -> Unit;
    /// Count since an arbitrary origin.
    fn now(&mut self) -> u64;
}

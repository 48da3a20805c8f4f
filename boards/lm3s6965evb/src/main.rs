//! TI Stellaris LM3S6965 evaluation board (Cortex-M3).
#![no_std]
#![no_main]

use board_common::SysTickCounter;
use cortex_m_rt::entry;

/// The clock that drives SysTick: QEMU's Stellaris model runs it at 12.5 MHz out of reset
/// (measured: 25,000 ticks for a 2,000,000-instruction loop under `-icount shift=0`).
const SYSCLK_HZ: u32 = 12_500_000;

#[entry]
fn main() -> ! {
    let Some(core) = cortex_m::Peripherals::take() else {
        board_common::exit(firmware::Outcome::Error)
    };
    board_common::run(
        "lm3s6965evb",
        &mut SysTickCounter::icount(core.SYST, SYSCLK_HZ),
    )
}

/// Extends the 24-bit SysTick counter (see `board_common::SysTickCounter`).
#[cortex_m_rt::exception]
fn SysTick() {
    board_common::systick_wrapped();
}

//! BBC micro:bit v1, nRF51822 (Cortex-M0).
#![no_std]
#![no_main]

use board_common::SysTickCounter;
use cortex_m_rt::entry;

/// The clock that drives SysTick (measured under QEMU: 16,000 ticks per 10^6 instructions
/// with `-icount shift=0`).
const SYSCLK_HZ: u32 = 16_000_000;

#[entry]
fn main() -> ! {
    let Some(core) = cortex_m::Peripherals::take() else {
        board_common::exit(firmware::Outcome::Error)
    };
    board_common::run(
        "microbit",
        &mut SysTickCounter::icount(core.SYST, SYSCLK_HZ),
    )
}

/// Extends the 24-bit SysTick counter (see `board_common::SysTickCounter`).
#[cortex_m_rt::exception]
fn SysTick() {
    board_common::systick_wrapped();
}

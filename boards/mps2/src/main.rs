//! MPS2 AN386 (Cortex-M4F) and AN500 (Cortex-M7): one ELF, the machine told apart by CPUID.
//! Built with `GHNQ_STREAM=1`, it serves its model over UART0 instead (streaming mode).
#![no_std]
#![no_main]

mod uart;

use board_common::SysTickCounter;
use cortex_m_rt::entry;

/// The FPGA's system clock, which drives SysTick (measured under QEMU: 25,000 ticks per 10^6
/// instructions with `-icount shift=0`).
const SYSCLK_HZ: u32 = 25_000_000;

#[entry]
fn main() -> ! {
    let Some(core) = cortex_m::Peripherals::take() else {
        board_common::exit(firmware::Outcome::Error)
    };
    // CPUID PARTNO: 0xC27 is the Cortex-M7 (AN500), 0xC24 the Cortex-M4 (AN386).
    let board = match (core.CPUID.base.read() >> 4) & 0xfff {
        0xc27 => "mps2-an500",
        _ => "mps2-an386",
    };
    let mut counter = SysTickCounter::icount(core.SYST, SYSCLK_HZ);
    if board_common::STREAM {
        let mut uart = uart::CmsdkUart::new(SYSCLK_HZ, 115_200);
        board_common::exit(board_common::serve(board, &mut counter, &mut uart))
    }
    board_common::run(board, &mut counter)
}

/// Extends the 24-bit SysTick counter (see `board_common::SysTickCounter`).
#[cortex_m_rt::exception]
fn SysTick() {
    board_common::systick_wrapped();
}

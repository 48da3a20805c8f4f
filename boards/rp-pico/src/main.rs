//! Raspberry Pi Pico (RP2040): the validation suite on silicon. Clocks from the 12 MHz crystal
//! through the PLLs (125 MHz), the report on UART0 (GP0/GP1, 115200 8N1), core cycles from
//! SysTick (the M0+ has no DWT cycle counter), and the 1 MHz TIMER as the embedded-hal 1.0
//! `DelayNs` that gives the host time to open the port. Built with `GHNQ_STREAM=1` it serves its
//! model over the same UART instead (streaming mode).
#![no_std]
#![no_main]

use board_common::{SysTickCounter, UartReport};
use embedded_hal::delay::DelayNs;
use rp2040_hal::clocks::{Clock, init_clocks_and_plls};
use rp2040_hal::fugit::RateExtU32;
use rp2040_hal::gpio::{FunctionUart, Pins};
use rp2040_hal::uart::{DataBits, StopBits, UartConfig, UartPeripheral};
use rp2040_hal::{Sio, Timer, Watchdog, pac};

/// Second-stage bootloader for the Pico's W25Q080 flash.
#[unsafe(link_section = ".boot2")]
#[used]
pub static BOOT2_FIRMWARE: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

/// The Pico's crystal.
const XOSC_HZ: u32 = 12_000_000;

#[rp2040_hal::entry]
fn main() -> ! {
    let (Some(core), Some(mut p)) = (cortex_m::Peripherals::take(), pac::Peripherals::take())
    else {
        halt()
    };
    let mut watchdog = Watchdog::new(p.WATCHDOG);
    let Ok(clocks) = init_clocks_and_plls(
        XOSC_HZ,
        p.XOSC,
        p.CLOCKS,
        p.PLL_SYS,
        p.PLL_USB,
        &mut p.RESETS,
        &mut watchdog,
    ) else {
        halt()
    };
    let sio = Sio::new(p.SIO);
    let pins = Pins::new(p.IO_BANK0, p.PADS_BANK0, sio.gpio_bank0, &mut p.RESETS);
    let uart_pins = (
        pins.gpio0.into_function::<FunctionUart>(),
        pins.gpio1.into_function::<FunctionUart>(),
    );
    let config = UartConfig::new(115_200.Hz(), DataBits::Eight, None, StopBits::One);
    let Ok(mut uart) = UartPeripheral::new(p.UART0, uart_pins, &mut p.RESETS)
        .enable(config, clocks.peripheral_clock.freq())
    else {
        halt()
    };

    let mut counter = SysTickCounter::cycles(core.SYST);
    if board_common::STREAM {
        // Streaming mode: the host (`ghnq hil --port`) sends the samples.
        board_common::serve("rp-pico", &mut counter, &mut uart);
        halt()
    }
    Timer::new(p.TIMER, &mut p.RESETS, &clocks).delay_ms(1000);
    board_common::validate("rp-pico", &mut counter, &mut UartReport(uart));
    halt()
}

/// Extends the 24-bit SysTick counter (see `board_common::SysTickCounter`).
#[cortex_m_rt::exception]
fn SysTick() {
    board_common::systick_wrapped();
}

fn halt() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    cortex_m::interrupt::disable();
    halt()
}

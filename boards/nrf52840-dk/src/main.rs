//! Nordic nRF52840-DK: the validation suite on silicon. Clocks from the 64 MHz crystal, the
//! report on UARTE0 (the J-Link's virtual COM port, 115200 8N1), core cycles from DWT CYCCNT,
//! and a TIMER0 delay (embedded-hal 1.0 `DelayNs`) that gives the host time to open the port.
//! After the report the core sleeps; the status is the `GHNQ done` line. Built with
//! `GHNQ_STREAM=1` it serves its model over the same UART instead (streaming mode).
#![no_std]
#![no_main]

use board_common::{Duplex, DwtCounter, UartReport};
use cortex_m_rt::entry;
use embedded_hal::delay::DelayNs;
use nrf52840_hal::gpio::{Level, p0};
use nrf52840_hal::pac;
use nrf52840_hal::uarte::{Baudrate, Parity, Pins, Uarte};
use nrf52840_hal::{Clocks, Timer};

#[entry]
fn main() -> ! {
    let (Some(mut core), Some(p)) = (cortex_m::Peripherals::take(), pac::Peripherals::take())
    else {
        halt()
    };
    let _clocks = Clocks::new(p.CLOCK).enable_ext_hfosc();
    let port0 = p0::Parts::new(p.P0);
    let pins = Pins {
        txd: port0.p0_06.into_push_pull_output(Level::High).degrade(),
        rxd: port0.p0_08.into_floating_input().degrade(),
        cts: None,
        rts: None,
    };
    let uart = Uarte::new(p.UARTE0, pins, Parity::EXCLUDED, Baudrate::BAUD115200);
    let Some(tx_buf) = cortex_m::singleton!(: [u8; 64] = [0; 64]) else {
        halt()
    };
    let Some(rx_buf) = cortex_m::singleton!(: [u8; 1] = [0; 1]) else {
        halt()
    };
    let Ok((tx, rx)) = uart.split(tx_buf, rx_buf) else {
        halt()
    };

    let mut counter = DwtCounter::new(&mut core.DCB, &mut core.DWT);
    if board_common::STREAM {
        // Streaming mode: the host (`ghnq hil --port`) sends the samples.
        board_common::serve("nrf52840-dk", &mut counter, &mut Duplex { tx, rx });
        halt()
    }
    Timer::new(p.TIMER0).delay_ms(1000);
    board_common::validate("nrf52840-dk", &mut counter, &mut UartReport(tx));
    halt()
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

//! The MPS2's CMSDK APB UART0, as an embedded-io UART: the transport of streaming mode (under
//! QEMU it is wired to a host socket with `-serial tcp:…`).

use core::ptr::{read_volatile, write_volatile};

/// UART0 of the AN386/AN500 FPGA images.
const UART0: usize = 0x4000_4000;
const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const BAUDDIV: usize = 0x10;
const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const CTRL_TX_RX_ENABLE: u32 = 0b11;

/// Blocking, polled UART0.
pub struct CmsdkUart(());

impl CmsdkUart {
    /// Enables UART0 at `sysclk_hz / baud`. Call once: the UART's registers have no other owner.
    pub fn new(sysclk_hz: u32, baud: u32) -> Self {
        let uart = Self(());
        uart.set_register(BAUDDIV, (sysclk_hz / baud).max(16));
        uart.set_register(CTRL, CTRL_TX_RX_ENABLE);
        uart
    }

    fn register(&self, offset: usize) -> u32 {
        // SAFETY: UART0's registers are mapped at this address on every MPS2 image this crate
        // targets, and `CmsdkUart` is their only user.
        unsafe { read_volatile((UART0 + offset) as *const u32) }
    }

    fn set_register(&self, offset: usize, value: u32) {
        // SAFETY: as in `register`.
        unsafe { write_volatile((UART0 + offset) as *mut u32, value) }
    }
}

impl embedded_io::ErrorType for CmsdkUart {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for CmsdkUart {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.register(STATE) & STATE_RX_FULL == 0 {}
        buf[0] = self.register(DATA) as u8;
        Ok(1)
    }
}

impl embedded_io::Write for CmsdkUart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        for &byte in buf {
            while self.register(STATE) & STATE_TX_FULL != 0 {}
            self.set_register(DATA, u32::from(byte));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

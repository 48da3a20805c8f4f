//! QEMU RISC-V `virt` (RV32IMAC): instructions counted by `minstret`.
#![no_std]
#![no_main]

use board_common::MinstretCounter;

#[riscv_rt::entry]
fn main() -> ! {
    board_common::run("riscv-virt", &mut MinstretCounter)
}

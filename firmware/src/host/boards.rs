//! Every board the SDK validates on: emulated ones (booted under QEMU here) and real ones (built
//! here, flashed by a user). The memory sizes are the ones in each board's `memory.x`.

/// How to boot a board under QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emulator {
    /// QEMU binary.
    pub program: &'static str,
    /// Machine arguments (before the common semihosting, `-icount` and `-kernel` flags).
    pub machine: &'static [&'static str],
    /// qemu-user running a Linux program (the suite's files are its arguments) rather than a
    /// system emulator booting firmware with the suite embedded.
    pub user_mode: bool,
}

/// A board: the package in `boards/` that builds its firmware, and its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Board {
    /// Name used on the command line and in reports.
    pub name: &'static str,
    /// CPU core.
    pub core: &'static str,
    /// Cargo package in the `boards/` workspace.
    pub package: &'static str,
    /// Rust target triple.
    pub target: &'static str,
    /// `None` for real boards (built, not booted, here).
    pub emulator: Option<Emulator>,
    /// Flash bytes in its memory.x.
    pub flash: u64,
    /// RAM bytes in its memory.x.
    pub ram: u64,
    /// Its firmware can serve samples over a UART (streaming mode, [`crate::protocol`]).
    pub streams: bool,
    /// Extra rustflags for its target, e.g. `-C target-feature=+dsp` where the core has an
    /// optional extension the target triple does not imply; empty for none.
    pub rustflags: &'static str,
}

const K: u64 = 1024;
const M: u64 = 1024 * K;

/// All boards.
pub const BOARDS: &[Board] = &[
    Board {
        name: "mps2-an386",
        core: "Cortex-M4F",
        package: "board-mps2",
        target: "thumbv7em-none-eabihf",
        emulator: Some(Emulator {
            program: "qemu-system-arm",
            machine: &["-M", "mps2-an386", "-cpu", "cortex-m4"],
            user_mode: false,
        }),
        flash: 4 * M,
        ram: 4 * M,
        streams: true,
        rustflags: "",
    },
    Board {
        name: "mps2-an500",
        core: "Cortex-M7",
        package: "board-mps2",
        target: "thumbv7em-none-eabihf",
        emulator: Some(Emulator {
            program: "qemu-system-arm",
            machine: &["-M", "mps2-an500", "-cpu", "cortex-m7"],
            user_mode: false,
        }),
        flash: 4 * M,
        ram: 4 * M,
        streams: true,
        rustflags: "",
    },
    Board {
        name: "lm3s6965evb",
        core: "Cortex-M3",
        package: "board-lm3s6965evb",
        target: "thumbv7m-none-eabi",
        emulator: Some(Emulator {
            program: "qemu-system-arm",
            machine: &["-M", "lm3s6965evb"],
            user_mode: false,
        }),
        flash: 256 * K,
        ram: 64 * K,
        streams: false,
        rustflags: "",
    },
    Board {
        name: "microbit",
        core: "Cortex-M0",
        package: "board-microbit",
        target: "thumbv6m-none-eabi",
        emulator: Some(Emulator {
            program: "qemu-system-arm",
            machine: &["-M", "microbit"],
            user_mode: false,
        }),
        flash: 256 * K,
        ram: 16 * K,
        streams: false,
        rustflags: "",
    },
    Board {
        name: "mps2-an505",
        core: "Cortex-M33",
        package: "board-mps2-an505",
        target: "thumbv8m.main-none-eabihf",
        emulator: Some(Emulator {
            program: "qemu-system-arm",
            machine: &["-M", "mps2-an505", "-cpu", "cortex-m33"],
            user_mode: false,
        }),
        flash: 4 * M,
        ram: 2 * M,
        streams: false,
        // Its Cortex-M33 has the DSP extension: edge-runtime's SXTB16/SMLAD kernels.
        rustflags: "-C target-feature=+dsp",
    },
    Board {
        name: "riscv-virt",
        core: "RV32IMAC",
        package: "board-riscv-virt",
        target: "riscv32imac-unknown-none-elf",
        emulator: Some(Emulator {
            program: "qemu-system-riscv32",
            machine: &["-M", "virt", "-bios", "none"],
            user_mode: false,
        }),
        flash: 4 * M,
        ram: 4 * M,
        streams: false,
        rustflags: "",
    },
    Board {
        name: "aarch64-virt",
        core: "Cortex-A55",
        package: "board-aarch64-virt",
        target: "aarch64-unknown-none",
        emulator: Some(Emulator {
            program: "qemu-system-aarch64",
            // No NIC: virt's default virtio-net needs an option ROM Debian's package lacks.
            machine: &["-M", "virt", "-cpu", "cortex-a55", "-nic", "none"],
            user_mode: false,
        }),
        // One 8 MiB region of DRAM (memory.x): 4 MiB for code and the embedded suite, the rest
        // for .data, .bss and the 64 KiB boot stack.
        flash: 4 * M,
        ram: 4 * M - 64 * K,
        streams: false,
        // The A55 has the dot-product extension (SDOT); `-strict-align` lets LLVM emit unaligned
        // loads (NEON rows of int8) as on aarch64 Linux, sound because the start-up maps DRAM
        // as normal memory.
        rustflags: "-C target-feature=+dotprod,-strict-align",
    },
    Board {
        name: "nrf52840-dk",
        core: "Cortex-M4F",
        package: "board-nrf52840-dk",
        target: "thumbv7em-none-eabihf",
        emulator: None,
        flash: 1024 * K,
        ram: 256 * K,
        streams: true,
        rustflags: "",
    },
    Board {
        name: "rp-pico",
        core: "Cortex-M0+",
        package: "board-rp-pico",
        target: "thumbv6m-none-eabi",
        emulator: None,
        // The first 256 bytes of the 2 MiB flash hold the second-stage bootloader.
        flash: 2 * M - 256,
        ram: 256 * K,
        streams: true,
        rustflags: "",
    },
    Board {
        name: "aarch64-linux",
        core: "Cortex-A (aarch64 Linux)",
        package: "harness-aarch64-linux",
        target: "aarch64-unknown-linux-gnu",
        emulator: Some(Emulator {
            program: "qemu-aarch64",
            machine: &["-L", "/usr/aarch64-linux-gnu"],
            user_mode: true,
        }),
        flash: u64::MAX,
        ram: u64::MAX,
        streams: false,
        rustflags: "",
    },
];

/// The board called `name`.
pub fn board(name: &str) -> Option<&'static Board> {
    BOARDS.iter().find(|b| b.name == name)
}

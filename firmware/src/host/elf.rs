//! Flash and RAM a firmware ELF uses, read from its section headers (what `llvm-size` calls
//! text + data and data + bss), so the host needs no binutils.

use std::path::Path;

/// Bytes of flash and RAM of one firmware image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryUse {
    /// Code, read-only data (the embedded model and vectors) and the initial values of `.data`.
    pub flash: u64,
    /// `.data` + `.bss` + `.uninit` (the arena lives here); the stack takes what is left.
    pub ram: u64,
}

const SHF_WRITE: u64 = 0x1;
const SHF_ALLOC: u64 = 0x2;
const SHT_NOBITS: u32 = 8;

/// Reads the section headers of a little-endian ELF32 or ELF64 file.
pub fn memory_use(path: &Path) -> std::io::Result<MemoryUse> {
    let bytes = std::fs::read(path)?;
    parse(&bytes).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: not a little-endian ELF file", path.display()),
        )
    })
}

fn parse(b: &[u8]) -> Option<MemoryUse> {
    if b.get(..4)? != b"\x7fELF" || *b.get(5)? != 1 {
        return None;
    }
    let wide = *b.get(4)? == 2;
    let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
    let word = |o: usize| {
        if wide {
            u64_at(o)
        } else {
            u32_at(o).map(u64::from)
        }
    };
    let (shoff, shentsize, shnum, shstrndx) = if wide {
        (u64_at(0x28)?, u16_at(0x3a)?, u16_at(0x3c)?, u16_at(0x3e)?)
    } else {
        (
            u64::from(u32_at(0x20)?),
            u16_at(0x2e)?,
            u16_at(0x30)?,
            u16_at(0x32)?,
        )
    };
    // Section header fields: name, type, flags, addr, offset, size.
    let (flags_at, offset_at, size_at) = if wide { (8, 24, 32) } else { (8, 16, 20) };
    let header = |i: u16| {
        usize::try_from(shoff)
            .ok()?
            .checked_add(usize::from(i) * usize::from(shentsize))
    };
    let strtab = word(header(shstrndx)? + offset_at)? as usize;
    let mut used = MemoryUse::default();
    for i in 0..shnum {
        let h = header(i)?;
        let name_off = u32_at(h)? as usize;
        let kind = u32_at(h + 4)?;
        let flags = word(h + flags_at)?;
        let size = word(h + size_at)?;
        let name = b.get(strtab + name_off..)?.split(|&c| c == 0).next()?;
        // riscv-rt's `.stack`/`.heap` span whatever RAM is left: not "used".
        if flags & SHF_ALLOC == 0 || name == b".stack" || name == b".heap" {
            continue;
        }
        if kind != SHT_NOBITS {
            used.flash += size;
        }
        if flags & SHF_WRITE != 0 {
            used.ram += size;
        }
    }
    Some(used)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rejects_what_is_not_elf() {
        assert_eq!(super::parse(b"not an elf file at all"), None);
    }
}

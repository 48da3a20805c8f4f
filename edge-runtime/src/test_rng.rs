//! The one random generator of the runtime's unit tests: Marsaglia's xorshift32 (13, 17, 5),
//! deterministic and dependency-free, so a failing case reproduces from its seed.

/// xorshift32 state (never 0).
pub(crate) struct XorShift32(u32);

impl XorShift32 {
    /// A generator from `seed` (0 is replaced by 1: xorshift's one fixed point).
    pub(crate) fn new(seed: u32) -> Self {
        Self(if seed == 0 { 1 } else { seed })
    }

    /// The next 32 random bits.
    pub(crate) fn next_u32(&mut self) -> u32 {
        let mut s = self.0;
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        self.0 = s;
        s
    }

    /// A value in `0..n` (modulo bias is irrelevant to the tests).
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        self.next_u32() % n
    }
}

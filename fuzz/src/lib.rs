//! What the fuzz targets (`fuzz_targets/*.rs`) share: a reader that turns
//! any byte string into structured input ([`Input`]), a sparse guest memory
//! that records what was written ([`SparseMemory`]), and for the targets
//! with a structured input format, that format ([`bzimage`], [`paging`],
//! [`mgmt`]) with an encoder, so the committed seed corpora in `seeds/`
//! can be regenerated (`KEEL_FUZZ_WRITE_SEEDS=1 cargo test --manifest-path
//! fuzz/Cargo.toml --lib`; without the variable the test checks them).
//!
//! A new target may use these or be self-contained; it needs only its file
//! in `fuzz_targets/` and a `[[bin]]` entry in `Cargo.toml`.

pub mod bzimage;
pub mod memory;
pub mod mgmt;
pub mod paging;
pub mod passthrough;
#[cfg(test)]
mod seeds;

pub use memory::SparseMemory;

/// Reads little-endian fields off the front of the fuzz input. Past the
/// end every field reads as zero and every slice as empty, so each input is
/// a valid (if short) case and the fuzzer never wastes runs on parse errors.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Up to `len` bytes (fewer at the end of the input).
    pub fn take(&mut self, len: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(len.min(self.data.len()));
        self.data = tail;
        head
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let bytes = self.take(N);
        out[..bytes.len()].copy_from_slice(bytes);
        out
    }

    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// The encoder side of [`Input`], for seeds.
#[derive(Default)]
pub struct Output {
    pub bytes: Vec<u8>,
}

impl Output {
    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.bytes.push(value);
        self
    }

    pub fn u16(&mut self, value: u16) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(bytes);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_reads_zeros_past_the_end() {
        let mut input = Input::new(&[1, 2, 3]);
        assert_eq!(input.u16(), 0x0201);
        assert_eq!(input.u32(), 3);
        assert_eq!(input.u64(), 0);
        assert!(input.take(5).is_empty());
        assert!(input.is_empty());
    }

    #[test]
    fn output_is_what_input_reads() {
        let mut out = Output::default();
        out.u8(7).u16(0x1234).u32(0xdead_beef).u64(u64::MAX).bytes(b"xy");
        let mut input = Input::new(&out.bytes);
        assert_eq!(
            (input.u8(), input.u16(), input.u32(), input.u64()),
            (7, 0x1234, 0xdead_beef, u64::MAX)
        );
        assert_eq!(input.rest(), b"xy");
    }
}

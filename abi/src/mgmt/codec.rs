//! Little-endian field readers and writers over byte slices: every access
//! is bounds-checked and fails with [`DecodeError::Truncated`].

use super::DecodeError;

pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    pub fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(len).ok_or(DecodeError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(DecodeError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.at
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }
}

pub struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    pub fn new(out: &'a mut [u8]) -> Self {
        Self { out, at: 0 }
    }

    pub fn bytes(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let end = self.at.checked_add(bytes.len()).ok_or(DecodeError::Truncated)?;
        self.out
            .get_mut(self.at..end)
            .ok_or(DecodeError::Truncated)?
            .copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }

    pub fn u8(&mut self, value: u8) -> Result<(), DecodeError> {
        self.bytes(&[value])
    }

    pub fn u16(&mut self, value: u16) -> Result<(), DecodeError> {
        self.bytes(&value.to_le_bytes())
    }

    pub fn u32(&mut self, value: u32) -> Result<(), DecodeError> {
        self.bytes(&value.to_le_bytes())
    }

    pub fn u64(&mut self, value: u64) -> Result<(), DecodeError> {
        self.bytes(&value.to_le_bytes())
    }

    /// Bytes written so far.
    pub fn position(&self) -> usize {
        self.at
    }
}

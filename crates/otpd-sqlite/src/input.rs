//! Reading the store's binary layouts (records, queued mails).

use otpd_core::Timestamp;

/// What is left to read.
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let (taken, rest) = self.0.split_at_checked(n).ok_or("the data ends early")?;
        self.0 = rest;
        Ok(taken)
    }

    pub fn take<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let (taken, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or("the data ends early")?;
        self.0 = rest;
        Ok(*taken)
    }

    /// A count of entries of at least `min_size` bytes each: never more
    /// than what is left could hold, so a corrupt count allocates nothing.
    pub fn len(&mut self, min_size: usize) -> Result<usize, &'static str> {
        let n = u32::from_le_bytes(self.take()?) as usize;
        match n.checked_mul(min_size) {
            Some(size) if size <= self.0.len() => Ok(n),
            _ => Err("the data ends early"),
        }
    }

    pub fn timestamp(&mut self) -> Result<Timestamp, &'static str> {
        Ok(Timestamp::from_millis(i64::from_le_bytes(self.take()?)))
    }
}

//! Huffman tables (built as libjpeg's `jpeg_make_d_derived_tbl` validates them) and the
//! entropy-coded-segment bit reader.

use crate::{JpegError, Result};

/// Codes up to this many bits are decoded with one table lookup (libjpeg uses 8).
pub(crate) const FAST_BITS: u32 = 10;

/// A decoding table for one DHT table.
pub(crate) struct HuffTable {
    /// `len << 8 | symbol` for every `FAST_BITS`-bit prefix that starts with a code of at most
    /// `FAST_BITS` bits; 0 when the code is longer.
    lookup: Box<[u16; 1 << FAST_BITS]>,
    /// For AC tables: `value << 8 | run << 4 | (code length + value bits)` when the code and
    /// its value bits both fit in the prefix; 0 otherwise.
    ac_fast: Box<[i32; 1 << FAST_BITS]>,
    /// Largest code of each length (-1 when none), for codes longer than `FAST_BITS`.
    maxcode: [i32; 17],
    /// Index into `values` of the first code of each length, minus that code.
    valoffset: [i32; 17],
    values: [u8; 256],
    /// Largest symbol value, so that a DC table's categories can be checked once per scan.
    pub(crate) max_symbol: u8,
}

impl HuffTable {
    /// Builds a table from the DHT counts per code length (1..=16) and the symbols.
    pub(crate) fn new(counts: &[u8; 16], symbols: &[u8]) -> Result<Self> {
        let bad = || JpegError::Corrupt("bad Huffman table".into());
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if total > 256 || total != symbols.len() {
            return Err(bad());
        }
        let mut values = [0u8; 256];
        values[..total].copy_from_slice(symbols);
        let mut lookup = Box::new([0u16; 1 << FAST_BITS]);
        let mut ac_fast = Box::new([0i32; 1 << FAST_BITS]);
        let mut maxcode = [-1i32; 17];
        let mut valoffset = [0i32; 17];
        let mut code: u32 = 0;
        let mut p = 0usize;
        for len in 1..=16u32 {
            let n = counts[len as usize - 1] as usize;
            // No code may be all ones: the counts must describe a prefix code (libjpeg's
            // check, made before the codes are entered in the lookup table).
            if code as usize + n >= 1 << len {
                return Err(bad());
            }
            if n > 0 {
                valoffset[len as usize] = p as i32 - code as i32;
                for &sym in &symbols[p..p + n] {
                    if len <= FAST_BITS {
                        let shift = FAST_BITS - len;
                        let first = (code << shift) as usize;
                        for (i, slot) in lookup[first..first + (1 << shift)].iter_mut().enumerate()
                        {
                            *slot = (len as u16) << 8 | sym as u16;
                            let run = (sym >> 4) as i32;
                            let size = (sym & 15) as u32;
                            if size != 0 && len + size <= FAST_BITS {
                                let bits = (i as u32 >> (shift - size)) & ((1 << size) - 1);
                                let value = extend(bits, size);
                                ac_fast[first + i] = value << 8 | run << 4 | (len + size) as i32;
                            }
                        }
                    }
                    code += 1;
                }
                p += n;
                maxcode[len as usize] = code as i32 - 1;
            }
            code <<= 1;
        }
        let max_symbol = symbols.iter().copied().max().unwrap_or(0);
        Ok(Self {
            lookup,
            ac_fast,
            maxcode,
            valoffset,
            values,
            max_symbol,
        })
    }
}

/// JPEG's sign extension of an `s`-bit magnitude category value (`HUFF_EXTEND`).
#[inline(always)]
pub(crate) fn extend(v: u32, s: u32) -> i32 {
    if s == 0 {
        0
    } else if v < 1 << (s - 1) {
        v as i32 - (1 << s) + 1
    } else {
        v as i32
    }
}

/// Reads the bits of one entropy-coded segment, MSB first, removing stuffed zero bytes.
///
/// At a marker or the end of the data it supplies zero bits, as libjpeg does, but counts them:
/// a decoder that consumed any of them has read past the segment, which [`Self::overrun`]
/// reports (libjpeg only warns and fills the rest of the image with grey).
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Next byte to load; at a marker, the marker's first `FF`.
    pos: usize,
    buf: u64,
    nbits: u32,
    /// Zero bits appended after the segment ended; they sit at the tail of `buf`, so
    /// `nbits < padded` once any was consumed.
    padded: u32,
    stopped: bool,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8], pos: usize) -> Self {
        Self {
            data,
            pos,
            buf: 0,
            nbits: 0,
            padded: 0,
            stopped: false,
        }
    }

    /// Where the undecoded data resumes: the marker that ended the segment, or the first byte
    /// not loaded yet.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Whether bits past the end of the segment were consumed.
    #[inline(always)]
    pub(crate) fn overrun(&self) -> bool {
        self.nbits < self.padded
    }

    /// Whether the segment ended at the end of the data rather than at a marker.
    pub(crate) fn at_eof(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Drops the buffered bits (the fill bits before a restart marker) and continues after
    /// `pos`.
    pub(crate) fn reset(&mut self, pos: usize) {
        *self = Self::new(self.data, pos);
    }

    #[inline(always)]
    fn fill(&mut self) {
        // Fast path: eight plain bytes without any `FF`.
        if !self.stopped
            && let Some(chunk) = self.data.get(self.pos..self.pos + 8)
        {
            let word = u64::from_be_bytes(chunk.try_into().unwrap_or([0; 8]));
            // Bytes equal to FF have all bits set; detect any with the classic zero-byte trick
            // on the complement.
            let inv = !word;
            let has_ff = inv.wrapping_sub(0x0101_0101_0101_0101) & !inv & 0x8080_8080_8080_8080;
            if has_ff == 0 {
                let take = (64 - self.nbits) / 8;
                if take == 0 {
                    return;
                }
                self.buf |= (word >> (64 - take * 8)) << (64 - take * 8 - self.nbits);
                self.nbits += take * 8;
                self.pos += take as usize;
                return;
            }
        }
        while self.nbits <= 56 {
            let byte = self.next_byte();
            self.buf |= (byte as u64) << (56 - self.nbits);
            self.nbits += 8;
        }
    }

    #[inline(always)]
    fn next_byte(&mut self) -> u8 {
        if self.stopped {
            self.padded = self.padded.saturating_add(8);
            return 0;
        }
        match self.data.get(self.pos) {
            Some(&0xFF) => {
                // Fill bytes (more FFs) may precede a marker; FF 00 is a stuffed FF.
                let mut q = self.pos + 1;
                while self.data.get(q) == Some(&0xFF) {
                    q += 1;
                }
                if self.data.get(q) == Some(&0) {
                    self.pos = q + 1;
                    0xFF
                } else {
                    self.stopped = true;
                    self.padded = self.padded.saturating_add(8);
                    0
                }
            }
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => {
                self.stopped = true;
                self.padded = self.padded.saturating_add(8);
                0
            }
        }
    }

    /// The next `n` (0..=16) bits as an unsigned number.
    #[inline(always)]
    pub(crate) fn bits(&mut self, n: u32) -> u32 {
        // Callers pass at most 16 (DC tables with larger symbols are refused per scan); the
        // clamp keeps the shifts below in range whatever happens.
        let n = n.min(16);
        if n == 0 {
            return 0;
        }
        if self.nbits < n {
            self.fill();
        }
        let v = (self.buf >> (64 - n)) as u32;
        self.buf <<= n;
        self.nbits -= n;
        v
    }

    /// One bit.
    #[inline(always)]
    pub(crate) fn bit(&mut self) -> bool {
        self.bits(1) != 0
    }

    /// `bits(s)` sign-extended as a coefficient value.
    #[inline(always)]
    pub(crate) fn receive_extend(&mut self, s: u32) -> i32 {
        let v = self.bits(s);
        extend(v, s)
    }

    /// Decodes one Huffman symbol.
    #[inline(always)]
    pub(crate) fn decode(&mut self, t: &HuffTable) -> Result<u8> {
        if self.nbits < 16 {
            self.fill();
        }
        let e = t.lookup[(self.buf >> (64 - FAST_BITS)) as usize];
        if e != 0 {
            let len = (e >> 8) as u32;
            self.buf <<= len;
            self.nbits -= len;
            return Ok(e as u8);
        }
        self.decode_slow(t)
    }

    #[cold]
    fn decode_slow(&mut self, t: &HuffTable) -> Result<u8> {
        for len in FAST_BITS + 1..=16 {
            let code = (self.buf >> (64 - len)) as i32;
            if code <= t.maxcode[len as usize] {
                self.buf <<= len;
                self.nbits -= len;
                let idx = code + t.valoffset[len as usize];
                return usize::try_from(idx)
                    .ok()
                    .and_then(|i| t.values.get(i).copied())
                    .ok_or_else(|| JpegError::Corrupt("bad Huffman code".into()));
            }
        }
        Err(JpegError::Corrupt("bad Huffman code".into()))
    }

    /// For an AC table: `Some((run, value))` when the next code and its value bits are short
    /// enough for the combined table, consuming them.
    #[inline(always)]
    pub(crate) fn decode_ac_fast(&mut self, t: &HuffTable) -> Option<(usize, i32)> {
        if self.nbits < FAST_BITS {
            self.fill();
        }
        let f = t.ac_fast[(self.buf >> (64 - FAST_BITS)) as usize];
        if f == 0 {
            return None;
        }
        let len = (f & 15) as u32;
        self.buf <<= len;
        self.nbits -= len;
        Some((((f >> 4) & 15) as usize, f >> 8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversubscribed_and_all_ones_code_lengths_are_errors() {
        // Three 1-bit codes (found by the fuzzer: it used to index past the lookup table).
        let mut counts = [0u8; 16];
        counts[0] = 3;
        let e = HuffTable::new(&counts, &[0, 1, 2])
            .err()
            .expect("an error")
            .to_string();
        assert!(e.contains("Huffman table"), "{e}");
        // Two 1-bit codes use up the code space, including the all-ones code.
        counts[0] = 2;
        let e = HuffTable::new(&counts, &[0, 1])
            .err()
            .expect("an error")
            .to_string();
        assert!(e.contains("Huffman table"), "{e}");
        counts = [0; 16];
        counts[4] = 31;
        assert!(HuffTable::new(&counts, &[7; 31]).is_ok());
        counts[4] = 32;
        let e = HuffTable::new(&counts, &[7; 32])
            .err()
            .expect("an error")
            .to_string();
        assert!(e.contains("Huffman table"), "{e}");
        counts[4] = 0;
        counts[12] = 255;
        assert!(HuffTable::new(&counts, &[1; 255]).is_ok());
        // More than 256 symbols.
        let counts = [16u8; 16];
        let e = HuffTable::new(&counts, &[0; 256])
            .err()
            .expect("an error")
            .to_string();
        assert!(e.contains("Huffman table"), "{e}");
    }
}

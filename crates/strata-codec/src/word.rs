//! Short byte strings as one 128-bit word.
//!
//! Requests and responses of line protocols are mostly a few bytes long.
//! For those, a call to `memchr`, `memcpy` or a byte loop costs more than
//! the work itself. Loading up to 16 bytes into one `u128` (with fixed-size
//! loads only) lets the codec search, check and copy them in a handful of
//! instructions, without `unsafe`.

/// Bytes per word.
pub(crate) const WORD: usize = 16;

/// The high bit of every byte: a word is ASCII when none is set.
pub(crate) const HIGH_BITS: u128 = u128::from_ne_bytes([0x80; WORD]);

/// `bytes` (at most [`WORD`] long) as a little-endian word, zero-padded.
///
/// Two overlapping fixed-size loads cover any length from 4 to 16; the
/// overlapping bytes are equal, so OR-ing the halves is exact.
#[inline]
pub(crate) fn load(bytes: &[u8]) -> u128 {
    let n = bytes.len();
    debug_assert!(n <= WORD);
    // Built from 64-bit halves: shifts of a `u128` by a variable amount
    // cost several instructions and branches each.
    if n >= 8 {
        let lo = u64::from_le_bytes(first(bytes));
        let hi = u64::from_le_bytes(first(&bytes[n - 8..]));
        // `hi` holds bytes n - 8 .. n; bytes 8 .. n are its top n - 8.
        let hi = hi.checked_shr(8 * (16 - n) as u32).unwrap_or(0);
        u128::from(lo) | (u128::from(hi) << 64)
    } else if n >= 4 {
        let lo = u32::from_le_bytes(first(bytes));
        let hi = u32::from_le_bytes(first(&bytes[n - 4..]));
        u128::from(u64::from(lo) | (u64::from(hi) << (8 * (n - 4))))
    } else if n > 0 {
        // Positions 0, n / 2 and n - 1 cover every byte of 1 to 3.
        u128::from(
            u64::from(bytes[0])
                | (u64::from(bytes[n / 2]) << (8 * (n / 2)))
                | (u64::from(bytes[n - 1]) << (8 * (n - 1))),
        )
    } else {
        0
    }
}

/// The first `N` bytes of `bytes` as an array (a fixed-size load).
#[inline(always)]
fn first<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// The first 16 bytes of `bytes` (which must have at least 16).
#[inline]
pub(crate) fn load16(bytes: &[u8]) -> u128 {
    u128::from_le_bytes(first(bytes))
}

/// Keeps the low `len` bytes of `word`, zeroing the rest.
#[inline]
pub(crate) fn keep(word: u128, len: usize) -> u128 {
    // Masks for each half, with 64-bit shifts (see `load`).
    let bits = 8 * len as u32;
    let lo_mask = u64::MAX
        .checked_shr(64u32.saturating_sub(bits))
        .unwrap_or(0);
    let hi_mask = u64::MAX
        .checked_shr(128u32.saturating_sub(bits))
        .filter(|_| bits > 64)
        .unwrap_or(0);
    word & (u128::from(lo_mask) | (u128::from(hi_mask) << 64))
}

/// The index of the first byte equal to `byte` in `word`, if any.
#[inline]
pub(crate) fn find(word: u128, byte: u8) -> Option<usize> {
    find_with_prefix(word, byte).map(|(i, _)| i)
}

/// The index of the first byte equal to `byte` in `word` and a mask of
/// all the bits of the bytes before it, if there is one.
///
/// Works on the two 64-bit halves, low half first: short lines end there,
/// and 64-bit arithmetic needs no carries between registers.
#[inline]
pub(crate) fn find_with_prefix(word: u128, byte: u8) -> Option<(usize, u128)> {
    let lo = flags64(word as u64, byte);
    if lo != 0 {
        // The lowest flag is bit 7 of the matching byte; below bit 0 of
        // that byte lie exactly the bytes before it.
        let lowest = lo & lo.wrapping_neg();
        return Some((
            lowest.trailing_zeros() as usize / 8,
            u128::from((lowest >> 7) - 1),
        ));
    }
    let hi = flags64((word >> 64) as u64, byte);
    if hi != 0 {
        let lowest = hi & hi.wrapping_neg();
        return Some((
            8 + lowest.trailing_zeros() as usize / 8,
            u128::from(u64::MAX) | (u128::from((lowest >> 7) - 1) << 64),
        ));
    }
    None
}

/// The classic "has a zero byte" test on `half ^ byte…`: sets the high
/// bit of each matching byte. It can flag a byte wrongly only above a real
/// match, so the lowest flag is exact, and it is non-zero exactly when
/// there is a match.
#[inline]
fn flags64(half: u64, byte: u8) -> u64 {
    let x = half ^ u64::from_ne_bytes([byte; 8]);
    x.wrapping_sub(u64::from_ne_bytes([0x01; 8])) & !x & u64::from_ne_bytes([0x80; 8])
}

/// Whether any byte of `word` equals `byte`.
#[inline]
pub(crate) fn contains(word: u128, byte: u8) -> bool {
    flags64(word as u64, byte) | flags64((word >> 64) as u64, byte) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_is_the_zero_padded_bytes_for_every_length() {
        let src: Vec<u8> = (1..=16).map(|i| i * 13).collect();
        for n in 0..=WORD {
            let mut padded = [0u8; WORD];
            padded[..n].copy_from_slice(&src[..n]);
            assert_eq!(load(&src[..n]), u128::from_le_bytes(padded), "n = {n}");
            assert_eq!(keep(load16(&src), n), u128::from_le_bytes(padded));
        }
    }

    #[test]
    fn find_gives_the_first_match_at_every_position() {
        for n in 0..=WORD {
            for at in 0..n {
                let mut bytes = vec![b'a'; n];
                bytes[at] = b'\n';
                // A second match and bytes that trip naive tests after it.
                if at + 2 < n {
                    bytes[at + 1] = 0x0b;
                    bytes[at + 2] = b'\n';
                }
                assert_eq!(find(load(&bytes), b'\n'), Some(at), "{bytes:?}");
                let (i, before) = find_with_prefix(load(&bytes), b'\n').unwrap();
                assert_eq!(i, at);
                assert_eq!(before, keep(u128::MAX, at), "at = {at}");
            }
            assert_eq!(find(load(&vec![0x0b; n]), b'\n'), None);
            assert!(!contains(load(&vec![0x0b; n]), b'\n'));
            assert_eq!(find_with_prefix(load(&vec![0x0b; n]), b'\n'), None);
            if n > 0 {
                let mut one = vec![0x0b; n];
                one[n - 1] = b'\n';
                assert!(contains(load(&one), b'\n'));
            }
        }
        // Padding never matches, not even for a zero byte search past `n`.
        assert_eq!(find(load(b"ab"), b'\n'), None);
    }
}

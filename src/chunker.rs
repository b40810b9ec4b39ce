//! Content-defined chunking: FastCDC with a keyed gear table, doing no I/O.
//!
//! Algorithm: FastCDC, Xia et al., "FastCDC: a Fast and Efficient Content-Defined Chunking
//! Approach for Data Deduplication" (USENIX ATC 2016) and its 2020 TPDS revision (rolling two
//! bytes per step), through the `fastcdc` crate's `v2020::cut_gear`. The gear table comes from
//! the repository's chunker key ([`crate::crypto::MasterKey::gear_table`]), so boundaries differ
//! between repositories and chunk sizes do not fingerprint known files.
//!
//! The chunker is a pure function of the bytes it is shown: [`Chunker::next_cut`] says where
//! the next chunk ends, or that it needs more bytes; the caller owns the buffer and the reads.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Chunk size parameters, stored in the repository's config. Sizes in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// No chunk is shorter than this, except a stream's last one.
    pub min_size: u32,
    /// Target average size; a power of two.
    pub avg_size: u32,
    /// No chunk is longer than this.
    pub max_size: u32,
    /// FastCDC normalization level, 0 to 3.
    pub normalization: u8,
}

impl Default for ChunkerParams {
    /// The measured defaults (repo-format.md, "Choice of chunk sizes").
    fn default() -> Self {
        ChunkerParams { min_size: 128 * 1024, avg_size: 512 * 1024, max_size: 2 * 1024 * 1024, normalization: 1 }
    }
}

impl ChunkerParams {
    /// Check the parameters against what FastCDC accepts: min in [64 B, 1 MiB], avg a power
    /// of two in [256 B, 4 MiB], max in [1 KiB, 16 MiB], min < avg < max, level ≤ 3.
    pub fn validate(&self) -> Result<()> {
        use fastcdc::v2020::{AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN};
        let ok = (MINIMUM_MIN..=MINIMUM_MAX).contains(&self.min_size)
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&self.avg_size)
            && self.avg_size.is_power_of_two()
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&self.max_size)
            && self.min_size < self.avg_size
            && self.avg_size < self.max_size
            && self.normalization <= 3;
        if ok {
            Ok(())
        } else {
            Err(Error::Usage(format!("chunker parameters out of range: {self:?}")))
        }
    }
}

/// A keyed FastCDC chunker. Cheap to share between threads (`&self` only).
pub struct Chunker {
    params: ChunkerParams,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
}

impl Chunker {
    /// Build a chunker from validated parameters and a 256-entry gear table.
    pub fn new(params: ChunkerParams, gear: Box<[u64; 256]>) -> Result<Self> {
        params.validate()?;
        let bits = params.avg_size.trailing_zeros() as usize;
        let level = params.normalization as usize;
        let masks = &fastcdc::v2020::MASKS;
        let mask_s = *masks
            .get(bits + level)
            .ok_or_else(|| Error::Internal("chunker mask for an average size too large".into()))?;
        let mask_l = *masks
            .get(bits - level)
            .ok_or_else(|| Error::Internal("chunker mask for an average size too small".into()))?;
        let mut gear_ls = Box::new([0u64; 256]);
        for (ls, g) in gear_ls.iter_mut().zip(gear.iter()) {
            *ls = g << 1;
        }
        Ok(Chunker { params, gear, gear_ls, mask_s, mask_l })
    }

    /// The parameters this chunker cuts with.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Where the next chunk of `data` ends (a length in 1..=max_size), or `None` when more
    /// bytes are needed to decide: fewer than `max_size` bytes are given and `eof` is false.
    /// With `eof`, the rest of the stream is `data`; `None` then means `data` is empty.
    pub fn next_cut(&self, data: &[u8], eof: bool) -> Option<usize> {
        if data.is_empty() || (!eof && data.len() < self.params.max_size as usize) {
            return None;
        }
        Some(self.cut(data).clamp(1, data.len()))
    }

    /// FastCDC 2020's cut point in `data`, the same as `fastcdc::v2020::cut_gear` gives (a
    /// test compares them): from `min_size`, two bytes a step, a match of the gear hash
    /// against the small-chunk mask before `avg_size` and the large-chunk mask after it;
    /// `max_size` (or the end of `data`) when nothing matches. The loop is written so that
    /// the hash's dependency chain is one shift and one add per two bytes (the crate's is two
    /// adds), and without bounds checks.
    fn cut(&self, data: &[u8]) -> usize {
        let (min, avg, max) =
            (self.params.min_size as usize, self.params.avg_size as usize, self.params.max_size as usize);
        let mut remaining = data.len();
        if remaining <= min {
            return remaining;
        }
        let mut center = avg;
        if remaining > max {
            remaining = max;
        } else if remaining < center {
            center = remaining;
        }
        let mut hash = 0u64;
        let first = min / 2;
        let (small_end, end) = (center / 2, remaining / 2);
        let small = scan(data, first, small_end, &mut hash, self.mask_s, &self.gear, &self.gear_ls);
        small
            .or_else(|| scan(data, first.max(small_end), end, &mut hash, self.mask_l, &self.gear, &self.gear_ls))
            .unwrap_or(remaining)
    }

    /// Split a complete buffer into chunks.
    pub fn chunks<'a>(&'a self, data: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut rest = data;
        std::iter::from_fn(move || {
            let n = self.next_cut(rest, true)?;
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            Some(chunk)
        })
    }
}

/// Roll the gear hash over the byte pairs `from..to` of `data` (pair `i` is bytes `2i` and
/// `2i + 1`): the position of the first byte where the hash matches `mask` (`mask << 1` on
/// the first byte of a pair, as in FastCDC 2020), or `None`.
fn scan(
    data: &[u8],
    from: usize,
    to: usize,
    hash: &mut u64,
    mask: u64,
    gear: &[u64; 256],
    gear_ls: &[u64; 256],
) -> Option<usize> {
    if from >= to {
        return None;
    }
    let pairs = data.get(2 * from..2 * to)?;
    let mask_ls = mask << 1;
    let mut h = *hash;
    for (i, pair) in pairs.chunks_exact(2).enumerate() {
        let (a, b) = (pair[0] as usize, pair[1] as usize);
        let shifted = h << 2;
        let first = shifted.wrapping_add(gear_ls[a]);
        h = shifted.wrapping_add(gear_ls[a].wrapping_add(gear[b]));
        if first & mask_ls == 0 {
            return Some(2 * (from + i));
        }
        if h & mask == 0 {
            return Some(2 * (from + i) + 1);
        }
    }
    *hash = h;
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};

    fn small() -> ChunkerParams {
        ChunkerParams { min_size: 1024, avg_size: 4096, max_size: 16384, normalization: 1 }
    }

    fn gear(seed: u8) -> Box<[u64; 256]> {
        let mut g = Box::new([0u64; 256]);
        let mut rng = rand::rngs::StdRng::from_seed([seed; 32]);
        for v in g.iter_mut() {
            *v = rng.next_u64();
        }
        g
    }

    fn data(len: usize) -> Vec<u8> {
        let mut d = vec![0u8; len];
        rand::rngs::StdRng::from_seed([42; 32]).fill_bytes(&mut d);
        d
    }

    #[test]
    fn chunks_cover_input_within_bounds() {
        let c = Chunker::new(small(), gear(1)).unwrap();
        let d = data(1 << 20);
        let chunks: Vec<&[u8]> = c.chunks(&d).collect();
        assert_eq!(chunks.concat(), d);
        let (last, body) = chunks.split_last().unwrap();
        assert!(body.iter().all(|c| c.len() >= 1024 && c.len() <= 16384));
        assert!(last.len() <= 16384);
        let avg = d.len() / chunks.len();
        assert!((2048..=8192).contains(&avg), "average {avg}");
    }

    #[test]
    fn boundaries_resynchronise_after_an_insert() {
        let c = Chunker::new(small(), gear(1)).unwrap();
        let d = data(256 * 1024);
        let mut e = d[..1000].to_vec();
        e.extend_from_slice(b"inserted bytes");
        e.extend_from_slice(&d[1000..]);
        let a: std::collections::HashSet<&[u8]> = c.chunks(&d).collect();
        let b: Vec<&[u8]> = c.chunks(&e).collect();
        let shared = b.iter().filter(|x| a.contains(*x)).count();
        assert!(shared + 3 >= b.len(), "only {shared} of {} chunks shared", b.len());
    }

    #[test]
    fn gear_table_changes_boundaries() {
        let d = data(512 * 1024);
        let a: Vec<usize> = Chunker::new(small(), gear(1)).unwrap().chunks(&d).map(|c| c.len()).collect();
        let b: Vec<usize> = Chunker::new(small(), gear(2)).unwrap().chunks(&d).map(|c| c.len()).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn streaming_equals_whole_buffer() {
        // Feed the chunker the way the archiver does: a window of at least max_size bytes.
        let c = Chunker::new(small(), gear(3)).unwrap();
        let d = data(300_000);
        let whole: Vec<&[u8]> = c.chunks(&d).collect();
        let mut got = Vec::new();
        let mut pos = 0;
        let mut window_end = 0;
        loop {
            window_end = (window_end + 5000).min(d.len());
            let eof = window_end == d.len();
            while let Some(n) = c.next_cut(&d[pos..window_end], eof) {
                got.push(&d[pos..pos + n]);
                pos += n;
            }
            if eof {
                break;
            }
        }
        assert_eq!(got, whole);
    }

    #[test]
    fn empty_and_tiny_inputs() {
        let c = Chunker::new(small(), gear(1)).unwrap();
        assert_eq!(c.chunks(&[]).count(), 0);
        assert_eq!(c.chunks(b"abc").collect::<Vec<_>>(), vec![b"abc".as_slice()]);
        assert_eq!(c.next_cut(&[0; 100], false), None);
    }

    proptest::proptest! {
        /// The chunker's own loop cuts exactly where the fastcdc crate's `cut_gear` does.
        #[test]
        fn cuts_equal_fastcdc_cut_gear(seed: u8, len in 0usize..70_000, level in 0u8..=3, zeros in proptest::bool::ANY) {
            let params = ChunkerParams { min_size: 1024, avg_size: 4096, max_size: 16384, normalization: level };
            let c = Chunker::new(params, gear(seed)).unwrap();
            let mut d = data(len);
            if zeros {
                // Long runs with no match reach max_size.
                d.iter_mut().skip(len / 3).take(len / 3).for_each(|b| *b = 0);
            }
            let mut rest = &d[..];
            while !rest.is_empty() {
                let (_, want) = fastcdc::v2020::cut_gear(rest, 1024, 4096, 16384, c.mask_s, c.mask_l, c.mask_s << 1, c.mask_l << 1, &c.gear, &c.gear_ls);
                let got = c.cut(rest);
                proptest::prop_assert_eq!(got, want);
                rest = &rest[want.max(1)..];
            }
        }
    }

    #[test]
    fn invalid_params_rejected() {
        let bad = ChunkerParams { avg_size: 3000, ..small() };
        assert!(Chunker::new(bad, gear(1)).is_err());
        let bad = ChunkerParams { min_size: 20000, ..small() };
        assert!(Chunker::new(bad, gear(1)).is_err());
    }
}

//! The synthetic Maildir of the nightly-scale test and benchmark: `n` messages of 2 to 50 KB
//! (sizes spread evenly on a log scale, so most are small, as in real mailboxes) in `cur/`
//! and `new/` of four folders per user, 2,000 messages per user, with Maildir file names.
//! Deterministic: the same tree every time for the same `n`.

use std::io::Write;
use std::path::Path;

/// Smallest and largest message, bytes.
pub const MIN_SIZE: f64 = 2_000.0;
pub const MAX_SIZE: f64 = 50_000.0;

/// Bytes of generated text that message bodies are cut from.
const TEXT_LEN: usize = 4 << 20;

/// Write the Maildir under `base` (kept files are not rewritten); returns how many files were
/// written and their bytes. Panics on an I/O error (a test or benchmark set-up failure).
pub fn generate(base: &Path, n: usize) -> (usize, u64) {
    let words: Vec<&str> = "the of and to in is you that it he was for on are as with his they at be this from have or by one had not but what all were when we there can an your which their said if do will each about how up out them then she many some so these would other into has more her two like him see time could no make than first been its who now people my made over did down only way find use may water long little very after words called just where most know".split(' ').collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // Text of random words; each body is a stretch of it from a random place, so that messages
    // differ (no two are the same blob) and compress like prose.
    let mut text = Vec::with_capacity(TEXT_LEN + 16);
    while text.len() < TEXT_LEN {
        let w = next();
        text.extend_from_slice(words[(w % words.len() as u64) as usize].as_bytes());
        text.push(if w % 12 == 0 { b'\n' } else { b' ' });
    }
    let (mut made, mut bytes) = (0, 0u64);
    for i in 0..n {
        let user = i / 2000;
        let folder = (i / 500) % 4;
        let sub = if i % 5 == 0 { "new" } else { "cur" };
        let dir = base.join(format!("example.com/user{user:03}/Maildir/.folder{folder}/{sub}"));
        let path = dir.join(format!("{}.M{}P{}.mail1:2,S", 1_700_000_000 + i, i, 4000 + i % 997));
        // Drawn for every message, written or kept, so that the tree never depends on what
        // an earlier run left.
        let unit = (next() % 1_000_000) as f64 / 1_000_000.0;
        let size = (MIN_SIZE * (MAX_SIZE / MIN_SIZE).powf(unit)) as usize;
        let from = next() % 1000;
        let at = (next() % (TEXT_LEN - MAX_SIZE as usize) as u64) as usize;
        if path.exists() {
            continue;
        }
        if i % 500 < 2 {
            // The first two messages of a folder go to new/ and cur/: make both.
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        let mut body =
            format!("From: user{from}@example.org\nTo: user{user}@example.com\nSubject: message {i}\n\n").into_bytes();
        let rest = size.saturating_sub(body.len());
        body.extend_from_slice(&text[at..at + rest]);
        let mut f = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        f.write_all(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        made += 1;
        bytes += body.len() as u64;
    }
    (made, bytes)
}

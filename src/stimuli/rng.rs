//! Seeded, portable randomness with one independent stream per purpose and trial.
//!
//! Every stimulus is drawn from its own generator, [`stream`]`(master_seed, name, index)`,
//! so a trial's images depend only on the experiment's seed, the stream's name and the
//! trial's index: never on batch size, iteration order or thread count.
//!
//! # Derivation (fixed; changing it changes every experiment's stimuli)
//!
//! 1. `h = FNV-1a-64(name as UTF-8)` (offset basis `0xcbf29ce484222325`, prime
//!    `0x100000001b3`).
//! 2. `s = splitmix64(master_seed) ^ h`, where `splitmix64(x)` is the first output of
//!    Vigna's SplitMix64 seeded with `x` (state `x + 0x9E3779B97F4A7C15`, then the
//!    `30/27/31` xor-shift-multiply finaliser).
//! 3. The 32-byte ChaCha key is the next four SplitMix64 outputs from state `s`, each
//!    written little-endian.
//! 4. The generator is `ChaCha8Rng::from_seed(key)` with its 64-bit stream (the ChaCha
//!    nonce) set to `index`, at word position 0.
//!
//! ChaCha streams under one key are independent by construction, so every index of a
//! stream gets its own sequence; different names or seeds give different keys.
//!
//! The helpers below ([`below`], [`int_range`], [`unit_f64`], [`uniform_f64`]) turn the raw
//! ChaCha words into numbers by fixed, documented rules, so the stimuli do not depend on
//! `rand`'s distribution code either (which may change between its minor versions).

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Stream of the probe's training trials; its index is [`train_index`]`(epoch, trial)`.
pub const TRAIN: &str = "train";
/// Stream of the probe's parameter initialisation.
pub const PROBE_INIT: &str = "probe-init";

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// One step of SplitMix64: advances `state` and returns the next output.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN_GAMMA);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a, 64-bit, of `bytes`.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The generator for trial `index` of the stream `name` under `master_seed` (see the
/// module documentation for the exact derivation).
pub fn stream(master_seed: u64, name: &str, index: u64) -> ChaCha8Rng {
    let mut s = master_seed;
    let mut state = splitmix64(&mut s) ^ fnv1a64(name.as_bytes());
    let mut key = [0u8; 32];
    for chunk in key.chunks_exact_mut(8) {
        chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(index);
    rng
}

/// The index of a training trial in the [`TRAIN`] stream: `epoch · 2³² + trial`.
///
/// `trial` must be below 2³² (checked in debug builds); trials are drawn afresh each epoch.
pub fn train_index(epoch: u32, trial: u64) -> u64 {
    debug_assert!(trial < 1 << 32, "trial {trial} does not fit in 32 bits");
    (u64::from(epoch) << 32).wrapping_add(trial)
}

/// A uniform integer in `0..n`, without bias (Lemire's multiply-and-reject on 32-bit words).
///
/// # Panics
/// If `n` is 0.
pub fn below<R: RngCore + ?Sized>(rng: &mut R, n: u32) -> u32 {
    assert!(n > 0, "below(0): empty range");
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = u64::from(rng.next_u32()) * u64::from(n);
        if (m as u32) >= threshold {
            return (m >> 32) as u32;
        }
    }
}

/// A uniform integer in `lo..hi` (numpy's `randint(lo, hi)`).
///
/// # Panics
/// If the range is empty.
pub fn int_range<R: RngCore + ?Sized>(rng: &mut R, lo: i32, hi: i32) -> i32 {
    assert!(hi > lo, "int_range: empty range {lo}..{hi}");
    let span = (i64::from(hi) - i64::from(lo)) as u32;
    (i64::from(lo) + i64::from(below(rng, span))) as i32
}

/// A uniform double in [0, 1): the top 53 bits of one 64-bit word, times 2⁻⁵³.
pub fn unit_f64<R: RngCore + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform double in [lo, hi): `lo + (hi − lo)·u` with `u` from [`unit_f64`], as numpy's
/// `uniform(lo, hi)`.
pub fn uniform_f64<R: RngCore + ?Sized>(rng: &mut R, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * unit_f64(rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(mut rng: ChaCha8Rng) -> Vec<u64> {
        (0..8).map(|_| rng.next_u64()).collect()
    }

    #[test]
    fn same_inputs_same_draws() {
        assert_eq!(words(stream(7, TRAIN, 3)), words(stream(7, TRAIN, 3)));
        assert_eq!(
            words(stream(7, TRAIN, train_index(2, 5))),
            words(stream(7, TRAIN, (2 << 32) + 5))
        );
    }

    #[test]
    fn different_inputs_different_draws() {
        let base = words(stream(7, TRAIN, 3));
        for other in [
            stream(8, TRAIN, 3),
            stream(7, PROBE_INIT, 3),
            stream(7, "trai", 3),
            stream(7, TRAIN, 4),
            stream(7, TRAIN, train_index(1, 3)),
        ] {
            assert_ne!(base, words(other));
        }
        // No overlap between neighbouring trials' sequences either.
        let a = words(stream(0, TRAIN, 0));
        let b = words(stream(0, TRAIN, 1));
        assert!(a.iter().all(|w| !b.contains(w)));
    }

    #[test]
    fn pinned_values() {
        // Guards the derivation against accidental change: these are the first words of
        // fixed streams. Update only on a deliberate, documented change of the derivation.
        let mut s = 0u64;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF); // Vigna's reference output
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stream(0, TRAIN, 0).next_u64(), 0x3f43_8a30_19f5_a167);
        assert_eq!(stream(42, PROBE_INIT, 7).next_u64(), 0x3ad4_32c4_1a74_68ea);
    }

    #[test]
    fn helpers_ranges() {
        let mut rng = stream(1, "test", 0);
        let mut seen = [false; 7];
        for _ in 0..2000 {
            let v = int_range(&mut rng, -3, 4);
            assert!((-3..4).contains(&v));
            seen[(v + 3) as usize] = true;
            let u = uniform_f64(&mut rng, 0.04, 1.0);
            assert!((0.04..1.0).contains(&u));
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(int_range(&mut rng, 5, 6), 5);
    }
}

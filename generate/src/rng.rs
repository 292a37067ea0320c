//! Random streams. Every stage and every chunk of persons draws from its own ChaCha8 stream
//! derived from (seed, stream id), so the output does not depend on the number of threads.
//! Only `next_u64` is used, through the helpers below, so the bytes do not depend on how a
//! `rand` release implements its distributions either.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Stream ids: one per stage, chunked stages add the chunk index.
pub mod ids {
    pub const PEOPLE: u64 = 1;
    pub const COMMUNES: u64 = 2;
    pub const PRACTITIONERS: u64 = 3;
    pub const COVID_FATES: u64 = 4;
    pub const CASES: u64 = 5;
    pub const POPULATION: u64 = 6;
    pub const COVID_CHUNK: u64 = 1 << 32;
    pub const FHIR_CHUNK: u64 = 2 << 32;
}

pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stateless hash of several values: for choices that must not consume a stream.
pub fn hash(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5EED_u64, |h, &p| splitmix64(h ^ p))
}

pub trait RngExt: RngCore {
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }
    /// Uniform in lo..=hi (hi >= lo).
    fn between(&mut self, lo: i32, hi: i32) -> i32 {
        lo + self.below((hi - lo + 1).max(1) as u64) as i32
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
    /// Exponential with rate 1.
    fn exp1(&mut self) -> f64 {
        -(1.0 - self.unit()).ln()
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

impl<R: RngCore + ?Sized> RngExt for R {}

/// Sampling by weight with a cumulative table and a binary search.
pub struct Weighted {
    cumulative: Vec<f64>,
}

impl Weighted {
    pub fn new(weights: impl IntoIterator<Item = f64>) -> Self {
        let mut acc = 0.0;
        let cumulative = weights
            .into_iter()
            .map(|w| {
                acc += w.max(0.0);
                acc
            })
            .collect();
        Weighted { cumulative }
    }

    pub fn sample(&self, rng: &mut impl RngCore) -> usize {
        let total = *self.cumulative.last().expect("non-empty weights");
        let x = rng.unit() * total;
        self.cumulative
            .partition_point(|&c| c <= x)
            .min(self.cumulative.len() - 1)
    }
}

/// Allocates `total` units over `weights` with the largest-remainder method (exact sum).
pub fn apportion(total: u64, weights: &[f64]) -> Vec<u64> {
    let sum: f64 = weights.iter().sum();
    let quotas: Vec<f64> = weights.iter().map(|w| w / sum * total as f64).collect();
    let mut counts: Vec<u64> = quotas.iter().map(|q| q.floor() as u64).collect();
    let mut left = total - counts.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let ra = quotas[a] - quotas[a].floor();
        let rb = quotas[b] - quotas[b].floor();
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for i in order {
        if left == 0 {
            break;
        }
        counts[i] += 1;
        left -= 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(stream(1, 7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(stream(1, 7), |r, _| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(stream(1, 8), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn apportion_is_exact() {
        let c = apportion(1000, &[1.0, 2.0, 3.3, 0.0]);
        assert_eq!(c.iter().sum::<u64>(), 1000);
        assert_eq!(c[3], 0);
    }
}

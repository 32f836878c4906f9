//! What each request carries: which entities (uniform or zipfian over driver ids
//! 1..=entities), the row values of a push, and read-or-push for the mixed workload.
//!
//! Every worker has its own seeded [`SmallRng`], so a run with the same `--seed` draws the
//! same keys in each worker.

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};

use super::options::Workload;
use super::protocol::{Route, Row};

/// Driver ids the freshness probes write to: one per probe worker, far above any preloaded id,
/// so a probe's unique value is never overwritten by another worker.
pub const PROBE_KEY_BASE: i64 = 1 << 48;

/// Draws driver ids in 1..=entities.
#[derive(Debug, Clone)]
pub enum Keys {
    Uniform {
        entities: u64,
    },
    /// Rank 1 (driver 1) is the hottest key.
    Zipf {
        entities: u64,
        zipf: Zipf<f64>,
    },
}

impl Keys {
    pub fn new(entities: u64, zipf: Option<f64>) -> Result<Keys, String> {
        match zipf {
            None => Ok(Keys::Uniform { entities }),
            Some(s) => Ok(Keys::Zipf {
                entities,
                zipf: Zipf::new(entities as f64, s)
                    .map_err(|e| format!("no zipf distribution for s = {s}: {e}"))?,
            }),
        }
    }

    pub fn sample(&self, rng: &mut SmallRng) -> i64 {
        let id = match self {
            Keys::Uniform { entities } => rng.random_range(1..=*entities),
            // The sample is a whole number in [1, n] as a float; clamp against rounding.
            Keys::Zipf { entities, zipf } => (zipf.sample(rng) as u64).clamp(1, *entities),
        };
        id as i64
    }

    /// Fills `out` with `n` driver ids.
    pub fn fill(&self, rng: &mut SmallRng, n: usize, out: &mut Vec<i64>) {
        out.clear();
        out.extend((0..n).map(|_| self.sample(rng)));
    }
}

/// A worker's generator: its random source, the key distribution, the operation mix.
pub struct Generator {
    pub rng: SmallRng,
    keys: Keys,
    read_ratio: f64,
}

impl Generator {
    /// `worker` makes each worker's stream distinct under one seed.
    pub fn new(keys: Keys, workload: Workload, seed: u64, worker: usize) -> Generator {
        let read_ratio = match workload {
            Workload::Read => 1.0,
            Workload::Push => 0.0,
            Workload::Mixed { read_ratio } => read_ratio,
            Workload::Freshness => 0.5,
        };
        let stream = seed ^ (worker as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Generator {
            rng: SmallRng::seed_from_u64(stream),
            keys,
            read_ratio,
        }
    }

    /// Read or push, by the workload's read ratio.
    pub fn next_route(&mut self) -> Route {
        if self.read_ratio >= 1.0 || self.rng.random_bool(self.read_ratio) {
            Route::Read
        } else {
            Route::Push
        }
    }

    pub fn keys(&mut self, n: usize, out: &mut Vec<i64>) {
        self.keys.fill(&mut self.rng, n, out);
    }

    /// A row for `driver_id` with random values (trips below 1000).
    pub fn row(&mut self, driver_id: i64) -> Row {
        Row {
            driver_id,
            conv_rate: self.rng.random::<f32>(),
            acc_rate: self.rng.random::<f32>(),
            avg_daily_trips: self.rng.random_range(0..1000),
        }
    }

    /// `n` rows for keys drawn from the distribution.
    pub fn rows(&mut self, n: usize, out: &mut Vec<Row>) {
        out.clear();
        for _ in 0..n {
            let id = self.keys.sample(&mut self.rng);
            let row = self.row(id);
            out.push(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(keys: &Keys, n: usize) -> Vec<i64> {
        let mut rng = SmallRng::seed_from_u64(7);
        (0..n).map(|_| keys.sample(&mut rng)).collect()
    }

    #[test]
    fn zipf_keys_stay_in_range_and_favour_low_ranks() {
        let keys = Keys::new(1000, Some(0.99)).unwrap();
        let ids = draws(&keys, 20_000);
        assert!(ids.iter().all(|&id| (1..=1000).contains(&id)));
        let top10 = ids.iter().filter(|&&id| id <= 10).count();
        // Uniform would put 1% there; zipf(0.99) over 1000 keys puts about 39% there.
        assert!(top10 > ids.len() / 5, "{top10} of {}", ids.len());
        assert!(ids.contains(&1));
    }

    #[test]
    fn uniform_keys_cover_the_range() {
        let ids = draws(&Keys::new(10, None).unwrap(), 2_000);
        for id in 1..=10 {
            assert!(ids.contains(&id), "{id} never drawn");
        }
        assert!(ids.iter().all(|&id| (1..=10).contains(&id)));
    }

    #[test]
    fn a_single_entity_is_always_chosen() {
        for zipf in [None, Some(1.0), Some(2.5)] {
            let keys = Keys::new(1, zipf).unwrap();
            assert!(draws(&keys, 100).iter().all(|&id| id == 1));
        }
    }

    #[test]
    fn the_mix_follows_the_read_ratio() {
        let keys = Keys::new(10, None).unwrap();
        let mut all_reads = Generator::new(keys.clone(), Workload::Read, 1, 0);
        assert!((0..100).all(|_| all_reads.next_route() == Route::Read));
        let mut all_pushes = Generator::new(keys.clone(), Workload::Push, 1, 0);
        assert!((0..100).all(|_| all_pushes.next_route() == Route::Push));
        let mut mixed = Generator::new(keys, Workload::Mixed { read_ratio: 0.9 }, 1, 0);
        let reads = (0..10_000)
            .filter(|_| mixed.next_route() == Route::Read)
            .count();
        assert!((8_500..9_500).contains(&reads), "{reads}");
    }
}

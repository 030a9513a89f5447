//! Stress: pipelined connections with random request mixes, random write
//! splits and pauses, under small and large in-flight limits and write
//! high-water marks. Every response must come back, in request order, on
//! every connection. Seeds are fixed, so a failure names its seed.

mod support;

use std::io::Write;
use std::time::Duration;

use support::*;

/// A small deterministic generator (64-bit LCG, high bits).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One connection: `count` requests with their expected responses, sent
/// in random pieces from a writer thread while this thread reads.
fn run_connection(fx: &Fixture, seed: u64, count: usize) {
    let mut rng = Rng(seed);
    let mut wire = Vec::new();
    let mut expected = Vec::with_capacity(count);
    for i in 0..count {
        match rng.below(10) {
            // Mostly immediate answers (the burst path), some that finish
            // later (queued behind or ahead of others), some failures.
            0..=6 => {
                wire.extend_from_slice(format!("echo s{seed}r{i}\n").as_bytes());
                expected.push(format!("s{seed}r{i}"));
            }
            7 | 8 => {
                let ms = rng.below(3);
                wire.extend_from_slice(format!("sleep {ms} s{seed}r{i}\n").as_bytes());
                expected.push(format!("s{seed}r{i}"));
            }
            _ => {
                wire.extend_from_slice(b"fail\n");
                expected.push("failed: asked to fail".to_string());
            }
        }
    }
    let mut client = fx.connect();
    let mut writer = client.writer.try_clone().unwrap();
    let pieces_seed = rng.next();
    let sender = std::thread::spawn(move || {
        let mut rng = Rng(pieces_seed);
        let mut at = 0;
        while at < wire.len() {
            let n = (1 + rng.below(200) as usize).min(wire.len() - at);
            writer.write_all(&wire[at..at + n]).unwrap();
            at += n;
            if rng.below(8) == 0 {
                std::thread::sleep(Duration::from_micros(rng.below(500)));
            }
        }
    });
    for (i, want) in expected.iter().enumerate() {
        let got = client.recv();
        assert_eq!(
            got.as_deref(),
            Some(want.as_str()),
            "seed {seed}: response {i} of {count}"
        );
    }
    sender.join().unwrap();
}

#[test]
fn random_pipelines_are_answered_in_order() {
    deadline(120, || {
        let configs = [
            cfg().max_in_flight(1),
            cfg().max_in_flight(3).write_high_water_mark(8),
            cfg().write_high_water_mark(64),
            cfg(),
        ];
        for (c, config) in configs.into_iter().enumerate() {
            let fx = Fixture::start(2, 100, config);
            std::thread::scope(|s| {
                for k in 0..4u64 {
                    let fx = &fx;
                    let seed = (c as u64) * 100 + k;
                    s.spawn(move || run_connection(fx, seed, 400));
                }
            });
        }
    });
}

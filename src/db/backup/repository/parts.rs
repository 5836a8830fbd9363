//! Multipart uploads whose part size grows as parts accumulate, so that a dump of any
//! size fits S3's limit of 10,000 parts per object (5 MiB to 5 GiB each) without knowing
//! its size in advance (pg_dump's output is uploaded as it is produced).
//!
//! Parts start at [`BASE_PART`] (8 MiB) and double every [`PARTS_PER_STEP`] parts:
//! 10,000 parts hold 8,000 MiB × (2¹⁰ − 1) ≈ 7.8 TiB, above S3's 5 TiB object limit, and the
//! largest part (4 GiB) stays under S3's 5 GiB. Memory follows the part size: parts in
//! flight are limited to [`IN_FLIGHT_BYTES`] (at least one), so dumps up to 8,000 MiB (stored
//! size) upload with 8 MiB parts, four at once, within dbflow's 64 MiB; larger ones use
//! more, about two parts' worth.
//!
//! S3, GCS (its XML multipart API) and Azure (blocks) accept parts of different sizes;
//! stores that demand equal parts (Cloudflare R2) see the first change only after 8,000 MiB.

use object_store::{MultipartUpload, PutPayloadMut, PutResult};
use tokio::task::JoinSet;

/// Size of the first parts.
pub const BASE_PART: usize = 8 << 20;
/// Parts of one size before the size doubles.
pub const PARTS_PER_STEP: usize = 1000;
/// S3's limit on the number of parts of one object.
pub const MAX_PARTS: usize = 10_000;
/// S3's limit on the size of one part.
pub const MAX_PART: usize = 5 << 30;
/// Bytes of parts uploading at once (at least one part, whatever its size).
pub const IN_FLIGHT_BYTES: usize = 32 << 20;

/// Size of the part numbered `index` (from 0).
pub fn part_size(index: usize) -> usize {
    let doublings = (index / PARTS_PER_STEP).min(20) as u32;
    BASE_PART.saturating_mul(1 << doublings).min(MAX_PART)
}

/// How many parts of `size` may upload at once.
pub fn in_flight(size: usize) -> usize {
    (IN_FLIGHT_BYTES / size).max(1)
}

/// The most bytes an object of `parts` parts can hold under [`part_size`].
pub fn capacity(parts: usize) -> u128 {
    (0..parts).map(|i| part_size(i) as u128).sum()
}

/// A multipart upload fed with bytes, cut into growing parts uploaded in the background.
pub struct Parts {
    upload: Box<dyn MultipartUpload>,
    buffer: PutPayloadMut,
    tasks: JoinSet<object_store::Result<()>>,
    parts: usize,
    most: usize,
}

impl Parts {
    /// Starts feeding `upload`.
    pub fn new(upload: Box<dyn MultipartUpload>) -> Self {
        Parts {
            upload,
            buffer: PutPayloadMut::new(),
            tasks: JoinSet::new(),
            parts: 0,
            most: usize::MAX,
        }
    }

    /// Lets at most `parts` parts upload at once: several files uploading side by side
    /// (a directory-format dump) share dbflow's memory.
    pub fn in_flight_at_most(mut self, parts: usize) -> Self {
        self.most = parts.max(1);
        self
    }

    /// Adds `bytes`; every part filled is sent. Call [`Parts::wait_for_capacity`] after
    /// each write to bound memory.
    pub fn put(&mut self, mut bytes: bytes::Bytes) {
        while !bytes.is_empty() {
            let remaining = part_size(self.parts) - self.buffer.content_length();
            if bytes.len() < remaining {
                self.buffer.push(bytes);
                return;
            }
            self.buffer.push(bytes.split_to(remaining));
            self.send();
        }
    }

    /// Adds a copy of `buf`.
    pub fn write(&mut self, buf: &[u8]) {
        self.put(bytes::Bytes::copy_from_slice(buf));
    }

    fn send(&mut self) {
        let part = std::mem::take(&mut self.buffer);
        self.tasks.spawn(self.upload.put_part(part.into()));
        self.parts += 1;
    }

    /// Waits until no more parts upload than the current part size allows.
    pub async fn wait_for_capacity(&mut self) -> object_store::Result<()> {
        self.wait_until(in_flight(part_size(self.parts)).min(self.most))
            .await
    }

    async fn wait_until(&mut self, max: usize) -> object_store::Result<()> {
        while !self.tasks.is_empty() && self.tasks.len() >= max.max(1) {
            if let Some(done) = self.tasks.join_next().await {
                done.map_err(|e| object_store::Error::Generic {
                    store: "upload",
                    source: Box::new(e),
                })??;
            }
        }
        Ok(())
    }

    /// Sends the last part, waits for all, and completes the upload (aborted on error).
    pub async fn finish(mut self) -> object_store::Result<PutResult> {
        if !self.buffer.is_empty() {
            self.send();
        }
        while let Some(done) = self.tasks.join_next().await {
            let failed = match done {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(e) => Some(object_store::Error::Generic {
                    store: "upload",
                    source: Box::new(e),
                }),
            };
            if let Some(e) = failed {
                self.tasks.shutdown().await;
                let _ = self.upload.abort().await;
                return Err(e);
            }
        }
        match self.upload.complete().await {
            Ok(done) => Ok(done),
            Err(e) => {
                let _ = self.upload.abort().await;
                Err(e)
            }
        }
    }

    /// Stops the parts in flight and aborts the upload (the server deletes its parts).
    pub async fn abort(mut self) -> object_store::Result<()> {
        self.tasks.shutdown().await;
        self.upload.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u128 = 1 << 20;
    const TIB: u128 = 1 << 40;

    #[test]
    fn ten_thousand_parts_hold_more_than_s3s_largest_object() {
        assert!(capacity(MAX_PARTS) >= 5 * TIB, "{}", capacity(MAX_PARTS));
        // The smallest number of parts a 5 TiB dump needs is within the limit.
        let needed = (1..=MAX_PARTS).find(|&n| capacity(n) >= 5 * TIB).unwrap();
        assert!(needed <= MAX_PARTS, "{needed}");
        for index in 0..MAX_PARTS {
            let size = part_size(index);
            assert!(
                size >= 5 << 20,
                "part {index}: {size} is under S3's 5 MiB minimum"
            );
            assert!(
                size <= MAX_PART,
                "part {index}: {size} is over S3's 5 GiB maximum"
            );
        }
    }

    #[test]
    fn parts_start_small_and_grow_only_on_huge_dumps() {
        assert_eq!(part_size(0), 8 << 20);
        assert_eq!(part_size(PARTS_PER_STEP - 1), 8 << 20);
        assert_eq!(part_size(PARTS_PER_STEP), 16 << 20);
        assert_eq!(part_size(MAX_PARTS - 1), 4 << 30);
        assert!(part_size(usize::MAX) <= MAX_PART);
        // Up to 8,000 MiB, 8 MiB parts: within the 64 MiB dbflow may use.
        assert_eq!(capacity(PARTS_PER_STEP), 8000 * MIB);
        assert_eq!(in_flight(part_size(0)) as u128 * 8 * MIB, 32 * MIB);
        assert_eq!(in_flight(part_size(MAX_PARTS - 1)), 1);
        // Sizes never shrink.
        for index in 1..MAX_PARTS * 2 {
            assert!(part_size(index) >= part_size(index - 1));
        }
    }
}

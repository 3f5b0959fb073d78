//! A segment's alerts (or deliveries) by alert id: in memory while the segment is written, then
//! a section of its index file, searched where it lies. A million alerts kept for the console
//! thus cost no memory; looking one up costs a few reads of 16 bytes (from the page cache, as a
//! rule: the worker reads the alerts of a segment one after the other).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::io_error;
use crate::store::StoreError;

/// One record of the table: the alert id, where the record is in the segment, and a number kept
/// with it (an alert's reception, in seconds; 0 for a delivery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IdEntry {
    pub id: u64,
    pub offset: u32,
    pub extra: u32,
}

pub(super) const ENTRY_BYTES: usize = 16;

impl IdEntry {
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.extra.to_le_bytes());
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<IdEntry> {
        Some(IdEntry {
            id: u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?),
            offset: u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?),
            extra: u32::from_le_bytes(bytes.get(12..16)?.try_into().ok()?),
        })
    }
}

/// Where a table lies in an index file, and what is known of it without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Section {
    pub at: u64,
    pub count: u32,
    pub min_id: u64,
    pub max_id: u64,
    pub min_extra: u32,
}

impl Section {
    /// The section of `count` entries starting at `at` in `bytes` (the whole index file).
    pub(super) fn of(bytes: &[u8], at: usize, count: usize) -> Option<Section> {
        let entries = bytes.get(at..at + count * ENTRY_BYTES)?;
        let mut min_extra = u32::MAX;
        let (mut min_id, mut max_id) = (u64::MAX, 0);
        for chunk in entries.chunks_exact(ENTRY_BYTES) {
            let entry = IdEntry::decode(chunk)?;
            min_extra = min_extra.min(entry.extra);
            min_id = min_id.min(entry.id);
            max_id = max_id.max(entry.id);
        }
        Some(Section {
            at: at as u64,
            count: count as u32,
            min_id,
            max_id,
            min_extra,
        })
    }
}

pub(super) enum IdTable {
    /// Sorted by id.
    Memory(Vec<IdEntry>),
    Disk {
        file: Arc<File>,
        section: Section,
    },
}

impl Default for IdTable {
    fn default() -> IdTable {
        IdTable::Memory(Vec::new())
    }
}

impl IdTable {
    /// Ids arrive nearly in order (taken just before they are written): this inserts near the end.
    pub(super) fn insert(&mut self, entry: IdEntry) {
        if let IdTable::Memory(entries) = self {
            let at = entries.partition_point(|other| other.id <= entry.id);
            entries.insert(at, entry);
        }
    }

    /// Removes `id` from a table in memory; whether it was there.
    pub(super) fn remove(&mut self, id: u64) -> bool {
        match self {
            IdTable::Memory(entries) => match entries.binary_search_by_key(&id, |e| e.id) {
                Ok(at) => {
                    entries.remove(at);
                    true
                }
                Err(_) => false,
            },
            IdTable::Disk { .. } => false,
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            IdTable::Memory(entries) => entries.len(),
            IdTable::Disk { section, .. } => section.count as usize,
        }
    }

    /// The smallest and largest id in the table (without reading it), if it holds any.
    pub(super) fn bounds(&self) -> Option<(u64, u64)> {
        match self {
            IdTable::Memory(entries) => Some((entries.first()?.id, entries.last()?.id)),
            IdTable::Disk { section, .. } => {
                (section.count > 0).then_some((section.min_id, section.max_id))
            }
        }
    }

    /// Whether `id` may be in the table (without reading it).
    pub(super) fn may_hold(&self, id: u64) -> bool {
        self.bounds()
            .is_some_and(|(min, max)| min <= id && id <= max)
    }

    /// The oldest `extra` (an alert's reception) in the table.
    pub(super) fn min_extra(&self) -> u32 {
        match self {
            IdTable::Memory(entries) => entries.iter().map(|e| e.extra).min().unwrap_or(u32::MAX),
            IdTable::Disk { section, .. } => section.min_extra,
        }
    }

    pub(super) fn get(&self, index: usize) -> Result<IdEntry, StoreError> {
        match self {
            IdTable::Memory(entries) => entries
                .get(index)
                .copied()
                .ok_or_else(|| StoreError::Backend("an index past the table".into())),
            IdTable::Disk { file, section } => {
                let mut bytes = [0u8; ENTRY_BYTES];
                let at = section.at + (index * ENTRY_BYTES) as u64;
                file.read_exact_at(&mut bytes, at).map_err(io_error)?;
                IdEntry::decode(&bytes)
                    .ok_or_else(|| StoreError::Backend("a damaged index entry".into()))
            }
        }
    }

    /// The first index whose id is not below `id` (`strictly_above`: above `id`).
    pub(super) fn search(&self, id: u64, strictly_above: bool) -> Result<usize, StoreError> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = (low + high) / 2;
            let found = self.get(middle)?.id;
            let before = if strictly_above {
                found <= id
            } else {
                found < id
            };
            if before {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(low)
    }

    /// The entries of `id`.
    pub(super) fn entries_of(&self, id: u64) -> Result<Vec<IdEntry>, StoreError> {
        if !self.may_hold(id) {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        let mut index = self.search(id, false)?;
        while index < self.len() {
            let entry = self.get(index)?;
            if entry.id != id {
                break;
            }
            found.push(entry);
            index += 1;
        }
        Ok(found)
    }

    /// Every entry, read at once.
    pub(super) fn all(&self) -> Result<Vec<IdEntry>, StoreError> {
        match self {
            IdTable::Memory(entries) => Ok(entries.clone()),
            IdTable::Disk { file, section } => {
                let mut bytes = vec![0u8; section.count as usize * ENTRY_BYTES];
                file.read_exact_at(&mut bytes, section.at)
                    .map_err(io_error)?;
                Ok(bytes
                    .chunks_exact(ENTRY_BYTES)
                    .filter_map(IdEntry::decode)
                    .collect())
            }
        }
    }

    /// The entries of a table in memory (none for one on disk).
    pub(super) fn in_memory(&self) -> &[IdEntry] {
        match self {
            IdTable::Memory(entries) => entries,
            IdTable::Disk { .. } => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_on_disk_answers_as_the_same_table_in_memory() {
        let mut memory = IdTable::default();
        for (id, offset) in [(5, 0), (3, 10), (9, 20), (5, 30), (7, 40)] {
            memory.insert(IdEntry {
                id,
                offset,
                extra: id as u32 * 100,
            });
        }
        let mut bytes = b"some header".to_vec();
        let at = bytes.len();
        for entry in memory.in_memory() {
            entry.encode(&mut bytes);
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &bytes).unwrap();
        let section = Section::of(&bytes, at, 5).unwrap();
        assert_eq!(
            (section.min_id, section.max_id, section.min_extra),
            (3, 9, 300)
        );
        let disk = IdTable::Disk {
            file: Arc::new(File::open(file.path()).unwrap()),
            section,
        };
        for table in [&memory, &disk] {
            let offsets = |id| -> Vec<u32> {
                table
                    .entries_of(id)
                    .unwrap()
                    .iter()
                    .map(|e| e.offset)
                    .collect()
            };
            assert_eq!(offsets(5), [0, 30]);
            assert_eq!(offsets(9), [20]);
            assert!(offsets(4).is_empty() && offsets(10).is_empty());
            assert_eq!(table.search(5, true).unwrap(), 3);
            assert_eq!(table.search(5, false).unwrap(), 1);
            assert_eq!(table.all().unwrap().len(), 5);
        }
    }
}

//! The bytes of the spool: how a record is framed in a segment file, what each kind of record
//! holds, and the index file written beside a sealed segment.
//!
//! A record is `body length (u32 LE) · CRC-32 of the body (u32 LE) · body`; the body's first byte
//! says its kind:
//!
//! | kind | body after the kind byte |
//! |------|--------------------------|
//! | `A` alert | alert id u64 BE, received at ms u64 BE, the alert record (`store/alert_record.rs`) |
//! | `J` queued job | the [`DeliveryJob`] as JSON (never attempted, due when queued) |
//! | `C` dedupe claim | first 16 bytes of SHA-256 of the key, alert id u64 BE, claimed at ms u64 BE, kept for ms u64 BE |
//! | `R` claim released | the 16 bytes of the claim's hash (its callback was not stored) |
//! | `D` delivery | the delivered [`DeliveryJob`] as JSON, attempts included |
//! | `X` alert forgotten | alert id u64 BE (past the retention; its segment is kept for others) |
//!
//! A segment is read from its start and ends at the first record that is short or fails its CRC:
//! after a crash, what follows a torn write is not trusted.
//!
//! The index file (`<segment>.index`) lists where each record of a sealed segment is, so that
//! opening the store reads a few bytes per record instead of every payload: the jobs, claims and
//! undoing records one by one, then the alerts and the deliveries as two tables sorted by alert
//! id, which are searched where they lie (`ids.rs`). It is written once the segment is on disk,
//! is checked by its own CRC, and is rebuilt from the segment when missing or damaged.

use std::io::Read;

use super::super::keys::DedupeClaim;
use super::ids::{IdEntry, Section, ENTRY_BYTES};
use crate::job::{AlertId, DeliveryJob, JobId};

pub(super) const FRAME_HEADER: usize = 8;
/// A record larger than this is damage, not data (a callback body is far smaller).
const MAX_BODY: u32 = 256 * 1024 * 1024;

pub(super) const ALERT: u8 = b'A';
pub(super) const JOB: u8 = b'J';
pub(super) const CLAIM: u8 = b'C';
pub(super) const RELEASE: u8 = b'R';
pub(super) const DELIVERY: u8 = b'D';
pub(super) const FORGET: u8 = b'X';
/// Where the alert record starts in an alert's body.
pub(super) const ALERT_RECORD_AT: usize = 17;

/// A claim's body: its kind, then what [`DedupeClaim`] holds.
pub(super) fn claim_body(claim: &DedupeClaim) -> Vec<u8> {
    let mut body = Vec::with_capacity(41);
    body.push(CLAIM);
    body.extend_from_slice(&claim.hash);
    body.extend_from_slice(&claim.alert_id.to_be_bytes());
    body.extend_from_slice(&claim.seen_ms.to_be_bytes());
    body.extend_from_slice(&claim.keep_ms.to_be_bytes());
    body
}

pub(super) fn parse_claim_body(body: &[u8]) -> Option<DedupeClaim> {
    if body.first() != Some(&CLAIM) || body.len() < 41 {
        return None;
    }
    Some(DedupeClaim {
        hash: body[1..17].try_into().ok()?,
        alert_id: u64_at(body, 17)?,
        seen_ms: u64_at(body, 25)?,
        keep_ms: u64_at(body, 33)?,
    })
}

pub(super) fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Appends `body` to `buffer`, framed.
pub(super) fn frame(buffer: &mut Vec<u8>, body: &[u8]) {
    buffer.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buffer.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    buffer.extend_from_slice(body);
}

/// The frame header at `header`: the body's length and CRC.
pub(super) fn frame_header(header: &[u8; FRAME_HEADER]) -> Option<(usize, u32)> {
    let length = u32::from_le_bytes(header[..4].try_into().ok()?);
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    // A body always begins with its kind: an empty one is zeros where no record was written.
    (length > 0 && length <= MAX_BODY).then_some((length as usize, crc))
}

/// What the index of a segment says about one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Entry {
    Alert { id: AlertId, received_ms: u64 },
    Job { target: String, id: JobId },
    Claim(DedupeClaim),
    Release([u8; 16]),
    Delivery(AlertId),
    Forget(AlertId),
}

/// The fields of a job that the index needs; the rest of its JSON is skipped.
#[derive(serde::Deserialize)]
struct JobHead {
    id: JobId,
    alert_id: AlertId,
    target: String,
}

impl Entry {
    /// The entry of a record, read from its body (`None`: not a record this herald knows).
    pub(super) fn of(body: &[u8]) -> Option<Entry> {
        let rest = body.get(1..)?;
        Some(match *body.first()? {
            ALERT => Entry::Alert {
                id: u64_at(rest, 0)?,
                received_ms: u64_at(rest, 8)?,
            },
            FORGET => Entry::Forget(u64_at(rest, 0)?),
            JOB => {
                let head: JobHead = serde_json::from_slice(rest).ok()?;
                Entry::Job {
                    target: head.target,
                    id: head.id,
                }
            }
            CLAIM => Entry::Claim(parse_claim_body(body)?),
            RELEASE => Entry::Release(rest.get(..16)?.try_into().ok()?),
            DELIVERY => Entry::Delivery(serde_json::from_slice::<JobHead>(rest).ok()?.alert_id),
            _ => return None,
        })
    }
}

pub(super) fn alert_body(id: AlertId, received_ms: u64, record: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(ALERT_RECORD_AT + record.len());
    body.push(ALERT);
    body.extend_from_slice(&id.to_be_bytes());
    body.extend_from_slice(&received_ms.to_be_bytes());
    body.extend_from_slice(record);
    body
}

pub(super) fn forget_body(id: AlertId) -> Vec<u8> {
    let mut body = Vec::with_capacity(9);
    body.push(FORGET);
    body.extend_from_slice(&id.to_be_bytes());
    body
}

pub(super) fn job_body(kind: u8, job: &DeliveryJob) -> Result<Vec<u8>, serde_json::Error> {
    // A new job's JSON is ~200 bytes: room for it at once, not grown a few bytes at a time.
    let mut body = Vec::with_capacity(256);
    body.push(kind);
    serde_json::to_writer(&mut body, job)?;
    Ok(body)
}

/// The job (queued or delivered) of a body [`job_body`] wrote.
pub(super) fn job_of(body: &[u8]) -> Result<DeliveryJob, serde_json::Error> {
    serde_json::from_slice(body.get(1..).unwrap_or_default())
}

pub(super) fn release_body(hash: &[u8; 16]) -> Vec<u8> {
    let mut body = Vec::with_capacity(17);
    body.push(RELEASE);
    body.extend_from_slice(hash);
    body
}

/// Every intact record of a segment, from its start: (offset, entry). Also returns where the
/// intact part ends (a torn tail after it is cut off when the segment is the one written last).
pub(super) fn scan(file: &std::fs::File) -> std::io::Result<(Vec<(u32, Entry)>, u64)> {
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut entries = Vec::new();
    let mut offset: u64 = 0;
    let mut body = Vec::new();
    loop {
        let mut header = [0u8; FRAME_HEADER];
        if read_fully(&mut reader, &mut header)? < FRAME_HEADER {
            break;
        }
        let Some((length, crc)) = frame_header(&header) else {
            break;
        };
        body.resize(length, 0);
        if read_fully(&mut reader, &mut body)? < length || crc32fast::hash(&body) != crc {
            break;
        }
        if let Some(entry) = Entry::of(&body) {
            entries.push((offset as u32, entry));
        }
        offset += (FRAME_HEADER + length) as u64;
    }
    Ok((entries, offset))
}

/// Reads until `buffer` is full or the file ends; how many bytes were read.
fn read_fully(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

const INDEX_MAGIC: &[u8; 8] = b"HERALDI2";

/// An index file, read.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Index {
    /// The records other than alerts and deliveries.
    pub others: Vec<(u32, Entry)>,
    pub segment_length: u64,
    pub alerts: Section,
    pub deliveries: Section,
}

/// The alerts and deliveries of `entries` as id tables (sorted), and the rest.
pub(super) fn split_entries(
    entries: Vec<(u32, Entry)>,
) -> (Vec<(u32, Entry)>, Vec<IdEntry>, Vec<IdEntry>) {
    let (mut others, mut alerts, mut deliveries) = (Vec::new(), Vec::new(), Vec::new());
    for (offset, entry) in entries {
        match entry {
            Entry::Alert { id, received_ms } => alerts.push(IdEntry {
                id,
                offset,
                extra: received_seconds(received_ms),
            }),
            Entry::Delivery(id) => deliveries.push(IdEntry {
                id,
                offset,
                extra: 0,
            }),
            entry => others.push((offset, entry)),
        }
    }
    alerts.sort_by_key(|entry| (entry.id, entry.offset));
    deliveries.sort_by_key(|entry| (entry.id, entry.offset));
    (others, alerts, deliveries)
}

pub(super) fn received_seconds(received_ms: u64) -> u32 {
    (received_ms / 1000).min(u64::from(u32::MAX)) as u32
}

/// The index file of a sealed segment: its records other than alerts and deliveries, the two
/// sorted tables, and how long the segment is; then a CRC.
pub(super) fn encode_index(
    others: &[(u32, Entry)],
    alerts: &[IdEntry],
    deliveries: &[IdEntry],
    segment_length: u64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        32 + others.len() * 24 + (alerts.len() + deliveries.len()) * ENTRY_BYTES,
    );
    out.extend_from_slice(INDEX_MAGIC);
    out.extend_from_slice(&segment_length.to_le_bytes());
    let others: Vec<&(u32, Entry)> = others
        .iter()
        .filter(|(_, entry)| !matches!(entry, Entry::Alert { .. } | Entry::Delivery(_)))
        .collect();
    out.extend_from_slice(&(others.len() as u32).to_le_bytes());
    for (offset, entry) in others {
        out.extend_from_slice(&offset.to_le_bytes());
        match entry {
            Entry::Forget(id) => {
                out.push(FORGET);
                out.extend_from_slice(&id.to_le_bytes());
            }
            Entry::Job { target, id } => {
                out.push(JOB);
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&(target.len() as u16).to_le_bytes());
                out.extend_from_slice(target.as_bytes());
            }
            Entry::Claim(claim) => out.extend_from_slice(&claim_body(claim)),
            Entry::Release(hash) => {
                out.push(RELEASE);
                out.extend_from_slice(hash);
            }
            Entry::Alert { .. } | Entry::Delivery(_) => {}
        }
    }
    for table in [alerts, deliveries] {
        out.extend_from_slice(&(table.len() as u32).to_le_bytes());
        for entry in table {
            entry.encode(&mut out);
        }
    }
    out.extend_from_slice(&crc32fast::hash(&out).to_le_bytes());
    out
}

/// An index file, if it is intact.
pub(super) fn decode_index(bytes: &[u8]) -> Option<Index> {
    let (content, crc) = bytes.split_at(bytes.len().checked_sub(4)?);
    if crc32fast::hash(content).to_le_bytes() != crc || !content.starts_with(INDEX_MAGIC) {
        return None;
    }
    let segment_length = u64::from_le_bytes(content.get(8..16)?.try_into().ok()?);
    let count = u32::from_le_bytes(content.get(16..20)?.try_into().ok()?) as usize;
    let mut others = Vec::with_capacity(count);
    let mut at = 20;
    let le_u64 = |at: usize| {
        Some(u64::from_le_bytes(
            content.get(at..at + 8)?.try_into().ok()?,
        ))
    };
    let le_u32 = |at: usize| {
        Some(u32::from_le_bytes(
            content.get(at..at + 4)?.try_into().ok()?,
        ))
    };
    for _ in 0..count {
        let offset = le_u32(at)?;
        let kind = *content.get(at + 4)?;
        at += 5;
        let entry = match kind {
            FORGET => {
                at += 8;
                Entry::Forget(le_u64(at - 8)?)
            }
            JOB => {
                let id = le_u64(at)?;
                let name_length =
                    u16::from_le_bytes(content.get(at + 8..at + 10)?.try_into().ok()?) as usize;
                let target = std::str::from_utf8(content.get(at + 10..at + 10 + name_length)?)
                    .ok()?
                    .to_string();
                at += 10 + name_length;
                Entry::Job { target, id }
            }
            CLAIM => {
                let claim = parse_claim_body(content.get(at - 1..at + 40)?)?;
                at += 40;
                Entry::Claim(claim)
            }
            RELEASE => {
                let hash = content.get(at..at + 16)?.try_into().ok()?;
                at += 16;
                Entry::Release(hash)
            }
            _ => return None,
        };
        others.push((offset, entry));
    }
    let alerts_count = le_u32(at)? as usize;
    let alerts = Section::of(content, at + 4, alerts_count)?;
    at += 4 + alerts_count * ENTRY_BYTES;
    let deliveries_count = le_u32(at)? as usize;
    let deliveries = Section::of(content, at + 4, deliveries_count)?;
    if at + 4 + deliveries_count * ENTRY_BYTES != content.len() {
        return None;
    }
    Some(Index {
        others,
        segment_length,
        alerts,
        deliveries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_is_read_up_to_its_first_damaged_record() {
        let mut bytes = Vec::new();
        frame(&mut bytes, &alert_body(1, 10, b"first"));
        let second = bytes.len();
        frame(&mut bytes, &alert_body(2, 20, b"second"));
        let third = bytes.len();
        frame(&mut bytes, &alert_body(3, 30, b"third"));
        let path = tempfile::NamedTempFile::new().unwrap();
        let scanned = |bytes: &[u8]| {
            std::fs::write(path.path(), bytes).unwrap();
            scan(&std::fs::File::open(path.path()).unwrap()).unwrap()
        };
        let (entries, end) = scanned(&bytes);
        let alert = |id, received_ms| Entry::Alert { id, received_ms };
        let expected = vec![
            (0, alert(1, 10)),
            (second as u32, alert(2, 20)),
            (third as u32, alert(3, 30)),
        ];
        assert_eq!(entries, expected);
        assert_eq!(end, bytes.len() as u64);
        let first_only = (vec![(0, alert(1, 10))], second as u64);
        assert_eq!(
            scanned(&bytes[..second + 5]),
            first_only,
            "torn in a header"
        );
        assert_eq!(
            scanned(&bytes[..bytes.len() - 1]).1,
            third as u64,
            "torn in a body"
        );
        bytes[second + 12] ^= 1;
        assert_eq!(scanned(&bytes), first_only, "damaged");
    }

    #[test]
    fn an_index_reads_back_what_was_written() {
        let claim = DedupeClaim {
            hash: [7; 16],
            alert_id: 9,
            seen_ms: 1_700_000_000_000,
            keep_ms: 3_600_000,
        };
        let entries = vec![
            (
                0,
                Entry::Alert {
                    id: 5,
                    received_ms: 1_700_000_000_000,
                },
            ),
            (
                40,
                Entry::Job {
                    target: "ops-group".into(),
                    id: 6,
                },
            ),
            (90, Entry::Claim(claim)),
            (140, Entry::Release([7; 16])),
            (160, Entry::Delivery(5)),
            (200, Entry::Forget(5)),
            (
                220,
                Entry::Alert {
                    id: 4,
                    received_ms: 1_600_000_000_000,
                },
            ),
        ];
        let (others, alerts, deliveries) = split_entries(entries);
        assert_eq!(alerts.iter().map(|a| a.id).collect::<Vec<_>>(), [4, 5]);
        let bytes = encode_index(&others, &alerts, &deliveries, 300);
        let index = decode_index(&bytes).unwrap();
        assert_eq!(index.others, others);
        assert_eq!(index.segment_length, 300);
        assert_eq!(
            (index.alerts.count, index.alerts.min_id, index.alerts.max_id),
            (2, 4, 5)
        );
        assert_eq!(index.alerts.min_extra, 1_600_000_000);
        assert_eq!((index.deliveries.count, index.deliveries.min_id), (1, 5));
        let mut damaged = bytes.clone();
        damaged[30] ^= 1;
        assert_eq!(decode_index(&damaged), None);
    }
}

//! The spool: where the embedded backend keeps what comes in by the million (alerts, the jobs
//! queued for them, dedupe claims, the record of each delivery), appended to segment files beside
//! sled's folder instead of written into sled's trees.
//!
//! Why not sled: sled 0.34 keeps memory for every page it has touched whatever its cache is set
//! to (a million queued jobs took 60–100 MiB, a million alerts more), and reads its whole page
//! table on open (seconds for a big store). The spool keeps in memory only small fixed-size
//! entries: 8 bytes per queued job (its place, `queue.rs`) and 11–13 per dedupe claim still
//! remembered (32 bits of its hash, its place, a byte of its segment's filter and 2–4 of the filter
//! in front of all sealed segments, `claim_table.rs`). Alerts and deliveries are found through
//! tables in the index files (`ids.rs`); everything else is read from the segments when it is
//! needed.
//!
//! Writing: records are framed into a buffer and written to the segment being filled at every
//! [`Spool::sync_then`] (the group commit), which then makes them durable with one `fdatasync`
//! (into zeros written ahead, so that the file's size rarely changes: [`Writer::zeroed`]). A
//! segment is sealed when it reaches [`SEGMENT_BYTES`] or [`SEGMENT_RECORDS`]; once it is on disk
//! its index file is written beside it, so that opening reads indexes, not payloads. Segments go
//! as a whole, when nothing in them matters any more (`sweep`); an alert past the retention in a
//! segment that must stay is forgotten on its own (a record says so).
//!
//! What a record holds, and the index file: `format.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::keys::DedupeClaim;
use crate::job::{AlertId, DeliveryJob};
use crate::store::StoreError;

mod claim_table;
mod format;
mod ids;
mod queue;
#[cfg(test)]
mod tests;

pub(super) use claim_table::TakePrefix;
use claim_table::{SealedClaims, SealedFilter};
use format::{Entry, FRAME_HEADER};
use ids::{IdEntry, IdTable};
pub(super) use queue::Cursor;
use queue::Queue;

/// A segment is sealed once it holds this many bytes…
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// …or this many records (which bounds the claims kept in a map while their segment is written).
const SEGMENT_RECORDS: u32 = 1 << 16;

/// How far ahead of its records the segment being filled holds zeros (see [`Writer::zeroed`]).
const ZEROED_AHEAD: u64 = 1024 * 1024;

/// Where a record is: its segment in the high 32 bits, its offset in the low 32.
pub(super) type Position = u64;

fn position(segment: u32, offset: u32) -> Position {
    (u64::from(segment) << 32) | u64::from(offset)
}

fn segment_of(position: Position) -> u32 {
    (position >> 32) as u32
}

pub(super) struct Spool {
    dir: PathBuf,
    writer: Mutex<Writer>,
    /// A sync of the group commit and one of [`Spool::sync_now`] may be on their way at once: the
    /// group commit's is over once every sync that took records before it has ended.
    turns: Turns,
    /// Held by [`Spool::sync_now`]: its callers sync one at a time.
    sync_now_alone: Mutex<()>,
    state: RwLock<State>,
    alert_count: AtomicU64,
    /// A write or sync failed (a full disk): the store is opened again (`needs_reopening`),
    /// which reads the segments back as they are on disk.
    failed: AtomicBool,
}

/// The segment being filled, and what is buffered for it.
struct Writer {
    segment: u32,
    file: Arc<File>,
    /// The segment's handles for syncing it.
    sync_handles: Arc<SyncHandles>,
    /// Bytes of records in the file.
    length: u64,
    /// Up to where the file holds zeros after `length` (its size, unless writing them failed),
    /// written ahead through the page cache [`ZEROED_AHEAD`] at a time. A commit then writes into
    /// pages the page cache holds and leaves the file's size alone, so its `fdatasync` writes the
    /// data and flushes the disk's cache: two round trips to the disk instead of three with an
    /// append, whose new size must be written too (0.20–0.23 ms against 0.40 ms for 80 KiB on
    /// the development machine). That is the gain of a commit into zeros; the commit that writes
    /// the next megabyte of them pays for it (4.9 ms), and averaged over every commit, zeroing
    /// ahead measured level with appending on a new data folder (bench/RESULTS.md, sixth
    /// session). Kept: no slower on average, and the median commit is quicker (0.65–0.76 ms
    /// against 0.87–1.01 ms there).
    /// Zeros end a scan (`format::frame_header`): reopened, the segment is cut to its records.
    zeroed: u64,
    records: u32,
    buffer: Vec<u8>,
    /// Entries of the buffered records, by offset in the segment, and when each was received
    /// (ms: an alert's reception, a delivery's record; 0 for the rest).
    buffered: Vec<(u32, Entry, u64)>,
    /// The entries written to the segment, other than alerts and deliveries (kept in the
    /// segment's tables): its index file once sealed.
    written: Vec<(u32, Entry)>,
    /// Segments sealed since the last sync: made durable, then given their index file.
    sealed: Vec<(u32, Arc<SyncHandles>, Vec<u8>)>,
    /// Whether anything was written since the last sync took what there was.
    unsynced: bool,
    /// The turn of the last sync that took something: what is written is durable once it ends.
    last_turn: u64,
    /// The segment being filled was created since the last sync: the next one also syncs the
    /// folder, which holds its name (a file's own `fdatasync` makes its data durable, not
    /// necessarily the entry that finds it).
    created: bool,
}

#[derive(Default)]
struct State {
    segments: BTreeMap<u32, Segment>,
    queues: BTreeMap<String, Queue>,
    /// In front of the sealed segments' claim tables (built once when the spool is opened, then
    /// kept by [`State::sealed`] and [`State::refresh_sealed_filter`]).
    sealed_filter: SealedFilter,
}

/// What is kept in memory of one segment.
struct Segment {
    file: Arc<File>,
    alerts: IdTable,
    deliveries: IdTable,
    /// Alerts of a table on disk that are forgotten.
    forgotten: BTreeSet<AlertId>,
    claims: Claims,
    /// When its last remembered claim is forgotten (ms): its claim table can go then.
    claims_until_ms: u64,
    /// The newest alert's reception or delivery's record in it (ms): it is kept for the
    /// retention after that (from the file's time, once reopened).
    newest_ms: u64,
    /// Jobs of the segment still queued: it stays while there are any.
    live_jobs: u32,
    /// Segments holding records that this one's records undo (a forgotten alert, a released
    /// claim): it stays while they do, or what they hold would come back on the next start.
    undoes_in: BTreeSet<u32>,
}

/// The dedupe claims of a segment: by hash while it is written, then a table whose candidates
/// are checked against the record on disk (`claim_table.rs`).
enum Claims {
    Open(HashMap<[u8; 16], (DedupeClaim, u32), TakePrefix>),
    Sealed(SealedClaims),
}

impl Default for Claims {
    fn default() -> Claims {
        Claims::Open(HashMap::default())
    }
}

fn io_error(error: std::io::Error) -> StoreError {
    StoreError::Backend(Box::new(error))
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("{segment:08}.seg"))
}

fn index_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("{segment:08}.index"))
}

/// Removes a segment and its index file (either may be missing already).
fn remove_segment_files(dir: &Path, segment: u32) -> Result<(), StoreError> {
    for path in [segment_path(dir, segment), index_path(dir, segment)] {
        match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_error(error))
            }
            _ => {}
        }
    }
    Ok(())
}

/// A segment's handles for syncing it: one for the group commit's syncs and one for
/// [`Spool::sync_now`]'s, each opened with the segment, before anything is written to it.
///
/// Why two: Linux tells of a page the disk failed to write once per open file description, to the
/// first sync through it to look. A sweep's sync and a commit's, on their way at once through one
/// handle, could leave the one whose pages were lost succeeding while the other failed. Through a
/// handle of its own, each hears of every failure since that handle's last sync.
struct SyncHandles {
    commits: File,
    outside: File,
}

impl SyncHandles {
    fn open(path: &Path) -> Result<Arc<SyncHandles>, StoreError> {
        Ok(Arc::new(SyncHandles {
            commits: open_file(path)?,
            outside: open_file(path)?,
        }))
    }
}

/// The segment to fill next: its file (for writing and reading) and its handles for syncing.
fn create_segment(dir: &Path, number: u32) -> Result<(Arc<File>, Arc<SyncHandles>), StoreError> {
    let path = segment_path(dir, number);
    Ok((Arc::new(open_file(&path)?), SyncHandles::open(&path)?))
}

/// Which of a segment's [`SyncHandles`] a sync goes through.
type Through = fn(&SyncHandles) -> &File;

fn open_file(path: &Path) -> Result<File, StoreError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_error)
}

/// Which way [`Spool::next_alert`] walks.
#[derive(Clone, Copy)]
pub(super) enum Direction {
    Later,
    Earlier,
}

/// Records of a segment by offset, as its index lists them.
type Entries = Vec<(u32, Entry)>;

/// A sealed segment as kept in memory, and its entries other than alerts and deliveries: from its
/// index file, or, when that is missing or damaged, from the segment itself (a torn tail cut off,
/// the index file written anew). An empty segment (herald stopped before writing to it) is
/// removed: `None`.
fn load_segment(dir: &Path, number: u32) -> Result<Option<(Segment, Entries)>, StoreError> {
    let file = open_file(&segment_path(dir, number))?;
    let file_length = file.metadata().map_err(io_error)?.len();
    if file_length == 0 {
        drop(file);
        remove_segment_files(dir, number)?;
        return Ok(None);
    }
    let indexed = std::fs::read(index_path(dir, number))
        .ok()
        .and_then(|bytes| format::decode_index(&bytes))
        .filter(|index| index.segment_length == file_length);
    let index = match indexed {
        Some(index) => Ok(index),
        None => {
            let (entries, end) = format::scan(&file).map_err(io_error)?;
            // Only zeros after the records: those written ahead of them (`Writer::zeroed`).
            if end < file_length && !only_zeros(&file, end, file_length)? {
                tracing::warn!(
                    segment = %segment_path(dir, number).display(),
                    kept = end,
                    cut = file_length - end,
                    "the spool's segment ends in a torn or damaged record; what follows it is dropped"
                );
            }
            if end == 0 {
                // Nothing whole in it (zeros, or a first record torn): as if never written.
                drop(file);
                remove_segment_files(dir, number)?;
                return Ok(None);
            }
            if end < file_length {
                file.set_len(end).map_err(io_error)?;
            }
            file.sync_all().map_err(io_error)?;
            let (others, alerts, deliveries) = format::split_entries(entries);
            let bytes = format::encode_index(&others, &alerts, &deliveries, end);
            match write_index(dir, number, &bytes) {
                Ok(()) => format::decode_index(&bytes).ok_or((others, alerts, deliveries)),
                Err(error) => {
                    tracing::warn!(%error, segment = number, "cannot write a spool index file");
                    Err((others, alerts, deliveries))
                }
            }
        }
    };
    let modified = file
        .metadata()
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_millis() as u64);
    let mut segment = Segment::new(Arc::new(file), modified);
    let entries = match index {
        Ok(index) => {
            let index_file = File::open(index_path(dir, number)).map_err(io_error)?;
            segment.read_tables_from(Arc::new(index_file), &index);
            index.others
        }
        Err((others, alerts, deliveries)) => {
            segment.alerts = IdTable::Memory(alerts);
            segment.deliveries = IdTable::Memory(deliveries);
            others
        }
    };
    Ok(Some((segment, entries)))
}

/// Whether `file` holds only zeros from `start` to `end`.
fn only_zeros(file: &File, start: u64, end: u64) -> Result<bool, StoreError> {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut at = start;
    while at < end {
        let want = (end - at).min(chunk.len() as u64) as usize;
        let read = read_at_most(file, &mut chunk[..want], at)?;
        if read == 0 {
            break;
        }
        if chunk[..read].iter().any(|byte| *byte != 0) {
            return Ok(false);
        }
        at += read as u64;
    }
    Ok(true)
}

/// Writes a sealed segment's index file (through a temporary file: a torn one is never read).
fn write_index(dir: &Path, segment: u32, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = dir.join(format!("{segment:08}.index.tmp"));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, index_path(dir, segment))
}

impl Spool {
    /// Opens the spool in `dir` (created if missing). `cursors` says how far each target's
    /// queue was worked; a job before its target's cursor, or done ahead of it, is not queued.
    pub(super) fn open(dir: &Path, cursors: &HashMap<String, Cursor>) -> Result<Spool, StoreError> {
        std::fs::create_dir_all(dir).map_err(io_error)?;
        let mut numbers = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_error)? {
            let name = entry.map_err(io_error)?.file_name();
            let name = name.to_string_lossy();
            if let Some(number) = name
                .strip_suffix(".seg")
                .and_then(|n| n.parse::<u32>().ok())
            {
                numbers.push(number);
            }
        }
        numbers.sort_unstable();
        let mut state = State::default();
        let done: HashMap<&str, (Position, BTreeSet<Position>)> = cursors
            .iter()
            .map(|(target, cursor)| {
                let ahead = cursor.done_ahead.iter().copied().collect();
                (target.as_str(), (cursor.first_live, ahead))
            })
            .collect();
        let mut alert_count: u64 = 0;
        for &number in &numbers {
            let Some((segment, entries)) = load_segment(dir, number)? else {
                continue;
            };
            alert_count += segment.alerts.len() as u64;
            state.segments.insert(number, segment);
            for (offset, entry) in entries {
                let at = position(number, offset);
                if let Entry::Job { target, .. } = &entry {
                    let worked = done.get(target.as_str());
                    let is_done = worked
                        .is_some_and(|(first_live, ahead)| at < *first_live || ahead.contains(&at));
                    if is_done {
                        continue;
                    }
                }
                alert_count =
                    alert_count.saturating_add_signed(state.apply(number, offset, entry, 0));
            }
            if let Some(segment) = state.segments.get_mut(&number) {
                segment.seal();
            }
        }
        // Built once over every loaded segment: refreshed after each one, opening would sum the
        // claims of all the segments before it each time.
        state.sealed_filter = SealedFilter::over(state.sealed_tables());
        for (target, queue) in state.queues.iter_mut() {
            if let Some((first_live, _)) = done.get(target.as_str()) {
                queue.first_live = *first_live;
            }
        }
        // Past every place a cursor names too: were every segment gone, new jobs must still come
        // after what the cursors say is done.
        let cursors_reach = cursors
            .values()
            .flat_map(|cursor| std::iter::once(&cursor.first_live).chain(&cursor.done_ahead))
            .map(|at| segment_of(*at));
        let next = numbers
            .iter()
            .copied()
            .chain(cursors_reach)
            .max()
            .map_or(1, |last| last + 1);
        let (file, sync_handles) = create_segment(dir, next)?;
        state.segments.insert(next, Segment::new(file.clone(), 0));
        Ok(Spool {
            dir: dir.to_path_buf(),
            writer: Mutex::new(Writer {
                segment: next,
                file,
                sync_handles,
                length: 0,
                zeroed: 0,
                records: 0,
                buffer: Vec::new(),
                buffered: Vec::new(),
                written: Vec::new(),
                sealed: Vec::new(),
                unsynced: false,
                last_turn: 0,
                created: true,
            }),
            turns: Turns::default(),
            sync_now_alone: Mutex::new(()),
            state: RwLock::new(state),
            alert_count: AtomicU64::new(alert_count),
            failed: AtomicBool::new(false),
        })
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        lock(&self.writer)
    }

    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Buffers an alert record (durable after the next [`Spool::sync_then`]).
    pub(super) fn append_alert(
        &self,
        id: AlertId,
        received_ms: u64,
        record: &[u8],
    ) -> Result<(), StoreError> {
        let body = format::alert_body(id, received_ms, record);
        self.append(&body, Entry::Alert { id, received_ms }, received_ms, false)
    }

    /// Buffers a queued job (durable after the next [`Spool::sync_then`]).
    pub(super) fn append_job(&self, job: &DeliveryJob) -> Result<(), StoreError> {
        let entry = Entry::Job {
            target: job.target.clone(),
            id: job.id,
        };
        self.append(&format::job_body(format::JOB, job)?, entry, 0, false)
    }

    /// Buffers a dedupe claim (durable after the next [`Spool::sync_then`]).
    pub(super) fn append_claim(&self, claim: &DedupeClaim) -> Result<(), StoreError> {
        self.append(&format::claim_body(claim), Entry::Claim(*claim), 0, false)
    }

    /// Writes that a claim's callback was not stored: the claim no longer counts.
    pub(super) fn append_release(&self, hash: &[u8; 16]) -> Result<(), StoreError> {
        self.append(&format::release_body(hash), Entry::Release(*hash), 0, true)
    }

    /// Writes the record of a delivery (not synced: a lost one is only missing from the history).
    pub(super) fn append_delivery(&self, done: &DeliveryJob) -> Result<(), StoreError> {
        let body = format::job_body(format::DELIVERY, done)?;
        self.append(&body, Entry::Delivery(done.alert_id), now_ms(), true)
    }

    /// Buffers the record of a delivery as an older store kept it (its JSON), for alert `id`.
    pub(super) fn append_delivery_json(&self, id: AlertId, json: &[u8]) -> Result<(), StoreError> {
        let mut body = Vec::with_capacity(1 + json.len());
        body.push(format::DELIVERY);
        body.extend_from_slice(json);
        self.append(&body, Entry::Delivery(id), now_ms(), false)
    }

    fn append(
        &self,
        body: &[u8],
        entry: Entry,
        received_ms: u64,
        write_now: bool,
    ) -> Result<(), StoreError> {
        let mut writer = self.writer();
        let framed = (FRAME_HEADER + body.len()) as u64;
        let filled = writer.length + writer.buffer.len() as u64;
        if writer.records >= SEGMENT_RECORDS || (filled > 0 && filled + framed > SEGMENT_BYTES) {
            self.seal(&mut writer)?;
        }
        let offset = (writer.length + writer.buffer.len() as u64) as u32;
        format::frame(&mut writer.buffer, body);
        writer.buffered.push((offset, entry, received_ms));
        writer.records += 1;
        if write_now {
            self.write_buffer(&mut writer)?;
        }
        Ok(())
    }

    /// Writes the buffer to the segment and makes its records visible. On failure the segment is
    /// cut back to what it held, and the buffered records are dropped (their callbacks fail).
    fn write_buffer(&self, writer: &mut Writer) -> Result<(), StoreError> {
        if writer.buffer.is_empty() {
            return Ok(());
        }
        let buffered = std::mem::take(&mut writer.buffered);
        if let Err(error) = writer.file.write_all_at(&writer.buffer, writer.length) {
            self.failed.store(true, Ordering::SeqCst);
            writer.buffer.clear();
            writer.records -= buffered.len() as u32;
            let _ = writer.file.set_len(writer.length);
            writer.zeroed = writer.length;
            return Err(io_error(error));
        }
        writer.length += writer.buffer.len() as u64;
        writer.buffer.clear();
        writer.unsynced = true;
        let mut state = self.write_state();
        let segment_number = writer.segment;
        for (offset, entry, received_ms) in buffered {
            if !matches!(entry, Entry::Alert { .. } | Entry::Delivery(_)) {
                writer.written.push((offset, entry.clone()));
            }
            let change = state.apply(segment_number, offset, entry, received_ms);
            if change > 0 {
                self.alert_count.fetch_add(change as u64, Ordering::Relaxed);
            } else {
                self.alert_count
                    .fetch_sub(change.unsigned_abs(), Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Seals the segment being filled and starts the next one.
    fn seal(&self, writer: &mut Writer) -> Result<(), StoreError> {
        self.write_buffer(writer)?;
        // A sealed segment is as long as its records: its index says so, and is read only then.
        if let Err(error) = writer.file.set_len(writer.length) {
            self.failed.store(true, Ordering::SeqCst);
            return Err(io_error(error));
        }
        let next = writer.segment + 1;
        let (file, sync_handles) = create_segment(&self.dir, next)?;
        let others = std::mem::take(&mut writer.written);
        let mut state = self.write_state();
        state.sealed(writer.segment);
        let index = match state.segments.get(&writer.segment) {
            Some(segment) => {
                let (alerts, deliveries) =
                    (segment.alerts.in_memory(), segment.deliveries.in_memory());
                format::encode_index(&others, alerts, deliveries, writer.length)
            }
            None => format::encode_index(&others, &[], &[], writer.length),
        };
        writer.file = file.clone();
        let sealed_handles = std::mem::replace(&mut writer.sync_handles, sync_handles);
        writer.sealed.push((writer.segment, sealed_handles, index));
        state.segments.insert(next, Segment::new(file, 0));
        writer.segment = next;
        writer.length = 0;
        writer.zeroed = 0;
        writer.records = 0;
        writer.unsynced = true;
        writer.created = true;
        Ok(())
    }

    /// Writes what is buffered and makes every record written so far durable, then runs `then`
    /// on the same blocking thread (sled's flush: one hand-off for both, each costing a context
    /// switch or two on a busy core). Sealed segments get their index file once they are on disk.
    /// `then` runs only once this sync's records are durable. The call returns once the syncs
    /// that took records before this one (a sweep's, through [`Spool::sync_now`]) have ended too,
    /// or, with nothing left to take, once the one that took the last records has; it fails if
    /// any of them failed. Only the group commit calls it, one call at a time: its syncs share
    /// one handle of each segment.
    pub(super) async fn sync_then<F>(&self, then: F) -> Result<(), StoreError>
    where
        F: FnOnce() -> Result<(), StoreError> + Send + 'static,
    {
        let (turn, unsynced) = self.take_unsynced()?;
        let takes_its_turn = unsynced.is_some();
        let dir = self.dir.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let through: Through = |handles| &handles.commits;
            let synced = unsynced.map(|unsynced| unsynced.make_durable(&dir, through));
            match synced {
                // Its error is returned below, before `then`'s would be.
                Some(Err(_)) => (synced, Ok(())),
                _ => (synced, then()),
            }
        })
        .await;
        let (synced, then) = match joined {
            Ok(outcome) => outcome,
            Err(error) => {
                // The sync may not have happened.
                self.sync_failed(takes_its_turn.then_some(turn));
                return Err(StoreError::Backend(Box::new(error)));
            }
        };
        if let Some(synced) = synced {
            self.synced(turn, synced)?;
        }
        self.turns.until_over(turn).await;
        if self.failed() {
            return Err(StoreError::Backend(
                "a sync of the spool failed: the store must be opened again".into(),
            ));
        }
        then
    }

    /// [`Spool::sync_then`] for a caller outside the runtime (opening the store, the sweep), one
    /// at a time. It does not wait for a commit's sync on its way: what it needs durable is what
    /// it took.
    pub(super) fn sync_now(&self) -> Result<(), StoreError> {
        let _alone = lock(&self.sync_now_alone);
        let through: Through = |handles| &handles.outside;
        match self.take_unsynced()? {
            (turn, Some(unsynced)) => self.synced(turn, unsynced.make_durable(&self.dir, through)),
            (_, None) => Ok(()),
        }
    }

    /// Writes what is buffered and takes what a sync must make durable, with its turn; with
    /// nothing to take, the turn of the sync that took the last records.
    fn take_unsynced(&self) -> Result<(u64, Option<Unsynced>), StoreError> {
        let mut writer = self.writer();
        self.write_buffer(&mut writer)?;
        if zero_ahead(&mut writer).is_err() {
            // Zeros are only a speed-up: on a disk too full for them, records are appended.
            writer.zeroed = writer.length;
        }
        if !writer.unsynced {
            return Ok((writer.last_turn, None));
        }
        writer.unsynced = false;
        writer.last_turn += 1;
        Ok((
            writer.last_turn,
            Some(Unsynced {
                sync_handles: writer.sync_handles.clone(),
                sealed: std::mem::take(&mut writer.sealed),
                created: std::mem::take(&mut writer.created),
            }),
        ))
    }

    /// A sync failed, or may not have run: nothing written since the last good one can be taken as
    /// durable, and the store must be opened again. Ends `turn`, the sync's own if it took one,
    /// once the failure is known.
    fn sync_failed(&self, turn: Option<u64>) {
        self.failed.store(true, Ordering::SeqCst);
        {
            let mut writer = self.writer();
            writer.unsynced = true;
            writer.created = true;
        }
        if let Some(turn) = turn {
            self.turns.end(turn);
        }
    }

    /// After the sync of `turn`: the tables of segments whose index file is now written are read
    /// from it, and the turn ends (a failure is known before it does).
    fn synced(
        &self,
        turn: u64,
        outcome: std::io::Result<Vec<(u32, Vec<u8>)>>,
    ) -> Result<(), StoreError> {
        let indexed = match outcome {
            Ok(indexed) => indexed,
            Err(error) => {
                self.sync_failed(Some(turn));
                return Err(io_error(error));
            }
        };
        for (number, bytes) in indexed {
            let Some(index) = format::decode_index(&bytes) else {
                continue;
            };
            let Ok(file) = File::open(index_path(&self.dir, number)) else {
                continue;
            };
            let mut state = self.write_state();
            if let Some(segment) = state.segments.get_mut(&number) {
                // A table changed since it was written out (an alert forgotten) stays in memory.
                if segment.alerts.len() == index.alerts.count as usize
                    && segment.deliveries.len() == index.deliveries.count as usize
                {
                    segment.read_tables_from(Arc::new(file), &index);
                }
            }
        }
        self.turns.end(turn);
        Ok(())
    }

    /// From now on every write to the segment being filled fails, as on a full disk: its file is
    /// swapped for a handle opened read-only.
    #[cfg(test)]
    pub(super) fn fail_writes(&self) {
        let mut writer = self.writer();
        let path = segment_path(&self.dir, writer.segment);
        writer.file = Arc::new(File::open(path).unwrap());
    }

    /// From now on every sync of the segment being filled fails: its file and its handles for
    /// syncing are swapped for `/dev/null`, which takes writes and refuses `fdatasync`.
    #[cfg(test)]
    pub(super) fn fail_syncs(&self) {
        let null = || {
            let null = std::fs::OpenOptions::new().write(true).open("/dev/null");
            null.unwrap()
        };
        let mut writer = self.writer();
        writer.file = Arc::new(null());
        writer.sync_handles = Arc::new(SyncHandles {
            commits: null(),
            outside: null(),
        });
    }

    /// Whether every record appended so far has been handed to a sync.
    #[cfg(test)]
    pub(super) fn nothing_buffered(&self) -> bool {
        self.writer().buffer.is_empty()
    }

    /// Whether a write or a sync failed since the spool was opened.
    pub(super) fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Bytes of the spool's segments.
    pub(super) fn size_on_disk(&self) -> u64 {
        self.read_state()
            .segments
            .values()
            .filter_map(|segment| segment.file.metadata().ok())
            .map(|meta| meta.len())
            .sum()
    }

    /// The body of the record at `at`.
    fn read(&self, file: &File, at: Position) -> Result<Vec<u8>, StoreError> {
        let offset = u64::from(at as u32);
        // Most records (a job, an alert) fit in one read.
        let mut bytes = vec![0u8; 4096];
        let read = read_at_most(file, &mut bytes, offset)?;
        bytes.truncate(read);
        let header: [u8; FRAME_HEADER] = bytes
            .get(..FRAME_HEADER)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| damaged(at))?;
        let (length, crc) = format::frame_header(&header).ok_or_else(|| damaged(at))?;
        if bytes.len() < FRAME_HEADER + length {
            bytes.resize(FRAME_HEADER + length, 0);
            let more = read_at_most(file, &mut bytes[read..], offset + read as u64)?;
            if read + more < FRAME_HEADER + length {
                return Err(damaged(at));
            }
        }
        let body = bytes[FRAME_HEADER..FRAME_HEADER + length].to_vec();
        if crc32fast::hash(&body) != crc {
            return Err(damaged(at));
        }
        Ok(body)
    }

    fn read_in(&self, state: &State, at: Position) -> Result<Vec<u8>, StoreError> {
        let segment = state
            .segments
            .get(&segment_of(at))
            .ok_or_else(|| damaged(at))?;
        self.read(&segment.file, at)
    }

    /// The alert record of `id` (without its id), if the spool holds it.
    pub(super) fn alert(&self, id: AlertId) -> Result<Option<Vec<u8>>, StoreError> {
        let state = self.read_state();
        for (number, segment) in state.segments.iter().rev() {
            let Some(offset) = segment.alert_offset(id)? else {
                continue;
            };
            let at = position(*number, offset);
            let (_, record) = alert_record(&self.read(&segment.file, at)?, at)?;
            return Ok(Some(record));
        }
        Ok(None)
    }

    /// The alert next to `from` in id order (`Later`: the smallest id above it, `Earlier`: the
    /// largest below it; from either end when `None`), and its place: alerts one by one, without
    /// a list of them all.
    pub(super) fn next_alert(
        &self,
        from: Option<AlertId>,
        direction: Direction,
    ) -> Result<Option<(AlertId, Position)>, StoreError> {
        let state = self.read_state();
        let mut next: Option<(AlertId, Position)> = None;
        // Newest segments first when walking back (oldest first when walking on): the best is
        // found early, and a segment whose ids cannot beat it is passed over without a read.
        let segments: Box<dyn Iterator<Item = (&u32, &Segment)>> = match direction {
            Direction::Later => Box::new(state.segments.iter()),
            Direction::Earlier => Box::new(state.segments.iter().rev()),
        };
        for (number, segment) in segments {
            let Some((min, max)) = segment.alerts.bounds() else {
                continue;
            };
            let (beyond_from, cannot_beat) = match direction {
                Direction::Later => (
                    from.is_some_and(|from| max <= from),
                    next.is_some_and(|(best, _)| min >= best),
                ),
                Direction::Earlier => (
                    from.is_some_and(|from| min >= from),
                    next.is_some_and(|(best, _)| max <= best),
                ),
            };
            if beyond_from || cannot_beat {
                continue;
            }
            let found = match direction {
                Direction::Later => segment.alert_after(from)?,
                Direction::Earlier => segment.alert_before(from)?,
            };
            let Some(entry) = found else { continue };
            let closer = next.is_none_or(|(best, _)| match direction {
                Direction::Later => entry.id < best,
                Direction::Earlier => entry.id > best,
            });
            if closer {
                next = Some((entry.id, position(*number, entry.offset)));
            }
        }
        Ok(next)
    }

    /// The alert record at `at` (as [`Spool::next_alert`] gave it).
    pub(super) fn alert_at(&self, at: Position) -> Result<(AlertId, Vec<u8>), StoreError> {
        alert_record(&self.read_in(&self.read_state(), at)?, at)
    }

    pub(super) fn alert_count(&self) -> u64 {
        self.alert_count.load(Ordering::Relaxed)
    }

    /// The delivery records of alert `id`.
    pub(super) fn deliveries_of(&self, id: AlertId) -> Result<Vec<DeliveryJob>, StoreError> {
        let state = self.read_state();
        let mut found = Vec::new();
        for (number, segment) in &state.segments {
            for entry in segment.deliveries.entries_of(id)? {
                let body = self.read(&segment.file, position(*number, entry.offset))?;
                found.push(format::job_of(&body)?);
            }
        }
        Ok(found)
    }

    /// The newest claim of `hash` in the spool.
    pub(super) fn claim(&self, hash: &[u8; 16]) -> Result<Option<DedupeClaim>, StoreError> {
        let state = self.read_state();
        let maybe_sealed = state.sealed_filter.may_hold(hash);
        for (number, segment) in state.segments.iter().rev() {
            match &segment.claims {
                Claims::Open(claims) => {
                    if let Some((claim, _)) = claims.get(hash) {
                        return Ok(Some(*claim));
                    }
                }
                // Only the segment being filled, the newest, is open: none is left to ask.
                Claims::Sealed(_) if !maybe_sealed => break,
                Claims::Sealed(table) => {
                    for entry in table.candidates(hash).iter().rev() {
                        let body = self.read(&segment.file, position(*number, *entry as u32))?;
                        if let Some(claim) =
                            format::parse_claim_body(&body).filter(|c| c.hash == *hash)
                        {
                            return Ok(Some(claim));
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// Seals the segment being filled (so that what it holds can go too), drops the claim tables
    /// of segments whose claims are all forgotten at `now_ms`, and removes the segments that hold
    /// nothing needed: no queued job (nor one in the next segment, which may need an alert of
    /// this one), no claim remembered, nothing received after `kept_after_ms`, no alert for which
    /// `alert_needed` says so (a job due later or a dead letter refers to it), and no alert it
    /// forgot still in another segment. In a segment that stays, the alerts past the retention
    /// are forgotten one by one.
    pub(super) fn sweep(
        &self,
        now_ms: u64,
        kept_after_ms: u64,
        alert_needed: &dyn Fn(AlertId) -> bool,
    ) -> Result<SpoolSweep, StoreError> {
        let active = {
            let mut writer = self.writer();
            if writer.records > 0 {
                self.seal(&mut writer)?;
            }
            writer.segment
        };
        self.sync_now()?;
        let mut removed = Vec::new();
        let mut forgotten = Vec::new();
        let mut swept = SpoolSweep::default();
        {
            let mut state = self.write_state();
            let jobs_follow: BTreeSet<u32> = state
                .segments
                .iter()
                .filter(|(_, segment)| segment.live_jobs > 0)
                .map(|(number, _)| number.saturating_sub(1))
                .collect();
            let present: BTreeSet<u32> = state.segments.keys().copied().collect();
            let kept_after_s = (kept_after_ms / 1000).min(u64::from(u32::MAX)) as u32;
            for (number, segment) in state.segments.iter_mut() {
                if *number == active {
                    continue;
                }
                let claims_forgotten = segment.claims_until_ms <= now_ms;
                if claims_forgotten {
                    if let Claims::Sealed(table) = &segment.claims {
                        swept.claims += table.len() as u64;
                    }
                    segment.claims = Claims::Sealed(SealedClaims::default());
                }
                let jobs_done = segment.live_jobs == 0 && !jobs_follow.contains(number);
                if !jobs_done {
                    continue;
                }
                // Read only where an alert may be past the retention.
                let past: Vec<AlertId> = if segment.alerts.min_extra() <= kept_after_s {
                    segment
                        .alerts
                        .all()?
                        .into_iter()
                        .filter(|entry| {
                            entry.extra <= kept_after_s
                                && !segment.forgotten.contains(&entry.id)
                                && !alert_needed(entry.id)
                        })
                        .map(|entry| entry.id)
                        .collect()
                } else {
                    Vec::new()
                };
                let removable = claims_forgotten
                    && segment.newest_ms <= kept_after_ms
                    && past.len() == segment.alert_count()
                    && segment.undoes_in.is_disjoint(&present);
                if removable {
                    removed.push(*number);
                } else {
                    forgotten.extend(past);
                }
            }
            for number in &removed {
                if let Some(segment) = state.segments.remove(number) {
                    swept.alerts += segment.alert_count() as u64;
                }
            }
            state.refresh_sealed_filter();
        }
        self.alert_count.fetch_sub(swept.alerts, Ordering::Relaxed);
        // Alerts past the retention in segments that stay: forgotten one by one, for good (a
        // record says so; writing it takes them off the count).
        for id in forgotten {
            self.append(&format::forget_body(id), Entry::Forget(id), 0, true)?;
            swept.alerts += 1;
        }
        for number in removed {
            remove_segment_files(&self.dir, number)?;
        }
        Ok(swept)
    }
}

/// What a sweep of the spool forgot and removed.
#[derive(Debug, Default)]
pub(super) struct SpoolSweep {
    pub claims: u64,
    pub alerts: u64,
}

/// What a sync makes durable: the segment being filled, and those sealed since the last sync.
struct Unsynced {
    sync_handles: Arc<SyncHandles>,
    sealed: Vec<(u32, Arc<SyncHandles>, Vec<u8>)>,
    /// The segment being filled is new: the folder is synced too.
    created: bool,
}

impl Unsynced {
    /// Returns the index files written (segment and content).
    fn make_durable(self, dir: &Path, through: Through) -> std::io::Result<Vec<(u32, Vec<u8>)>> {
        for (_, sealed_handles, _) in &self.sealed {
            through(sealed_handles).sync_data()?;
        }
        through(&self.sync_handles).sync_data()?;
        if self.created {
            // Once a segment (which holds up to 64 MiB or 65,536 records; each start begins one).
            File::open(dir)?.sync_all()?;
        }
        let mut indexed = Vec::new();
        for (number, _, index) in self.sealed {
            match write_index(dir, number, &index) {
                Ok(()) => indexed.push((number, index)),
                // Only a cost in memory, and at the next start, which rebuilds it.
                Err(error) => {
                    tracing::warn!(%error, segment = number, "cannot write a spool index file")
                }
            }
        }
        Ok(indexed)
    }
}

/// Keeps zeros ahead of the records written, before a commit syncs them: when they run out, the
/// next [`ZEROED_AHEAD`] bytes are written as zeros, which this commit's `fdatasync` makes durable
/// with its records. (Only a commit does this: a segment being sealed, whose last records are
/// written by the seal, is cut to them right after.) A write that fails part way leaves some
/// zeros, which records overwrite.
fn zero_ahead(writer: &mut Writer) -> std::io::Result<()> {
    let end = writer.length;
    if end <= writer.zeroed {
        return Ok(());
    }
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let until = (end + ZEROED_AHEAD).next_multiple_of(4096);
    let mut at = end;
    while at < until {
        let step = (until - at).min(ZEROS.len() as u64) as usize;
        writer.file.write_all_at(&ZEROS[..step], at)?;
        at += step as u64;
    }
    writer.zeroed = until;
    Ok(())
}

/// Locks `mutex`; what each one guards is consistent between statements, so a panic while it was
/// held leaves nothing torn.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The turns of the syncs, in the order they took their records: turn `n` is over once every
/// sync up to `n` has ended (in whatever order they did).
#[derive(Default)]
struct Turns {
    /// The syncs that ended after one before them that has not.
    ended_early: Mutex<BTreeSet<u64>>,
    /// Every turn up to this one is over.
    over: tokio::sync::watch::Sender<u64>,
}

impl Turns {
    fn end(&self, turn: u64) {
        let mut ended_early = lock(&self.ended_early);
        ended_early.insert(turn);
        let mut over = *self.over.borrow();
        while ended_early.remove(&(over + 1)) {
            over += 1;
        }
        self.over.send_if_modified(|was| {
            let moved = *was != over;
            *was = over;
            moved
        });
    }

    async fn until_over(&self, turn: u64) {
        let mut over = self.over.subscribe();
        // The sender is `self`'s: it outlives the wait.
        let _ = over.wait_for(|over| *over >= turn).await;
    }
}

fn read_at_most(file: &File, buffer: &mut [u8], offset: u64) -> Result<usize, StoreError> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read_at(&mut buffer[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(io_error(error)),
        }
    }
    Ok(filled)
}

/// The id and the alert record of the alert body read at `at`.
fn alert_record(body: &[u8], at: Position) -> Result<(AlertId, Vec<u8>), StoreError> {
    let id = format::u64_at(body, 1).ok_or_else(|| damaged(at))?;
    let record = body
        .get(format::ALERT_RECORD_AT..)
        .ok_or_else(|| damaged(at))?;
    Ok((id, record.to_vec()))
}

fn damaged(at: Position) -> StoreError {
    StoreError::Backend(
        format!(
            "the spool's record at segment {} offset {} is missing or damaged",
            segment_of(at),
            at as u32
        )
        .into(),
    )
}

impl State {
    /// Segment `number` is complete: its claims become a sorted table, behind the filter.
    fn sealed(&mut self, number: u32) {
        let Some(segment) = self.segments.get_mut(&number) else {
            return;
        };
        segment.seal();
        if let Claims::Sealed(table) = &segment.claims {
            self.sealed_filter.add(table);
        }
        self.refresh_sealed_filter();
    }

    /// Builds the filter over the sealed claim tables anew when it has filled up or gone stale
    /// (claims forgotten by a sweep, or released). Amortised: each build has room for as many
    /// claims again as it holds.
    fn refresh_sealed_filter(&mut self) {
        let live = self.sealed_tables().map(SealedClaims::len).sum();
        if self.sealed_filter.needs_rebuilding(live) {
            self.sealed_filter = SealedFilter::over(self.sealed_tables());
        }
    }

    /// The claim tables of the sealed segments.
    fn sealed_tables(&self) -> impl Iterator<Item = &SealedClaims> + Clone {
        self.segments
            .values()
            .filter_map(|segment| match &segment.claims {
                Claims::Sealed(table) => Some(table),
                Claims::Open(_) => None,
            })
    }

    /// Takes the entry of a record at `offset` in segment `number` into what is kept in memory;
    /// returns how the count of alerts changes.
    fn apply(&mut self, number: u32, offset: u32, entry: Entry, received_ms: u64) -> i64 {
        let (undone, change): (Vec<u32>, i64) = match entry {
            // A claim's callback was not stored: its claim no longer counts, wherever it is.
            Entry::Release(hash) => {
                let segments = self.segments.iter_mut();
                let holders = segments.filter_map(|(holder, segment)| {
                    segment.release_claim(&hash).then_some(*holder)
                });
                (holders.collect(), 0)
            }
            Entry::Forget(id) => {
                let mut segments = self.segments.iter_mut().rev();
                let holder = segments
                    .find_map(|(holder, segment)| segment.forget_alert(id).then_some(*holder));
                (holder.into_iter().collect(), -i64::from(holder.is_some()))
            }
            entry => {
                let change = i64::from(matches!(entry, Entry::Alert { .. }));
                if let Some(segment) = self.segments.get_mut(&number) {
                    segment.newest_ms = segment.newest_ms.max(received_ms);
                    segment.add(&mut self.queues, position(number, offset), entry);
                }
                (Vec::new(), change)
            }
        };
        if let Some(segment) = self.segments.get_mut(&number) {
            segment
                .undoes_in
                .extend(undone.into_iter().filter(|holder| *holder != number));
        }
        change
    }
}

impl Segment {
    fn new(file: Arc<File>, newest_ms: u64) -> Segment {
        Segment {
            file,
            alerts: IdTable::default(),
            deliveries: IdTable::default(),
            forgotten: BTreeSet::new(),
            claims: Claims::default(),
            claims_until_ms: 0,
            newest_ms,
            live_jobs: 0,
            undoes_in: BTreeSet::new(),
        }
    }

    fn add(&mut self, queues: &mut BTreeMap<String, Queue>, at: Position, entry: Entry) {
        let offset = at as u32;
        match entry {
            Entry::Alert { id, received_ms } => self.alerts.insert(IdEntry {
                id,
                offset,
                extra: format::received_seconds(received_ms),
            }),
            Entry::Delivery(id) => self.deliveries.insert(IdEntry {
                id,
                offset,
                extra: 0,
            }),
            Entry::Job { target, .. } => {
                self.live_jobs += 1;
                queues.entry(target).or_default().positions.push_back(at);
            }
            Entry::Claim(claim) => {
                self.claims_until_ms = self
                    .claims_until_ms
                    .max(claim.seen_ms.saturating_add(claim.keep_ms));
                if let Claims::Open(claims) = &mut self.claims {
                    claims.insert(claim.hash, (claim, offset));
                }
            }
            Entry::Release(_) | Entry::Forget(_) => {}
        }
    }

    /// Forgets alert `id` if this segment holds it (and has not forgotten it).
    fn forget_alert(&mut self, id: AlertId) -> bool {
        if self.alerts.remove(id) {
            return true;
        }
        let held = matches!(self.alerts, IdTable::Disk { .. })
            && !self.forgotten.contains(&id)
            && self
                .alerts
                .entries_of(id)
                .is_ok_and(|found| !found.is_empty());
        held && self.forgotten.insert(id)
    }

    fn alert_count(&self) -> usize {
        self.alerts.len() - self.forgotten.len()
    }

    /// Where alert `id` is in this segment, unless it is not here or forgotten.
    fn alert_offset(&self, id: AlertId) -> Result<Option<u32>, StoreError> {
        if self.forgotten.contains(&id) {
            return Ok(None);
        }
        Ok(self
            .alerts
            .entries_of(id)?
            .first()
            .map(|entry| entry.offset))
    }

    /// This segment's alert with the smallest id above `after`.
    fn alert_after(&self, after: Option<AlertId>) -> Result<Option<IdEntry>, StoreError> {
        let mut index = match after {
            Some(after) => self.alerts.search(after, true)?,
            None => 0,
        };
        while index < self.alerts.len() {
            let entry = self.alerts.get(index)?;
            if !self.forgotten.contains(&entry.id) {
                return Ok(Some(entry));
            }
            index += 1;
        }
        Ok(None)
    }

    /// This segment's alert with the largest id below `before`.
    fn alert_before(&self, before: Option<AlertId>) -> Result<Option<IdEntry>, StoreError> {
        let mut end = match before {
            Some(before) => self.alerts.search(before, false)?,
            None => self.alerts.len(),
        };
        while end > 0 {
            let entry = self.alerts.get(end - 1)?;
            if !self.forgotten.contains(&entry.id) {
                return Ok(Some(entry));
            }
            end -= 1;
        }
        Ok(None)
    }

    /// The segment is complete: its claims become a sorted table.
    fn seal(&mut self) {
        if let Claims::Open(claims) = &self.claims {
            let claims = claims.iter().map(|(hash, (_, offset))| (*hash, *offset));
            self.claims = Claims::Sealed(SealedClaims::new(claims));
        }
        if let IdTable::Memory(entries) = &mut self.alerts {
            entries.shrink_to_fit();
        }
        if let IdTable::Memory(entries) = &mut self.deliveries {
            entries.shrink_to_fit();
        }
    }

    /// Its alerts and deliveries are from now on read from its index file.
    fn read_tables_from(&mut self, index_file: Arc<File>, index: &format::Index) {
        self.alerts = IdTable::Disk {
            file: index_file.clone(),
            section: index.alerts,
        };
        self.deliveries = IdTable::Disk {
            file: index_file,
            section: index.deliveries,
        };
    }

    /// Takes the claims of `hash` out of this segment; whether it held any.
    fn release_claim(&mut self, hash: &[u8; 16]) -> bool {
        match &mut self.claims {
            Claims::Open(claims) => claims.remove(hash).is_some(),
            Claims::Sealed(table) => table.release(hash),
        }
    }
}

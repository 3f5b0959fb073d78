//! Each target's queue in the spool: the places of its jobs, in the order they were written, and
//! how far it has been worked ([`Cursor`], saved by the store as the queue moves).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{format, segment_of, Position, Segment, Spool, State};
use crate::job::{DeliveryJob, JobId};
use crate::store::StoreError;

/// How far a target's queue in the spool has been worked: every job before `first_live` is
/// done, and so are the ones in `done_ahead` (finished while an earlier one was still out).
/// Saved by the store (in sled) as the queue moves; lost progress means jobs sent again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(in crate::store::sled) struct Cursor {
    pub first_live: Position,
    pub done_ahead: Vec<Position>,
}

impl Cursor {
    pub(in crate::store::sled) fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(8 * (1 + self.done_ahead.len()));
        bytes.extend_from_slice(&self.first_live.to_be_bytes());
        for done in &self.done_ahead {
            bytes.extend_from_slice(&done.to_be_bytes());
        }
        bytes
    }

    pub(in crate::store::sled) fn decode(bytes: &[u8]) -> Cursor {
        let mut numbers = bytes
            .chunks_exact(8)
            .map(|chunk| u64::from_be_bytes(chunk.try_into().unwrap_or_default()));
        Cursor {
            first_live: numbers.next().unwrap_or(0),
            done_ahead: numbers.collect(),
        }
    }
}

/// A target's queued jobs in the spool, in the order they were written.
#[derive(Default)]
pub(super) struct Queue {
    pub positions: VecDeque<Position>,
    done_ahead: BTreeSet<Position>,
    /// Where the queue was last worked to (kept when it is empty).
    pub first_live: Position,
}

impl Queue {
    fn cursor(&self) -> Cursor {
        Cursor {
            first_live: self.positions.front().copied().unwrap_or(self.first_live),
            done_ahead: self.done_ahead.iter().copied().collect(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.positions.len() - self.done_ahead.len()
    }
}

impl Spool {
    /// Up to `limit` queued jobs of `target` whose ids are not in `skip`, oldest first.
    pub(in crate::store::sled) fn head(
        &self,
        target: &str,
        limit: usize,
        skip: &dyn Fn(JobId) -> bool,
    ) -> Result<Vec<(Position, DeliveryJob)>, StoreError> {
        let state = self.read_state();
        let Some(queue) = state.queues.get(target) else {
            return Ok(Vec::new());
        };
        let mut head = Vec::new();
        for &at in &queue.positions {
            if head.len() >= limit {
                break;
            }
            if queue.done_ahead.contains(&at) {
                continue;
            }
            let job = format::job_of(&self.read_in(&state, at)?)?;
            if !skip(job.id) {
                head.push((at, job));
            }
        }
        Ok(head)
    }

    /// Every queued job of `target`, oldest first (read one by one).
    pub(in crate::store::sled) fn queued_positions(&self, target: Option<&str>) -> Vec<Position> {
        let state = self.read_state();
        let mut positions = Vec::new();
        for (name, queue) in &state.queues {
            if target.is_some_and(|target| target != name) {
                continue;
            }
            positions.extend(
                queue
                    .positions
                    .iter()
                    .filter(|at| !queue.done_ahead.contains(at)),
            );
        }
        positions
    }

    /// The queued job at `at`.
    pub(in crate::store::sled) fn job_at(&self, at: Position) -> Result<DeliveryJob, StoreError> {
        Ok(format::job_of(&self.read_in(&self.read_state(), at)?)?)
    }

    /// Takes the job at `at` off `target`'s queue; returns the cursor to save, or `None` when it
    /// was not queued (any more).
    pub(in crate::store::sled) fn take(&self, target: &str, at: Position) -> Option<Cursor> {
        let mut state = self.write_state();
        let State {
            segments, queues, ..
        } = &mut *state;
        let queue = queues.get_mut(target)?;
        if queue.positions.front() == Some(&at) {
            queue.positions.pop_front();
            while let Some(front) = queue.positions.front().copied() {
                if !queue.done_ahead.remove(&front) {
                    break;
                }
                queue.positions.pop_front();
                forget_job(segments, front);
            }
        } else if queue.positions.binary_search(&at).is_err() || !queue.done_ahead.insert(at) {
            return None;
        }
        forget_job(segments, at);
        queue.first_live = queue.first_live.max(at + 1);
        if queue.positions.capacity() > 4 * queue.positions.len() + 1024 {
            queue.positions.shrink_to_fit();
        }
        Some(queue.cursor())
    }

    /// Queued jobs per target.
    pub(in crate::store::sled) fn queued_per_target(&self) -> BTreeMap<String, u64> {
        self.read_state()
            .queues
            .iter()
            .filter(|(_, queue)| queue.len() > 0)
            .map(|(target, queue)| (target.clone(), queue.len() as u64))
            .collect()
    }
}

/// A job is done: its segment has one fewer queued.
fn forget_job(segments: &mut BTreeMap<u32, Segment>, at: Position) {
    if let Some(segment) = segments.get_mut(&segment_of(at)) {
        segment.live_jobs = segment.live_jobs.saturating_sub(1);
    }
}

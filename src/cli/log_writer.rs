//! A log writer that gathers lines and writes them from a thread of its own, a batch at a time.
//!
//! Writing each line as it comes (or waking a writer thread for each, as a channel does) costs a
//! context switch and a `write` per line: under a busy intake, one line per callback, that was a
//! tenth of herald's CPU. Here a line is appended to a shared buffer under a lock; the writer
//! thread, woken when the buffer stops being empty, lingers a few milliseconds so that the lines
//! that follow join the same `write`. A line thus reaches stderr at most [`LINGER`] late.
//!
//! Nothing is dropped: when the buffer holds [`MAX_PENDING`] bytes, callers wait for the thread to
//! take it. If stderr fails (a closed pipe), lines are discarded so that no caller ever waits on it.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the writer thread waits for more lines before writing what it has.
const LINGER: Duration = Duration::from_millis(10);
/// Written at once without lingering, to keep each write a reasonable size.
const EAGER_BYTES: usize = 64 * 1024;
/// Callers wait while this much is pending.
const MAX_PENDING: usize = 4 * 1024 * 1024;

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    closing: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// The buffer stopped being empty, grew past [`EAGER_BYTES`], or the writer is closing.
    filled: Condvar,
    /// The thread took the buffer.
    taken: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves bytes only; they are still worth writing.
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Where tracing writes: a handle on the shared buffer.
#[derive(Clone)]
pub(super) struct BatchedWriter {
    shared: Arc<Shared>,
}

/// Writes what is pending and stops the thread when dropped (at the end of `main`).
pub(super) struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the thread that writes to stderr.
pub(super) fn batched_stderr() -> (BatchedWriter, FlushGuard) {
    batched(std::io::stderr())
}

fn batched(mut out: impl Write + Send + 'static) -> (BatchedWriter, FlushGuard) {
    let shared = Arc::new(Shared::default());
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("log writer".into())
            .spawn(move || write_batches(&shared, &mut out))
    };
    // Without its thread nothing would take the buffer: lines are dropped rather than kept.
    let thread = thread
        .inspect_err(|error| {
            eprintln!("herald: cannot start the log writer ({error}); logs are dropped");
            shared.lock().closing = true;
        })
        .ok();
    let writer = BatchedWriter {
        shared: shared.clone(),
    };
    (writer, FlushGuard { shared, thread })
}

fn write_batches(shared: &Shared, out: &mut dyn Write) {
    let mut batch = Vec::new();
    let mut broken = false;
    loop {
        let closing = {
            let mut pending = shared.lock();
            while pending.bytes.is_empty() && !pending.closing {
                pending = shared
                    .filled
                    .wait(pending)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if pending.bytes.len() < EAGER_BYTES && !pending.closing {
                pending = shared
                    .filled
                    .wait_timeout(pending, LINGER)
                    .map(|(pending, _)| pending)
                    .unwrap_or_else(|poisoned| poisoned.into_inner().0);
            }
            std::mem::swap(&mut batch, &mut pending.bytes);
            pending.closing
        };
        shared.taken.notify_all();
        if !broken && !batch.is_empty() {
            broken = out.write_all(&batch).and_then(|()| out.flush()).is_err();
        }
        batch.clear();
        if closing && shared.lock().bytes.is_empty() {
            return;
        }
    }
}

impl BatchedWriter {
    fn append(&self, line: &[u8]) {
        let mut pending = self.shared.lock();
        while pending.bytes.len() >= MAX_PENDING && !pending.closing {
            pending = self
                .shared
                .taken
                .wait(pending)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        // Closed (`main` returned, or no thread) and full: nothing will take more.
        if pending.closing && pending.bytes.len() >= MAX_PENDING {
            return;
        }
        let was_empty = pending.bytes.is_empty();
        pending.bytes.extend_from_slice(line);
        let eager = pending.bytes.len() >= EAGER_BYTES;
        drop(pending);
        if was_empty || eager {
            self.shared.filled.notify_one();
        }
    }
}

impl Write for BatchedWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.append(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedWriter {
    type Writer = BatchedWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.filled.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read while the thread writes to it.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_in_order_and_the_guard_writes_the_rest() {
        let sink = Sink::default();
        let (writer, guard) = batched(sink.clone());
        let writers: Vec<_> = (0..4)
            .map(|thread| {
                let mut writer = writer.clone();
                std::thread::spawn(move || {
                    for line in 0..20_000 {
                        writer
                            .write_all(format!("{thread} {line}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        drop(guard);
        let written = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let mut next = [0; 4];
        for line in written.lines() {
            let (thread, number) = line.split_once(' ').unwrap();
            let thread: usize = thread.parse().unwrap();
            assert_eq!(number.parse::<usize>().unwrap(), next[thread], "{line}");
            next[thread] += 1;
        }
        assert_eq!(next, [20_000; 4]);
    }

    #[test]
    fn a_lone_line_is_written_without_waiting_for_more() {
        let sink = Sink::default();
        let (mut writer, _guard) = batched(sink.clone());
        writer.write_all(b"alone\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the line never came");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(sink.0.lock().unwrap().as_slice(), b"alone\n");
    }

    #[test]
    fn a_broken_output_never_blocks_the_callers() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (mut writer, guard) = batched(Broken);
        // Several times the pending limit: returns only if the thread keeps taking.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let line = vec![b'x'; 64 * 1024];
            for _ in 0..(3 * MAX_PENDING / line.len()) {
                writer.write_all(&line).unwrap();
            }
            let _ = done.send(());
        });
        finished
            .recv_timeout(Duration::from_secs(10))
            .expect("a caller waited on a broken output");
        drop(guard);
    }
}

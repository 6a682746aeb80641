//! Where the CPU backends' work starts: on a rayon worker.

/// Runs `work` on one of rayon's worker threads (when there are several), so that the CPU
/// backends' parallel ops split their work between that thread and the other workers. Called
/// from the main thread instead, each op wakes the workers from a third, waiting thread: on 2
/// cores with 2 workers a worker then started up to 3 ms late in some ops (conv1 at 96 px,
/// batch 32: 5.0 ms forward against 2.7 ms from a worker). Commands run on one, and `serve`'s
/// model thread runs each pass on one (only while it computes, so that it holds no worker while
/// it waits for requests).
pub fn on_rayon_worker<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    match rayon::current_num_threads() {
        0 | 1 => work(),
        _ => rayon::scope(|_| work()),
    }
}

#[cfg(test)]
mod tests {
    use super::on_rayon_worker;

    #[test]
    fn commands_run_on_a_rayon_worker_when_there_are_several() {
        // From a thread outside the pool, as `main` is.
        let worker = std::thread::spawn(|| on_rayon_worker(rayon::current_thread_index))
            .join()
            .unwrap();
        match rayon::current_num_threads() {
            0 | 1 => assert_eq!(worker, None),
            _ => assert!(worker.is_some(), "ran on the calling thread"),
        }
    }
}

//! Where the generator's threads run. An open-loop pacer is only as good as its wake-ups, so on
//! a machine with few cores the pacer, the recorder and an embedded engine must not queue for
//! the same CPU. This module decides, from the CPUs this process may use
//! (`sched_getaffinity`, which honours `taskset` and cgroup cpusets), which CPU each of the
//! generator's threads is pinned to, which CPUs an in-process engine's threads get, and how
//! many shards that engine runs; and it pins threads (Linux `sched_setaffinity`; elsewhere
//! nothing is pinned). It must not pace, send or record anything.
//!
//! The plan, for `n` usable CPUs (`c0 … cn-1`):
//!
//! | n   | pacer | recorder            | engine / target threads | shards |
//! |-----|-------|---------------------|-------------------------|--------|
//! | 1   | —     | —                   | —                       | 1      |
//! | 2   | c0    | c1, nice 10         | c1                      | 1      |
//! | 3   | c0    | c1                  | c2                      | 1      |
//! | ≥ 4 | c0    | c1                  | c2 … cn-1               | n − 2  |
//!
//! Only the pacer's wake-ups are timed: a wake-up that finds its CPU busy is a late batch. So
//! the pacer always has a CPU to itself and spins between ticks (a sleeping vCPU halts, and the
//! hypervisor takes its time waking it). On two CPUs the recorder shares the engine's CPU at a
//! lower priority (nice 10): a shard waking for a batch preempts it instead of waiting out its
//! time slice (milliseconds), and the recorder, whose work is bursty and not timed, runs in the
//! gaps (against a target outside the process it keeps its priority). Against a target outside
//! the process the engine column is unused (a network
//! target's client threads are not pinned).

use std::io;

/// Which CPU each thread of a run is pinned to (`None`: not pinned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub pacer_cpu: Option<usize>,
    pub recorder_cpu: Option<usize>,
    /// CPUs the embedded engine's threads may run on (empty: wherever the scheduler likes).
    pub engine_cpus: Vec<usize>,
    /// Shards an embedded engine runs by default.
    pub inproc_shards: usize,
    /// No other thread of the run is pinned to the pacer's CPU: it may spin between ticks.
    pub pacer_alone: bool,
    /// The recorder runs at nice `RECORDER_NICE` (it shares the engine's CPU).
    pub recorder_lowered: bool,
}

impl Placement {
    /// The plan for the CPUs this process may use (see the module's table).
    pub fn for_this_machine(engine_in_process: bool) -> Placement {
        Placement::for_cpus(&usable_cpus(), engine_in_process)
    }

    /// The plan for a given set of usable CPUs.
    pub fn for_cpus(cpus: &[usize], engine_in_process: bool) -> Placement {
        let engine_cpus: Vec<usize> = match cpus.len() {
            0 | 1 => Vec::new(),
            2 => vec![cpus[1]],
            _ => cpus[2..].to_vec(),
        };
        let inproc_shards = engine_cpus.len().max(1);
        if cpus.len() < 2 {
            return Placement {
                pacer_cpu: None,
                recorder_cpu: None,
                engine_cpus,
                inproc_shards,
                pacer_alone: false,
                recorder_lowered: false,
            };
        }
        let shares = cpus.len() == 2;
        Placement {
            pacer_cpu: Some(cpus[0]),
            recorder_cpu: Some(cpus[1]),
            engine_cpus: if engine_in_process {
                engine_cpus
            } else {
                Vec::new()
            },
            inproc_shards,
            pacer_alone: true,
            recorder_lowered: shares && engine_in_process,
        }
    }
}

/// The CPUs this process may run on, in ascending order (at least one entry).
pub fn usable_cpus() -> Vec<usize> {
    let cpus = affinity::current().unwrap_or_default();
    if !cpus.is_empty() {
        return cpus;
    }
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..n).collect()
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    affinity::set(&[cpu])
}

/// The nice value the recorder takes when it shares the engine's CPU: a shard thread (nice 0)
/// outweighs it ~9 to 1 and preempts it on waking, yet it is never starved the way a
/// `SCHED_IDLE` thread is by any other work on the machine (tried: its backlog grew without
/// bound while a build ran at nice 19).
pub const RECORDER_NICE: i32 = 10;

/// Lowers the calling thread's priority to nice `RECORDER_NICE` (Linux lets a thread lower its
/// own priority without privilege).
pub fn lower_current_thread_priority() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid takes no arguments and cannot fail.
        let tid = unsafe { libc::gettid() };
        // SAFETY: PRIO_PROCESS with a thread id sets that thread's nice value on Linux.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, RECORDER_NICE) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "thread priorities are implemented for Linux only",
    ))
}

/// Runs `start` with the calling thread restricted to `cpus` (threads it spawns inherit that),
/// then restores the thread's previous affinity. Empty `cpus` runs `start` unchanged.
pub fn spawning_on<R>(cpus: &[usize], start: impl FnOnce() -> R) -> R {
    let previous = match (cpus.is_empty(), affinity::current()) {
        (false, Ok(previous)) if affinity::set(cpus).is_ok() => Some(previous),
        _ => None,
    };
    let result = start();
    if let Some(previous) = previous {
        // Restoring a mask the thread had a moment ago cannot be refused.
        let _ = affinity::set(&previous);
    }
    result
}

/// The calling thread's current affinity, to restore after a run.
pub fn current_affinity() -> Option<Vec<usize>> {
    affinity::current().ok().filter(|cpus| !cpus.is_empty())
}

/// Restores an affinity taken with [`current_affinity`].
pub fn restore_affinity(cpus: &[usize]) {
    let _ = affinity::set(cpus);
}

#[cfg(target_os = "linux")]
mod affinity {
    use std::io;

    pub fn current() -> io::Result<Vec<usize>> {
        // SAFETY: cpu_set_t is plain data (all-zero is the empty set); sched_getaffinity writes
        // at most size_of::<cpu_set_t>() bytes into it.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: pid 0 is the calling thread; the pointer and size describe `set`.
        let rc =
            unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let max = libc::CPU_SETSIZE as usize;
        // SAFETY: CPU_ISSET reads `set` at an index below CPU_SETSIZE.
        Ok((0..max)
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect())
    }

    pub fn set(cpus: &[usize]) -> io::Result<()> {
        // SAFETY: as above, an all-zero cpu_set_t is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &cpu in cpus.iter().filter(|&&cpu| cpu < libc::CPU_SETSIZE as usize) {
            // SAFETY: CPU_SET writes `set` at an index below CPU_SETSIZE.
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
        // SAFETY: pid 0 is the calling thread; the pointer and size describe `set`.
        let rc =
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod affinity {
    use std::io;

    pub fn current() -> io::Result<Vec<usize>> {
        Ok(Vec::new())
    }

    pub fn set(_cpus: &[usize]) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "thread pinning is implemented for Linux only",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_cpus_give_the_pacer_one_and_the_recorder_the_engines_idle_time() {
        let p = Placement::for_cpus(&[0, 1], true);
        assert_eq!(p.pacer_cpu, Some(0));
        assert_eq!(p.recorder_cpu, Some(1));
        assert!(p.recorder_lowered && p.pacer_alone);
        assert_eq!(p.engine_cpus, vec![1]);
        assert_eq!(p.inproc_shards, 1);
        let remote = Placement::for_cpus(&[0, 1], false);
        assert!(remote.engine_cpus.is_empty());
        assert!(
            !remote.recorder_lowered,
            "no engine shares the recorder's CPU"
        );
        assert_eq!(remote.pacer_cpu, Some(0));
    }

    #[test]
    fn one_cpu_pins_nothing_and_many_give_the_engine_the_rest() {
        let one = Placement::for_cpus(&[3], true);
        assert_eq!((one.pacer_cpu, one.recorder_cpu), (None, None));
        assert_eq!(one.inproc_shards, 1);
        let eight = Placement::for_cpus(&[0, 1, 2, 3, 4, 5, 6, 7], true);
        assert_eq!(eight.engine_cpus, vec![2, 3, 4, 5, 6, 7]);
        assert_eq!(eight.inproc_shards, 6);
        let three = Placement::for_cpus(&[4, 6, 9], true);
        assert_eq!(three.pacer_cpu, Some(4));
        assert_eq!(three.recorder_cpu, Some(6));
        assert!(three.pacer_alone && !three.recorder_lowered);
        assert_eq!(three.engine_cpus, vec![9]);
    }

    #[test]
    fn spawned_threads_inherit_the_engine_cpus_and_the_caller_is_restored() {
        let before = current_affinity();
        let cpus = usable_cpus();
        let last = *cpus.last().expect("at least one usable CPU");
        let inside = spawning_on(&[last], || {
            std::thread::spawn(current_affinity)
                .join()
                .expect("probe thread")
        });
        assert_eq!(current_affinity(), before);
        if cfg!(target_os = "linux") {
            assert_eq!(inside, Some(vec![last]));
        }
    }
}

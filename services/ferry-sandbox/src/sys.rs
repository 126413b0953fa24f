//! The crate's only `unsafe`: choosing exactly which file descriptors cross `exec` into `bwrap` or the job,
//! putting a job in its cgroup, mounting a root worker's job scratch, and binding a job to its CPUs.
//!
//! Two problems, one hook run in the forked child just before `exec`:
//! - A descriptor the worker inherited without close-on-exec (cargo's jobserver pipe under `cargo test`, a
//!   log file a shell redirected, a socket from the service manager) would otherwise pass through `bwrap`
//!   into the job, which could use it to reach outside the sandbox. So every descriptor above 2 is marked
//!   close-on-exec first.
//! - The job directory, the script, the inputs and bwrap's control pipes must reach `bwrap` as open
//!   descriptors. Clearing close-on-exec on them in the parent would leak them into processes that other
//!   threads spawn meanwhile (another job's sandbox, which would then hold this job's host directory), so
//!   it is cleared here, in the child, for exactly those.

#![allow(unsafe_code)]

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// `CLOSE_RANGE_CLOEXEC` from `<linux/close_range.h>` (Linux 5.11).
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// Scanned one by one when `close_range` is missing (Linux before 5.11).
const FALLBACK_MAX_FD: RawFd = 65_536;

/// Makes `keep` (and stdin, stdout, stderr) the only descriptors that survive the `exec` of `command`. The
/// caller keeps every fd in `keep` open until the command has been spawned.
pub(crate) fn pass_only(command: &mut Command, keep: Vec<RawFd>) {
    let hook = move || -> std::io::Result<()> {
        // SAFETY: a raw system call with integer arguments; it only sets a flag on descriptors of this
        // (forked, single-threaded) process.
        let marked = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            )
        };
        if marked != 0 {
            for fd in 3..FALLBACK_MAX_FD {
                // SAFETY: as above; EBADF for descriptors that are not open is expected and ignored.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
        for &fd in &keep {
            // SAFETY: as above; `fd` is open (the parent keeps it open until `spawn` returns).
            if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the hook runs between fork and exec, where only async-signal-safe operations are allowed. It
    // iterates over a vector allocated before the fork (no allocation, no lock) and makes only raw
    // `close_range` and `fcntl(F_SETFD)` system calls (`last_os_error` reads errno); it touches no other
    // state of the parent.
    unsafe {
        command.pre_exec(hook);
    }
}

/// Binds the command (and so the whole job) to the first `n` of the CPUs this process may use. The job cannot
/// widen it: seccomp refuses `sched_setaffinity` inside the sandbox.
pub(crate) fn bind_cpus(command: &mut Command, n: u32) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills `allowed` for this thread.
    let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut allowed) }
        != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above, an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let mut taken = 0;
    for cpu in 0..libc::CPU_SETSIZE as usize {
        if taken == n {
            break;
        }
        // SAFETY: `cpu` is below CPU_SETSIZE, the sets' capacity.
        if unsafe { libc::CPU_ISSET(cpu, &allowed) } {
            unsafe { libc::CPU_SET(cpu, &mut set) };
            taken += 1;
        }
    }
    let hook = move || -> std::io::Result<()> {
        // SAFETY: one raw system call on this (forked, single-threaded) process, with a set built before the
        // fork.
        if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the hook makes one async-signal-safe system call and allocates nothing.
    unsafe {
        command.pre_exec(hook);
    }
    Ok(())
}

/// Moves the command's process into the cgroups whose `cgroup.procs` files are `procs` (open for writing; the
/// caller keeps them open until the command has been spawned) before it `exec`s, so that nothing it starts
/// runs outside them. Writing "0" moves the writing process.
pub(crate) fn join_cgroups(command: &mut Command, procs: Vec<RawFd>) {
    let hook = move || -> std::io::Result<()> {
        for &fd in &procs {
            // SAFETY: one raw write of a static one-byte buffer to a descriptor the parent keeps open.
            if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the hook runs between fork and exec; it iterates over a vector allocated before the fork and
    // makes only `write` system calls (async-signal-safe), allocating nothing.
    unsafe {
        command.pre_exec(hook);
    }
}

/// Gives the command (bubblewrap, for a root worker) a private mount namespace of its own, and in it mounts a
/// tmpfs on each `(target, options)`: the job's `/tmp` and `/dev/shm`, with the `nr_inodes` bubblewrap cannot
/// set. The mounts live only in that namespace and go with the job's last process.
pub(crate) fn mount_scratch(
    command: &mut Command,
    mounts: Vec<(std::ffi::CString, std::ffi::CString)>,
) {
    let hook = move || -> std::io::Result<()> {
        // SAFETY: raw system calls with pointers to NUL-terminated strings allocated before the fork (and
        // static ones); they change only this (forked, single-threaded) process's mount namespace.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Nothing mounted here may propagate back to the worker's namespace.
            if libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            for (target, options) in &mounts {
                if libc::mount(
                    c"tmpfs".as_ptr(),
                    target.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    options.as_ptr().cast(),
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        Ok(())
    };
    // SAFETY: the hook runs between fork and exec; it iterates over a vector allocated before the fork and makes
    // only `unshare` and `mount` system calls, allocating nothing.
    unsafe {
        command.pre_exec(hook);
    }
}

//! A small seccomp deny-list, as a classic BPF program that bubblewrap installs (`--seccomp FD`).
//!
//! Namespaces, no capabilities and an unprivileged uid already stop most of what a job could try; this
//! removes the kernel interfaces that privilege-escalation exploits reach for first, and that a data
//! analysis job has no use for: creating user namespaces (which would hand the job capabilities over a
//! fresh namespace, and with them mounts and the networking stack's configuration code), kernel keyrings,
//! BPF, perf events, userfaultfd, io_uring, ptrace and cross-process memory access, and the mount and
//! module calls (which need capabilities anyway), `memfd_create` and System V shared memory (memory that
//! RLIMIT_AS does not count), and sockets of any family but local and IP ([`SOCKET_FAMILIES`]). Everything
//! else is allowed: it is a deny-list, so Python, its threads, `subprocess` and `multiprocessing` work unchanged.
//!
//! The program checks the architecture first: a system call made through another ABI (32-bit `int 0x80`
//! on x86-64) kills the process, and x32 calls are refused, so the numbers below cannot be bypassed.

/// `struct sock_filter`.
#[derive(Clone, Copy)]
struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// `BPF_LD | BPF_W | BPF_ABS` (the first two are 0).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_JMP_JSET_K: u16 = 0x05 | 0x40;
const BPF_RET_K: u16 = 0x06;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;

/// `offsetof(struct seccomp_data, …)`; the low half of the first argument on little-endian machines.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARG0_LOW: u32 = 16;
const OFFSET_ARG2_LOW: u32 = 32;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// System calls refused with `EPERM`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const DENIED: &[libc::c_long] = &[
    libc::SYS_setns,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_syslog,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_open_by_handle_at,
    // Memory no limit counts: a memfd's pages and System V shared memory are not in RLIMIT_AS (a job held
    // 4 GiB with memory_mb = 2048). POSIX shared memory lives in /dev/shm, a tmpfs capped like /tmp.
    libc::SYS_memfd_create,
    libc::SYS_shmget,
    // A job bound to some CPUs (`--cpus`) stays bound.
    libc::SYS_sched_setaffinity,
];

/// The address families a job may open sockets of: local (`AF_UNIX`, which Python's multiprocessing uses) and
/// IP (which reaches nothing: the job's network namespace has no route). Every other family (AF_VSOCK, which
/// a VM's hypervisor answers; AF_PACKET, AF_ALG, AF_BLUETOOTH, ...) is refused with `EAFNOSUPPORT`, as on a
/// kernel built without it; and AF_NETLINK is allowed for `NETLINK_ROUTE` alone (`EPROTONOSUPPORT` for every
/// other netlink protocol), because glibc reads the interface list through it (`if_nameindex`, `getaddrinfo`
/// with `AI_ADDRCONFIG`): in the job's network namespace that list is the loopback, and without capabilities
/// the job can change nothing through it.
const SOCKET_FAMILIES: [u32; 3] = [
    libc::AF_UNIX as u32,
    libc::AF_INET as u32,
    libc::AF_INET6 as u32,
];

/// The filter for this machine, as bytes for `--seccomp`; `None` where it has not been written (the
/// caller then refuses to run: fail closed).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn program() -> Option<Vec<u8>> {
    let jump = |code, k, jt, jf| Insn { code, jt, jf, k };
    let ret = |k| Insn {
        code: BPF_RET_K,
        jt: 0,
        jf: 0,
        k,
    };
    let load = |k| Insn {
        code: BPF_LD_W_ABS,
        jt: 0,
        jf: 0,
        k,
    };
    let eperm = RET_ERRNO | libc::EPERM as u32;
    let mut p = vec![
        load(OFFSET_ARCH),
        jump(BPF_JMP_JEQ_K, AUDIT_ARCH, 1, 0),
        ret(RET_KILL_PROCESS),
        load(OFFSET_NR),
    ];
    if cfg!(target_arch = "x86_64") {
        // x32 system calls are the x86-64 numbers with bit 30 set.
        p.push(jump(BPF_JMP_JGE_K, 0x4000_0000, 0, 1));
        p.push(ret(eperm));
    }
    for &nr in DENIED {
        p.push(jump(BPF_JMP_JEQ_K, nr as u32, 0, 1));
        p.push(ret(eperm));
    }
    // socket and socketpair: only the families of SOCKET_FAMILIES (their first argument), and for socket,
    // AF_NETLINK with protocol NETLINK_ROUTE (its third).
    let no_family = RET_ERRNO | libc::EAFNOSUPPORT as u32;
    let no_protocol = RET_ERRNO | libc::EPROTONOSUPPORT as u32;
    for nr in [libc::SYS_socket, libc::SYS_socketpair] {
        let n = SOCKET_FAMILIES.len() as u8;
        let netlink = nr == libc::SYS_socket;
        // The block after the jump: a load, a check per family, the netlink check (four) for socket, a refusal and
        // an allow.
        let block = n + 3 + if netlink { 4 } else { 0 };
        p.push(jump(BPF_JMP_JEQ_K, nr as u32, 0, block));
        p.push(load(OFFSET_ARG0_LOW));
        for (i, &family) in SOCKET_FAMILIES.iter().enumerate() {
            // Taken: over the remaining checks and the refusal, to the allow.
            let rest = n - 1 - i as u8 + if netlink { 4 } else { 0 };
            p.push(jump(BPF_JMP_JEQ_K, family, rest + 1, 0));
        }
        if netlink {
            // Not netlink: on to the family refusal. Netlink: its protocol must be NETLINK_ROUTE.
            p.push(jump(BPF_JMP_JEQ_K, libc::AF_NETLINK as u32, 0, 3));
            p.push(load(OFFSET_ARG2_LOW));
            p.push(jump(BPF_JMP_JEQ_K, libc::NETLINK_ROUTE as u32, 2, 0));
            p.push(ret(no_protocol));
        }
        p.push(ret(no_family));
        p.push(ret(RET_ALLOW));
    }
    // clone3 takes its flags in a structure the filter cannot read; ENOSYS makes the C library fall back
    // to clone, whose flags it can.
    p.push(jump(BPF_JMP_JEQ_K, libc::SYS_clone3 as u32, 0, 1));
    p.push(ret(RET_ERRNO | libc::ENOSYS as u32));
    // clone and unshare: refused when asked for a new user namespace.
    p.push(jump(BPF_JMP_JEQ_K, libc::SYS_clone as u32, 1, 0));
    p.push(jump(BPF_JMP_JEQ_K, libc::SYS_unshare as u32, 0, 3));
    p.push(load(OFFSET_ARG0_LOW));
    p.push(jump(BPF_JMP_JSET_K, libc::CLONE_NEWUSER as u32, 0, 1));
    p.push(ret(eperm));
    p.push(ret(RET_ALLOW));
    Some(encode(&p))
}

/// See the other `program`.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) fn program() -> Option<Vec<u8>> {
    None
}

/// `struct sock_filter[]` in the machine's byte order.
fn encode(program: &[Insn]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for insn in program {
        bytes.extend_from_slice(&insn.code.to_ne_bytes());
        bytes.push(insn.jt);
        bytes.push(insn.jf);
        bytes.extend_from_slice(&insn.k.to_ne_bytes());
    }
    bytes
}

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests {
    use super::*;

    /// A tiny interpreter for the instructions used above, to check the jumps land where intended.
    fn run(bytes: &[u8], arch: u32, nr: u32, arg0: u32) -> u32 {
        run3(bytes, arch, nr, arg0, 0)
    }

    /// [`run`] with a third argument.
    fn run3(bytes: &[u8], arch: u32, nr: u32, arg0: u32, arg2: u32) -> u32 {
        let insns: Vec<Insn> = bytes
            .chunks(8)
            .map(|c| Insn {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = insns[pc];
            pc += 1;
            match i.code {
                BPF_LD_W_ABS => {
                    acc = match i.k {
                        OFFSET_NR => nr,
                        OFFSET_ARCH => arch,
                        OFFSET_ARG0_LOW => arg0,
                        OFFSET_ARG2_LOW => arg2,
                        other => panic!("load of {other}"),
                    }
                }
                BPF_RET_K => return i.k,
                code => {
                    let taken = match code {
                        BPF_JMP_JEQ_K => acc == i.k,
                        BPF_JMP_JGE_K => acc >= i.k,
                        BPF_JMP_JSET_K => acc & i.k != 0,
                        other => panic!("opcode {other:#x}"),
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
            }
        }
    }

    #[test]
    fn filter_decides_as_documented() {
        let p = program().unwrap();
        let eperm = RET_ERRNO | libc::EPERM as u32;
        let nr = |n: libc::c_long| n as u32;
        let newuser = libc::CLONE_NEWUSER as u32;
        assert_eq!(run(&p, AUDIT_ARCH, nr(libc::SYS_read), 0), RET_ALLOW);
        assert_eq!(run(&p, AUDIT_ARCH, nr(libc::SYS_clone), 0x11), RET_ALLOW);
        assert_eq!(
            run(&p, AUDIT_ARCH, nr(libc::SYS_clone), newuser | 0x11),
            eperm
        );
        assert_eq!(run(&p, AUDIT_ARCH, nr(libc::SYS_unshare), newuser), eperm);
        assert_eq!(
            run(&p, AUDIT_ARCH, nr(libc::SYS_unshare), 0x20000),
            RET_ALLOW
        );
        assert_eq!(
            run(&p, AUDIT_ARCH, nr(libc::SYS_clone3), 0),
            RET_ERRNO | libc::ENOSYS as u32
        );
        for &denied in DENIED {
            assert_eq!(run(&p, AUDIT_ARCH, nr(denied), 0), eperm);
        }
        let no_family = RET_ERRNO | libc::EAFNOSUPPORT as u32;
        for call in [libc::SYS_socket, libc::SYS_socketpair] {
            for family in [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6] {
                assert_eq!(run(&p, AUDIT_ARCH, nr(call), family as u32), RET_ALLOW);
            }
            for family in [
                libc::AF_VSOCK,
                libc::AF_PACKET,
                libc::AF_ALG,
                libc::AF_BLUETOOTH,
                libc::AF_KEY,
            ] {
                assert_eq!(run(&p, AUDIT_ARCH, nr(call), family as u32), no_family);
            }
        }
        let netlink = libc::AF_NETLINK as u32;
        assert_eq!(
            run3(
                &p,
                AUDIT_ARCH,
                nr(libc::SYS_socket),
                netlink,
                libc::NETLINK_ROUTE as u32
            ),
            RET_ALLOW
        );
        for protocol in [
            libc::NETLINK_AUDIT,
            libc::NETLINK_KOBJECT_UEVENT,
            libc::NETLINK_NETFILTER,
        ] {
            assert_eq!(
                run3(
                    &p,
                    AUDIT_ARCH,
                    nr(libc::SYS_socket),
                    netlink,
                    protocol as u32
                ),
                RET_ERRNO | libc::EPROTONOSUPPORT as u32
            );
        }
        assert_eq!(
            run(&p, AUDIT_ARCH, nr(libc::SYS_socketpair), netlink),
            no_family
        );
        assert_eq!(
            run(&p, 0x4000_0003, nr(libc::SYS_read), 0),
            RET_KILL_PROCESS
        );
        if cfg!(target_arch = "x86_64") {
            assert_eq!(
                run(&p, AUDIT_ARCH, 0x4000_0000 | nr(libc::SYS_unshare), 0),
                eperm
            );
        }
    }
}

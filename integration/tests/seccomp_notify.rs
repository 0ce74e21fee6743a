//! SCMP_ACT_NOTIFY: a seccomp agent (a thread of the test) listens on
//! `listenerPath`, receives the listener fd and the container process state
//! over SCM_RIGHTS, and answers the container's syscalls itself.

use integration::*;
use serde_json::{json, Value};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[path = "seccomp_support/mod.rs"]
mod seccomp_support;
use seccomp_support::*;

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct SeccompData {
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Notif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

#[repr(C)]
#[derive(Default)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

// _IOWR('!', 0, struct seccomp_notif) and _IOWR('!', 1, struct seccomp_notif_resp)
const NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const NOTIF_SEND: libc::c_ulong = 0xc018_2101;
const USER_NOTIF_FLAG_CONTINUE: u32 = 1;
const NR_MKDIR: i32 = 83;
const NR_MKDIRAT: i32 = 258;

/// How the agent answers the n-th mkdir it sees (later ones: the last).
#[derive(Clone, Copy, Debug)]
enum Reply {
    /// The syscall "succeeds" with this value without running.
    Fake(i64),
    /// The syscall fails with this errno.
    Errno(i32),
    /// The kernel runs the syscall.
    Continue,
    /// SIGUSR1 to the caller once the notification is received, then
    /// watch it (see [`signal_and_watch`]); if it still waits, fail the
    /// syscall with this errno.
    SignalThenErrno(i32),
}

/// What the agent got on one connection.
#[derive(Debug, Clone)]
struct Session {
    /// The container process state, as sent.
    msg: Value,
    /// Number of fds that came with it.
    fds: usize,
    /// (pid, syscall nr) of each notification answered.
    seen: Vec<(u32, i32)>,
    /// What [`signal_and_watch`] saw, per SignalThenErrno reply.
    signalled: Vec<Watch>,
}

struct Agent {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Session>>>,
}

impl Agent {
    fn start(dir: &Path, replies: Vec<Reply>) -> Agent {
        let path = dir.join("agent.sock");
        let listener = UnixListener::bind(&path).expect("bind agent socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || serve(listener, replies, s));
        Agent {
            path,
            stop,
            handle: Some(handle),
        }
    }

    /// Stop serving (once every listener fd hung up, or after a grace
    /// period) and return what was seen.
    fn finish(mut self) -> Vec<Session> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .expect("running")
            .join()
            .expect("agent thread")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Receive the process state and the listener fd from one connection.
fn receive(stream: UnixStream) -> Result<(Value, Vec<OwnedFd>), String> {
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut data = vec![0u8; 65536];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; 16];
    // SAFETY: zeroed msghdr, pointers to live locals.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: msg is valid for recvmsg.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(format!("recvmsg: {}", std::io::Error::last_os_error()));
    }
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let p = libc::CMSG_DATA(c) as *const RawFd;
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(p.add(i))));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    // Read on until the JSON is complete (not to EOF: runc 1.1.5 keeps its
    // end open until it exits).
    let mut all = data[..n as usize].to_vec();
    let v = loop {
        match serde_json::from_slice::<Value>(&all) {
            Ok(v) => break v,
            Err(e) if e.is_eof() => {
                let mut more = [0u8; 4096];
                let k = std::io::Read::read(&mut &stream, &mut more).map_err(|e| e.to_string())?;
                if k == 0 {
                    return Err(format!(
                        "state JSON cut short: {}",
                        String::from_utf8_lossy(&all)
                    ));
                }
                all.extend_from_slice(&more[..k]);
            }
            Err(e) => {
                return Err(format!(
                    "state JSON: {e}: {}",
                    String::from_utf8_lossy(&all)
                ))
            }
        }
    };
    Ok((v, fds))
}

fn serve(listener: UnixListener, replies: Vec<Reply>, stop: Arc<AtomicBool>) -> Vec<Session> {
    let mut sessions: Vec<Session> = Vec::new();
    let mut open: Vec<(usize, OwnedFd)> = Vec::new();
    let mut mkdirs = 0usize;
    let mut stop_deadline: Option<Instant> = None;
    loop {
        if stop.load(Ordering::SeqCst) {
            let d = *stop_deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(5));
            if open.is_empty() || Instant::now() > d {
                break;
            }
        }
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).expect("blocking");
                match receive(s) {
                    Ok((msg, mut fds)) => {
                        let count = fds.len();
                        if let Some(fd) = fds.drain(..).next() {
                            open.push((sessions.len(), fd));
                        }
                        sessions.push(Session {
                            msg,
                            fds: count,
                            seen: Vec::new(),
                            signalled: Vec::new(),
                        });
                    }
                    Err(e) => sessions.push(Session {
                        msg: json!({ "error": e }),
                        fds: 0,
                        seen: Vec::new(),
                        signalled: Vec::new(),
                    }),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("agent accept: {e}"),
        }
        let mut pfds: Vec<libc::pollfd> = open
            .iter()
            .map(|(_, fd)| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: pfds is a live array of pollfd.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as _, 20) };
        if r <= 0 {
            if pfds.is_empty() {
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        }
        let mut gone = Vec::new();
        for (i, p) in pfds.iter().enumerate() {
            let (sess, fd) = &open[i];
            if p.revents & libc::POLLIN != 0 {
                let mut n = Notif::default();
                // SAFETY: NOTIF_RECV fills a zeroed seccomp_notif.
                if unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_RECV, &mut n) } != 0 {
                    continue; // the task went away (ENOENT) or a signal
                }
                sessions[*sess].seen.push((n.pid, n.data.nr));
                let mut resp = NotifResp {
                    id: n.id,
                    ..Default::default()
                };
                let reply = if n.data.nr == NR_MKDIR || n.data.nr == NR_MKDIRAT {
                    mkdirs += 1;
                    replies
                        .get(mkdirs - 1)
                        .or(replies.last())
                        .copied()
                        .unwrap_or(Reply::Continue)
                } else {
                    Reply::Continue
                };
                match reply {
                    Reply::Fake(v) => resp.val = v,
                    Reply::Errno(e) => resp.error = -e,
                    Reply::Continue => resp.flags = USER_NOTIF_FLAG_CONTINUE,
                    Reply::SignalThenErrno(e) => {
                        let w = signal_and_watch(fd.as_raw_fd(), n.id, n.pid);
                        sessions[*sess].signalled.push(w);
                        if w != Watch::Killable {
                            // Withdrawn: nothing to answer (the kernel
                            // would say ENOENT). Gone: nobody to answer.
                            continue;
                        }
                        resp.error = -e;
                    }
                }
                // SAFETY: NOTIF_SEND reads a seccomp_notif_resp.
                unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_SEND, &resp) };
            } else if p.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                gone.push(i);
            }
        }
        for i in gone.into_iter().rev() {
            open.remove(i);
        }
    }
    sessions
}

// _IOW('!', 2, __u64)
const NOTIF_ID_VALID: libc::c_ulong = 0x4008_2102;

/// What a task did with a SIGUSR1 that came while it waited for the agent's
/// answer to a notification the agent had received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Watch {
    /// It went on waiting, uninterruptibly ("D", the kernel's killable
    /// wait) with the signal pending, and the notification still valid.
    Killable,
    /// The notification is no longer valid: the signal interrupted it.
    Withdrawn,
    /// The process is gone (it returned from the syscall and exited).
    Gone,
    /// None of these within TIMEOUT.
    Timeout,
}

/// Send SIGUSR1 to `pid` (which waits in a notified syscall whose
/// notification `id` the agent has received) and watch, from the kernel's
/// view in /proc, what its wait does. Only /proc is read until the task is
/// seen in D state, so the agent never holds the filter's lock while the
/// task could be taking it.
fn signal_and_watch(fd: RawFd, id: u64, pid: u32) -> Watch {
    let pid = pid as i32;
    // SAFETY: plain kill(2).
    if unsafe { libc::kill(pid, libc::SIGUSR1) } != 0 {
        return Watch::Gone;
    }
    let usr1 = 1u64 << (libc::SIGUSR1 - 1);
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return Watch::Gone;
        };
        // The state follows the ")" that ends the command name.
        let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
        if matches!(state, Some('Z' | 'X')) {
            return Watch::Gone;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let pending = status.lines().any(|l| {
            (l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
                && l.split_whitespace()
                    .nth(1)
                    .and_then(|h| u64::from_str_radix(h, 16).ok())
                    .is_some_and(|m| m & usr1 != 0)
        });
        if state == Some('D') && pending {
            // SAFETY: NOTIF_ID_VALID reads a u64.
            let valid = unsafe { libc::ioctl(fd, NOTIF_ID_VALID, &id) } == 0;
            return if valid {
                Watch::Killable
            } else {
                Watch::Withdrawn
            };
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Watch::Timeout
}

fn notify_profile(agent: &Agent, names: &[&str]) -> Value {
    let mut p = profile(
        "SCMP_ACT_ALLOW",
        json!([{"names": names, "action": "SCMP_ACT_NOTIFY"}]),
    );
    p["listenerPath"] = json!(agent.path);
    p["listenerMetadata"] = json!("oxit-meta");
    p
}

/// The message's fixed parts, for a container `id` in `bundle`.
fn check_message(s: &Session, id: &str, bundle: &Path) {
    let m = &s.msg;
    assert_eq!(s.fds, 1, "one fd: {m}");
    assert_eq!(m["fds"], json!(["seccompFd"]), "{m}");
    assert!(
        m["ociVersion"].as_str().is_some_and(|v| !v.is_empty()),
        "{m}"
    );
    assert_eq!(m["metadata"], json!("oxit-meta"), "{m}");
    assert_eq!(m["state"]["id"], json!(id), "{m}");
    let b = std::fs::canonicalize(bundle).expect("bundle");
    assert_eq!(m["state"]["bundle"], json!(b), "{m}");
    assert!(m["pid"].as_i64().is_some_and(|p| p > 1), "{m}");
    assert!(
        ["creating", "created", "running"].contains(&m["state"]["status"].as_str().unwrap_or("")),
        "{m}"
    );
}

/// The agent fakes a successful mkdir (nothing is created), then makes the
/// next one fail with EXDEV; the container sees exactly that. The process
/// state names the container and its init's pid, which is the pid that
/// made the calls.
#[test]
fn agent_answers_the_containers_syscalls() {
    let rt = Runtime::new();
    let agent = Agent::start(
        rt.scratch(),
        vec![Reply::Fake(0), Reply::Errno(libc::EXDEV)],
    );
    let mut b = Bundle::new();
    install_probe(&rt, &b);
    b.config["root"]["readonly"] = json!(false);
    b.set_args(&["/bin/probe", "mkdir", "/tmp/faked", "/tmp/refused"]);
    b.config["linux"]["seccomp"] = notify_profile(&agent, &["mkdir", "mkdirat"]);
    let id = rt.id("scnotify");
    let out = rt.run_ok(&b, &id);
    let sessions = agent.finish();
    let r = results(&out);
    assert_eq!(
        r,
        vec![
            ("mkdir".into(), "ok:0".into()),
            ("exists".into(), "0".into()),
            ("mkdir".into(), "err:18".into()),
            ("exists".into(), "0".into()),
        ],
        "{out}"
    );
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let s = &sessions[0];
    check_message(s, &id, b.path());
    let pid = s.msg["pid"].as_i64().expect("pid");
    assert_eq!(s.msg["state"]["pid"].as_i64(), Some(pid), "{}", s.msg);
    assert_eq!(s.seen.len(), 2, "{s:?}");
    for (p, nr) in &s.seen {
        assert_eq!(*p as i64, pid, "the notifying task is init: {s:?}");
        assert!(*nr == NR_MKDIR || *nr == NR_MKDIRAT);
    }
    rt.assert_no_leftovers(&b, &id);
}

/// TSYNC with NOTIFY needs TSYNC_ESRCH from the runtime (kernel rule).
/// runc 1.1.5 refuses `flags` altogether.
#[test]
fn notify_with_tsync() {
    let rt = Runtime::new();
    let agent = Agent::start(rt.scratch(), vec![Reply::Errno(libc::ENOTDIR)]);
    let mut b = Bundle::new();
    install_probe(&rt, &b);
    b.set_args(&["/bin/probe", "mkdir", "/tmp/x"]);
    let mut p = notify_profile(&agent, &["mkdir", "mkdirat"]);
    p["flags"] = json!(["SECCOMP_FILTER_FLAG_TSYNC"]);
    b.config["linux"]["seccomp"] = p;
    let id = rt.id("scntsync");
    let out = rt.run_ok(&b, &id);
    let sessions = agent.finish();
    assert_eq!(outcome(&out, "mkdir"), "err:20", "{out}");
    assert_eq!(sessions.len(), 1, "{sessions:?}");
}

/// `exec` loads the container's filter too and sends its own state: status
/// running, the container's init pid in `state`, the new process in `pid`.
#[test]
fn exec_processes_are_handed_to_the_agent_too() {
    let rt = Runtime::new();
    let agent = Agent::start(rt.scratch(), vec![Reply::Errno(libc::EROFS)]);
    let mut b = Bundle::new();
    install_probe(&rt, &b);
    b.set_args(&["sleep", "300"]);
    b.config["linux"]["seccomp"] = notify_profile(&agent, &["mkdir", "mkdirat"]);
    let id = rt.id("scnexec");
    rt.create_start(&b, &id);
    let init_pid = rt.state_ok(&id)["pid"].as_i64().expect("pid");
    let out = rt.cmd(&["exec", &id, "/bin/probe", "mkdir", "/tmp/e"]).ok();
    assert_eq!(outcome(&out.stdout, "mkdir"), "err:30", "{}", out.stdout);
    rt.delete(&id, true).ok();
    let sessions = agent.finish();
    assert_eq!(sessions.len(), 2, "init and exec: {sessions:?}");
    let e = &sessions[1];
    check_message(e, &id, b.path());
    assert_eq!(e.msg["state"]["status"], json!("running"), "{}", e.msg);
    assert_eq!(e.msg["state"]["pid"].as_i64(), Some(init_pid), "{}", e.msg);
    let pid = e.msg["pid"].as_i64().expect("pid");
    assert_ne!(pid, init_pid, "{}", e.msg);
    assert_eq!(e.seen.len(), 1, "{e:?}");
    assert_eq!(e.seen[0].0 as i64, pid, "{e:?}");
    assert!(sessions[0].seen.is_empty(), "{sessions:?}");
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn notify_without_listener_path_is_an_error_naming_it() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["seccomp"] = profile(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]),
    );
    let id = rt.id("scnnopath");
    let out = rt.run_with(&b, &id, &[]).fails();
    out.assert_mentions(&["listenerPath"]);
    rt.assert_no_leftovers(&b, &id);
}

/// Nobody listening: an error naming the path, nothing left behind.
#[test]
fn unreachable_listener_is_an_error() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let mut p = profile(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]),
    );
    let path = rt.scratch().join("nobody.sock");
    p["listenerPath"] = json!(path);
    b.config["linux"]["seccomp"] = p;
    let id = rt.id("scnnobody");
    let out = rt.run_with(&b, &id, &[]).fails();
    out.assert_mentions(&["nobody.sock"]);
    rt.assert_no_leftovers(&b, &id);
}

/// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, seen from the kernel: once the
/// agent has received the notification, a SIGUSR1 (handled, so not fatal)
/// leaves the task waiting in the kernel's killable wait with the signal
/// pending, and the agent's answer (EXDEV) is what mkdir returns; the
/// handler runs after. `no_wait_killable_recv_a_signal_interrupts` is the
/// same without the flag.
#[test]
fn wait_killable_recv_keeps_a_received_notification_from_signals() {
    let (out, sessions) = signalled_mkdir(&["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]);
    assert_eq!(sessions[0].signalled, vec![Watch::Killable], "{sessions:?}");
    assert_eq!(outcome(&out, "mkdir"), "err:18", "{out}");
}

/// The probe's mkdir under a NOTIFY filter with `flags`, the agent
/// signalling it (SIGUSR1) once it has the notification and answering
/// EXDEV: the probe's output and the agent's one session (the handler has
/// run once either way; nothing is left).
fn signalled_mkdir(flags: &[&str]) -> (String, Vec<Session>) {
    let rt = Runtime::new();
    let agent = Agent::start(rt.scratch(), vec![Reply::SignalThenErrno(libc::EXDEV)]);
    let mut b = Bundle::new();
    install_probe(&rt, &b);
    b.set_args(&["/bin/probe", "sigmkdir", "/tmp/k"]);
    let mut p = notify_profile(&agent, &["mkdir", "mkdirat"]);
    p["flags"] = json!(flags);
    b.config["linux"]["seccomp"] = p;
    let id = rt.id("scnsig");
    let out = rt.run_ok(&b, &id);
    let sessions = agent.finish();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(outcome(&out, "sigusr1"), "1", "{out}");
    rt.assert_no_leftovers(&b, &id);
    (out, sessions)
}

/// Without the flag the same signal interrupts the wait: the kernel
/// withdraws the notification and mkdir fails with EINTR (the handler has
/// no SA_RESTART). This is what makes the test above able to fail.
#[test]
fn no_wait_killable_recv_a_signal_interrupts() {
    let (out, sessions) = signalled_mkdir(&[]);
    assert_eq!(outcome(&out, "mkdir"), "err:4", "{out}");
    assert_ne!(sessions[0].signalled, vec![Watch::Killable], "{sessions:?}");
}

/// The kernel refuses WAIT_KILLABLE_RECV on a filter without a listener:
/// oxrun says so before anything is made, naming the field.
#[test]
fn wait_killable_recv_without_notify_is_refused_naming_flags() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let mut p = profile(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]),
    );
    p["flags"] = json!(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]);
    b.config["linux"]["seccomp"] = p;
    b.set_args(&["true"]);
    let id = rt.id("scnwkrno");
    let out = rt.create(&b, &id).fails();
    out.assert_mentions(&["linux.seccomp.flags", "SCMP_ACT_NOTIFY"]);
    rt.assert_no_leftovers(&b, &id);
}

//! A workload run as another user never gets diag's terminal, as with sudo's `use_pty`: on
//! root's terminal it could type into root's shell (TIOCSTI) once diag exits. The child starts a
//! new session; where diag's stdin, stdout or stderr is a terminal, the child gets a pty of its
//! own in its place (its controlling terminal), which diag relays; with no terminal among them
//! it has no controlling terminal at all. Redirected fds are left as they were.

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::SigSet;
use nix::sys::termios::{self, SetArg, Termios};
use nix::unistd::Uid;
use std::io::IsTerminal;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// diag's side of the workload's session, made before fork.
pub struct Isolation {
    pty: Option<Pty>,
}

struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
    /// Which of fds 0, 1, 2 are terminals: the child gets the slave there.
    ttys: [bool; 3],
}

/// The child's side: plain fd numbers, so the work done after fork owns nothing of diag's.
#[derive(Clone, Copy)]
pub struct ChildSide {
    slave: Option<RawFd>,
    ttys: [bool; 3],
}

/// One of diag's own stdin, stdout, stderr.
fn std_fd(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: fds 0-2 stay open for diag's whole life.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

fn window_size(fd: BorrowedFd) -> Option<libc::winsize> {
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills a winsize.
    (unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) } == 0).then_some(size)
}

fn set_flag(fd: BorrowedFd, flag: OFlag) -> Result<()> {
    let flags = OFlag::from_bits_retain(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | flag))?;
    Ok(())
}

impl Isolation {
    /// A pty owned by `owner` (the workload's user) when diag has a terminal on fds 0-2.
    pub fn new(owner: Uid) -> Result<Self> {
        let ttys = [
            std::io::stdin().is_terminal(),
            std::io::stdout().is_terminal(),
            std::io::stderr().is_terminal(),
        ];
        let Some(term) = (0..3).find(|&fd| ttys[fd as usize]).map(std_fd) else {
            return Ok(Isolation { pty: None });
        };
        // The workload's terminal starts as diag's looks: same modes, same size.
        let modes = termios::tcgetattr(term).ok();
        let pair = nix::pty::openpty(window_size(term).as_ref(), modes.as_ref())
            .context("allocating a pty for the workload")?;
        for fd in [&pair.master, &pair.slave] {
            fcntl(
                fd.as_raw_fd(),
                FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )?;
        }
        set_flag(pair.master.as_fd(), OFlag::O_NONBLOCK)?;
        // As login and sudo do: the user owns their terminal, so programs that reopen it by name
        // (ttyname) can.
        nix::unistd::fchown(pair.slave.as_raw_fd(), Some(owner), None)
            .context("giving the workload's pty to its user")?;
        Ok(Isolation {
            pty: Some(Pty {
                master: pair.master,
                slave: pair.slave,
                ttys,
            }),
        })
    }

    pub fn child_side(&self) -> ChildSide {
        ChildSide {
            slave: self.pty.as_ref().map(|p| p.slave.as_raw_fd()),
            ttys: self.pty.as_ref().map_or([false; 3], |p| p.ttys),
        }
    }

    /// After fork: relays the pty until the returned [`Relay`] is dropped.
    pub fn relay(self) -> Result<Relay> {
        let Some(Pty {
            master,
            slave,
            ttys,
        }) = self.pty
        else {
            return Ok(Relay::default());
        };
        drop(slave);
        let output = std_fd(
            [1, 2, 0]
                .into_iter()
                .find(|&fd| ttys[fd as usize])
                .unwrap_or(0),
        );
        // Keystrokes go to the workload only while diag is in the terminal's foreground: a
        // background diag reading its terminal would be stopped (SIGTTIN).
        let input = (ttys[0]
            && nix::unistd::tcgetpgrp(std_fd(0)).ok() == Some(nix::unistd::getpgrp()))
        .then(|| std_fd(0));
        let mut relay = Relay::default();
        let (winch_r, winch_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        relay.winch = Some(signal_hook::low_level::pipe::register(
            libc::SIGWINCH,
            winch_w,
        )?);
        let (stop_r, stop_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        relay.stop = Some(stop_w);
        let pump = Pump {
            master,
            input,
            output,
            pty_open: true,
            to_workload: Vec::new(),
            raw: input.map(RawMode::set).transpose()?,
        };
        relay.thread = Some(std::thread::Builder::new().name("pty-relay".into()).spawn(
            move || {
                // Signals are for diag's main thread: its blocking calls must see them.
                let _ = SigSet::all().thread_block();
                pump.run(stop_r, winch_r);
            },
        )?);
        Ok(relay)
    }
}

/// Raw mode on diag's terminal while it lasts: every key (Ctrl-C too) goes to the workload's
/// pty, whose own line discipline handles it.
struct RawMode {
    fd: BorrowedFd<'static>,
    saved: Termios,
}

impl RawMode {
    fn set(fd: BorrowedFd<'static>) -> Result<Self> {
        let saved = termios::tcgetattr(fd).context("reading the terminal's modes")?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSADRAIN, &raw).context("setting the terminal raw")?;
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSADRAIN, &self.saved);
    }
}

impl ChildSide {
    /// In the child, before the policy and the identity: a new session, and the pty as its
    /// controlling terminal in place of diag's terminal fds.
    pub fn enter(self) -> Result<()> {
        nix::unistd::setsid().context("setsid")?;
        if let Some(slave) = self.slave {
            // SAFETY: TIOCSCTTY takes an int; the caller is a session leader without a terminal.
            if unsafe { libc::ioctl(slave, libc::TIOCSCTTY, 0) } != 0 {
                return Err(std::io::Error::last_os_error()).context("TIOCSCTTY");
            }
            for fd in (0..3).filter(|&fd| self.ttys[fd as usize]) {
                nix::unistd::dup2(slave, fd).context("dup2 of the pty")?;
            }
        }
        Ok(())
    }
}

/// The running relay: dropping it (on every way out of the capture, errors included) drains
/// what the workload wrote and waits for the relay to end, which gives diag's terminal its modes
/// back.
#[derive(Default)]
pub struct Relay {
    stop: Option<OwnedFd>,
    thread: Option<std::thread::JoinHandle<()>>,
    winch: Option<signal_hook::SigId>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(id) = self.winch.take() {
            signal_hook::low_level::unregister(id);
        }
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Bytes up to this many are read at a time.
const CHUNK: usize = 4096;

struct Pump {
    /// Kept open until diag stops the relay: closing it would hang up the workload's session.
    master: OwnedFd,
    /// Whether some process still has the pty open (reads on the master fail with EIO once none
    /// has).
    pty_open: bool,
    input: Option<BorrowedFd<'static>>,
    output: BorrowedFd<'static>,
    /// Keystrokes the workload's pty has not taken yet; no more is read until it has (bounded).
    to_workload: Vec<u8>,
    /// Restored when the relay ends, or as soon as the workload has let go of its pty (so
    /// Ctrl-C reaches diag again).
    raw: Option<RawMode>,
}

impl Pump {
    fn run(mut self, stop: OwnedFd, winch: OwnedFd) {
        let mut buf = [0u8; CHUNK];
        loop {
            let mut fds = vec![
                PollFd::new(stop.as_fd(), PollFlags::POLLIN),
                PollFd::new(winch.as_fd(), PollFlags::POLLIN),
            ];
            let master_at = self.pty_open.then(|| {
                let mut events = PollFlags::POLLIN;
                events.set(PollFlags::POLLOUT, !self.to_workload.is_empty());
                fds.push(PollFd::new(self.master.as_fd(), events));
                fds.len() - 1
            });
            let input_at = match (self.input, self.to_workload.is_empty()) {
                (Some(input), true) => {
                    fds.push(PollFd::new(input, PollFlags::POLLIN));
                    Some(fds.len() - 1)
                }
                _ => None,
            };
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                Err(_) => return,
                Ok(_) => {}
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            let is_ready = |at: Option<usize>| at.is_some_and(|i| ready[i]);
            if ready[0] {
                // diag is done: what the workload wrote before it exited is still to be shown.
                self.drain_master(&mut buf);
                return;
            }
            if ready[1] {
                while nix::unistd::read(winch.as_raw_fd(), &mut buf).is_ok_and(|n| n > 0) {}
                if let Some(size) = window_size(self.output) {
                    // SAFETY: TIOCSWINSZ reads a winsize; the kernel signals the pty's
                    // foreground group.
                    unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
                }
            }
            if is_ready(master_at) {
                self.show_output(&mut buf);
                self.feed_workload();
            }
            if is_ready(input_at) {
                match self
                    .input
                    .map(|fd| nix::unistd::read(fd.as_raw_fd(), &mut buf))
                {
                    Some(Ok(0)) | Some(Err(Errno::EIO | Errno::EBADF)) => self.input = None,
                    Some(Ok(n)) => self.to_workload.extend_from_slice(&buf[..n]),
                    _ => {}
                }
            }
        }
    }

    /// Copies what the workload wrote to diag's terminal; once no process has the pty open,
    /// stops relaying and gives diag's terminal its modes back.
    fn show_output(&mut self, buf: &mut [u8]) {
        match nix::unistd::read(self.master.as_raw_fd(), buf) {
            Ok(0) | Err(Errno::EIO) => {
                self.pty_open = false;
                self.input = None;
                self.to_workload.clear();
                self.raw = None;
            }
            Ok(n) => write_all(self.output, &buf[..n]),
            Err(_) => {}
        }
    }

    fn feed_workload(&mut self) {
        if self.to_workload.is_empty() {
            return;
        }
        match nix::unistd::write(&self.master, &self.to_workload) {
            Ok(n) => drop(self.to_workload.drain(..n)),
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(_) => self.to_workload.clear(),
        }
    }

    fn drain_master(&mut self, buf: &mut [u8]) {
        while let Ok(n @ 1..) = nix::unistd::read(self.master.as_raw_fd(), buf) {
            write_all(self.output, &buf[..n]);
        }
    }
}

/// Writes to diag's terminal, giving up on an error (a terminal that went away).
fn write_all(fd: BorrowedFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

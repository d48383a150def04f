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
        let saved = match input {
            Some(fd) => Some(raw_mode(fd)?),
            None => None,
        };
        let mut relay = Relay::default();
        relay.saved = saved;
        let (winch_r, winch_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        relay.winch = Some(signal_hook::low_level::pipe::register(
            libc::SIGWINCH,
            winch_w,
        )?);
        let (stop_r, stop_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        relay.stop = Some(stop_w);
        relay.thread = Some(std::thread::Builder::new().name("pty-relay".into()).spawn(
            move || {
                // Signals are for diag's main thread: its blocking calls must see them.
                let _ = SigSet::all().thread_block();
                Pump {
                    master,
                    input,
                    output,
                    to_workload: Vec::new(),
                }
                .run(stop_r, winch_r);
            },
        )?);
        Ok(relay)
    }
}

/// Raw mode on diag's terminal: every key (Ctrl-C too) goes to the workload's pty, whose own
/// line discipline handles it. Returns the modes to restore.
fn raw_mode(fd: BorrowedFd) -> Result<Termios> {
    let saved = termios::tcgetattr(fd).context("reading the terminal's modes")?;
    let mut raw = saved.clone();
    termios::cfmakeraw(&mut raw);
    termios::tcsetattr(fd, SetArg::TCSADRAIN, &raw).context("setting the terminal raw")?;
    Ok(saved)
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

/// The running relay: dropping it drains what the workload wrote, stops the thread and gives
/// diag's terminal its modes back (on every way out of the capture, errors included).
#[derive(Default)]
pub struct Relay {
    stop: Option<OwnedFd>,
    thread: Option<std::thread::JoinHandle<()>>,
    winch: Option<signal_hook::SigId>,
    saved: Option<Termios>,
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
        if let Some(saved) = &self.saved {
            let _ = termios::tcsetattr(std_fd(0), SetArg::TCSADRAIN, saved);
        }
    }
}

/// Bytes up to this many are read at a time.
const CHUNK: usize = 4096;

struct Pump {
    master: OwnedFd,
    input: Option<BorrowedFd<'static>>,
    output: BorrowedFd<'static>,
    /// Keystrokes the workload's pty has not taken yet; no more is read until it has (bounded).
    to_workload: Vec<u8>,
}

impl Pump {
    fn run(mut self, stop: OwnedFd, winch: OwnedFd) {
        let mut buf = [0u8; CHUNK];
        loop {
            let master_events = if self.to_workload.is_empty() {
                PollFlags::POLLIN
            } else {
                PollFlags::POLLIN | PollFlags::POLLOUT
            };
            let mut fds = vec![
                PollFd::new(self.master.as_fd(), master_events),
                PollFd::new(stop.as_fd(), PollFlags::POLLIN),
                PollFd::new(winch.as_fd(), PollFlags::POLLIN),
            ];
            if let (Some(input), true) = (self.input, self.to_workload.is_empty()) {
                fds.push(PollFd::new(input, PollFlags::POLLIN));
            }
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
            if ready[1] {
                // diag is done: what the workload wrote before it exited is still to be shown.
                self.drain_master(&mut buf);
                return;
            }
            if ready[2] {
                while nix::unistd::read(winch.as_raw_fd(), &mut buf).is_ok_and(|n| n > 0) {}
                if let Some(size) = window_size(self.output) {
                    // SAFETY: TIOCSWINSZ reads a winsize; the kernel signals the pty's
                    // foreground group.
                    unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
                }
            }
            if ready[0] && !self.show_output(&mut buf) {
                return; // every copy of the slave is closed: the workload's tree is gone
            }
            if ready[0] && !self.to_workload.is_empty() {
                match nix::unistd::write(&self.master, &self.to_workload) {
                    Ok(n) => drop(self.to_workload.drain(..n)),
                    Err(Errno::EAGAIN | Errno::EINTR) => {}
                    Err(_) => self.to_workload.clear(),
                }
            }
            if ready.get(3) == Some(&true) {
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

    /// Copies what the workload wrote to diag's terminal; false once the pty is closed.
    fn show_output(&mut self, buf: &mut [u8]) -> bool {
        match nix::unistd::read(self.master.as_raw_fd(), buf) {
            Ok(0) | Err(Errno::EIO) => false,
            Ok(n) => {
                write_all(self.output, &buf[..n]);
                true
            }
            Err(_) => true,
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

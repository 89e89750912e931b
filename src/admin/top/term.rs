//! The terminal of `uvs top`'s live view: ANSI's alternate screen (the
//! shell's screen comes back as it was), the cursor hidden, keys read
//! one at a time without echo; all of it restored when the view ends,
//! however it ends (q, Ctrl-C, an error, a panic: the guard's drop).
//! Plain escape sequences and termios: no curses library is needed for
//! one screen of text.

use rustix::termios::{self, LocalModes, OptionalActions, SpecialCodeIndex, Termios};
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// Enter the alternate screen, hide the cursor.
const ENTER: &str = "\x1b[?1049h\x1b[?25l";
/// Show the cursor, leave the alternate screen.
const LEAVE: &str = "\x1b[?25h\x1b[?1049l";
/// Cursor home, then clear to the end of the screen.
const HOME_CLEAR: &str = "\x1b[H\x1b[J";
/// Ctrl-C as a byte: with ISIG off it arrives as input, not a signal, so
/// the view ends through the guard that restores the terminal.
const CTRL_C: u8 = 3;

/// Whether stdout is a terminal (otherwise: one frame, no escapes).
pub fn is_terminal() -> bool {
    termios::isatty(io::stdout())
}

/// The terminal held by the live view; dropping it gives it back.
pub struct Screen {
    /// stdin's settings before, when stdin is a terminal.
    saved: Option<Termios>,
}

impl Screen {
    /// Takes the terminal: keys unbuffered, unechoed, Ctrl-C as a key.
    pub fn take() -> io::Result<Screen> {
        let stdin = io::stdin();
        let saved = match termios::isatty(&stdin) {
            true => {
                let before = termios::tcgetattr(&stdin)?;
                let mut raw = before.clone();
                raw.local_modes
                    .remove(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG);
                raw.special_codes[SpecialCodeIndex::VMIN] = 1;
                raw.special_codes[SpecialCodeIndex::VTIME] = 0;
                termios::tcsetattr(&stdin, OptionalActions::Now, &raw)?;
                Some(before)
            }
            false => None,
        };
        let s = Screen { saved };
        s.write(ENTER)?;
        Ok(s)
    }

    fn write(&self, text: &str) -> io::Result<()> {
        let mut so = io::stdout().lock();
        so.write_all(text.as_bytes())?;
        so.flush()
    }

    /// Draws a frame over the last one. Lines end in CR LF: the output
    /// side's settings are left alone, whatever they are.
    pub fn draw(&self, text: &str) -> io::Result<()> {
        let mut out = String::with_capacity(text.len() + 64);
        out.push_str(HOME_CLEAR);
        out.push_str(&text.replace('\n', "\r\n"));
        self.write(&out)
    }

    /// Waits `d` for q, Q or Ctrl-C; whether one came (stdin closed
    /// counts as a quit: nobody is left to press q).
    pub fn quit_within(&self, d: Duration) -> bool {
        if self.saved.is_none() {
            std::thread::sleep(d);
            return false;
        }
        let end = Instant::now() + d;
        let stdin = io::stdin();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let mut fds = [rustix::event::PollFd::new(
                &stdin,
                rustix::event::PollFlags::IN,
            )];
            let t = rustix::event::Timespec::try_from(left).unwrap_or_default();
            match rustix::event::poll(&mut fds, Some(&t)) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return true,
            }
            let mut b = [0u8; 16];
            match rustix::io::read(&stdin, &mut b) {
                Ok(0) => return true,
                Ok(n) if b[..n].iter().any(|k| matches!(*k, b'q' | b'Q' | CTRL_C)) => return true,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(_) => return true,
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.write(LEAVE);
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(io::stdin(), OptionalActions::Now, t);
        }
    }
}

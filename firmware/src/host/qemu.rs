//! Booting an emulated board's firmware under QEMU and collecting its report.
//!
//! `-icount shift=0` makes every instruction advance virtual time by 1 ns, so the boards'
//! SysTick (`minstret` on RISC-V, PMCCNTR_EL0 on the Cortex-A55) counts instructions exactly and
//! repeatably. Semihosting carries the report to QEMU's standard output and the firmware's exit
//! status to QEMU's.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::boards::Board;
use super::build::Entry;
use super::parse::{BoardReport, parse};

/// Flags every emulated board gets.
pub const COMMON_FLAGS: &[&str] = &[
    "-nographic",
    "-semihosting-config",
    "enable=on,target=native",
    "-icount",
    "shift=0",
];

/// One finished boot.
#[derive(Debug, Clone)]
pub struct QemuRun {
    /// QEMU's exit status: the firmware's semihosting exit code.
    pub code: Option<i32>,
    /// Everything the firmware printed.
    pub stdout: String,
    /// QEMU's own messages.
    pub stderr: String,
    /// The parsed report.
    pub report: BoardReport,
    /// Wall-clock time of the boot.
    pub wall: Duration,
}

/// Why a board could not be booted.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// The board is real hardware.
    #[error("{0} is not emulated: flash the firmware and use --port")]
    NotEmulated(&'static str),
    /// QEMU is not installed.
    #[error(
        "{program} is not installed; `cargo xtask setup` installs it (QEMU 10 from bookworm-backports, defmt-print with cargo install)"
    )]
    NotInstalled {
        /// Missing binary.
        program: &'static str,
    },
    /// The firmware did not finish in time.
    #[error("{board} did not finish within {seconds} s; output so far:\n{stdout}")]
    Timeout {
        /// Board name.
        board: &'static str,
        /// The limit.
        seconds: u64,
        /// What it printed.
        stdout: String,
    },
    /// QEMU could not be started or read.
    #[error("running {0}: {1}")]
    Io(&'static str, std::io::Error),
}

/// The full QEMU command line for `board` booting `elf`. A user-mode board (the aarch64 Linux
/// harness) gets the suite's files as arguments; firmware has them embedded.
pub fn command_line(
    board: &Board,
    elf: &Path,
    entries: &[Entry],
) -> Result<(&'static str, Vec<String>), QemuError> {
    let emulator = board.emulator.ok_or(QemuError::NotEmulated(board.name))?;
    let mut args: Vec<String> = emulator.machine.iter().map(|s| (*s).to_string()).collect();
    if emulator.user_mode {
        args.push(elf.display().to_string());
        for entry in entries {
            args.push(entry.model.display().to_string());
            args.push(entry.vectors.display().to_string());
        }
    } else {
        args.extend(COMMON_FLAGS.iter().map(|s| (*s).to_string()));
        args.push("-kernel".into());
        args.push(elf.display().to_string());
    }
    Ok((emulator.program, args))
}

/// Boots `elf` on `board` under QEMU, with no standard input and a wall-clock limit.
pub fn boot(
    board: &Board,
    elf: &Path,
    entries: &[Entry],
    timeout: Duration,
) -> Result<QemuRun, QemuError> {
    let (program, args) = command_line(board, elf, entries)?;
    let running = Running::spawn(program, &args)?;
    running.finish(board, timeout, None)
}

/// [`boot`] for a firmware built with [`super::build::build_defmt`]: QEMU's output is defmt
/// frames, decoded with `defmt-print -e ELF` into the same report lines.
pub fn boot_defmt(board: &Board, elf: &Path, timeout: Duration) -> Result<QemuRun, QemuError> {
    let (program, args) = command_line(board, elf, &[])?;
    let running = Running::spawn(program, &args)?;
    running.finish(board, timeout, Some(elf))
}

/// Decodes defmt frames with defmt-print.
fn defmt_print(elf: &Path, frames: &[u8]) -> Result<String, QemuError> {
    let program = "defmt-print";
    let mut child = match Command::new(program)
        .arg("-e")
        .arg(elf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(QemuError::NotInstalled { program });
        }
        Err(e) => return Err(QemuError::Io(program, e)),
    };
    let mut stdin = child
        .stdin
        .take()
        .ok_or(QemuError::Io(program, std::io::Error::other("no stdin")))?;
    let frames = frames.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write as _;
        // Dropping stdin at the end is the EOF that ends defmt-print.
        stdin.write_all(&frames)
    });
    let out = child
        .wait_with_output()
        .map_err(|e| QemuError::Io(program, e))?;
    let _ = writer.join();
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Boots a streaming firmware (built with [`super::build::build_streaming`]) with its UART on a
/// local TCP socket, runs `talk` on the connection, then waits for the firmware to exit.
pub fn boot_streaming<R>(
    board: &Board,
    elf: &Path,
    timeout: Duration,
    talk: impl FnOnce(&mut TcpStream) -> R,
) -> Result<(R, QemuRun), QemuError> {
    let (program, mut args) = command_line(board, elf, &[])?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| QemuError::Io(program, e))?
        .port();
    // QEMU listens and waits for the connection before it starts the core.
    let at = args.len() - 2;
    args.splice(
        at..at,
        [
            "-serial".to_string(),
            format!("tcp:127.0.0.1:{port},server=on,wait=on"),
        ],
    );
    let mut running = Running::spawn(program, &args)?;
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) if running.start.elapsed() > Duration::from_secs(10) => {
                let _ = running.child.kill();
                return Err(QemuError::Io(program, e));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| QemuError::Io(program, e))?;
    let _ = stream.set_nodelay(true);
    let answer = talk(&mut stream);
    drop(stream);
    let run = running.finish(board, timeout, None)?;
    Ok((answer, run))
}

/// A QEMU child whose output pipes are drained on threads, so a chatty firmware cannot block
/// on a full pipe.
struct Running {
    program: &'static str,
    child: Child,
    out: JoinHandle<Vec<u8>>,
    err: JoinHandle<Vec<u8>>,
    start: Instant,
}

impl Running {
    fn spawn(program: &'static str, args: &[String]) -> Result<Self, QemuError> {
        let start = Instant::now();
        let mut child = match Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(QemuError::NotInstalled { program });
            }
            Err(e) => return Err(QemuError::Io(program, e)),
        };
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut bytes);
                }
                bytes
            })
        };
        let out = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        Ok(Self {
            program,
            child,
            out,
            err,
            start,
        })
    }

    /// Waits for the exit (killing the child past `timeout`) and parses the report, decoding it
    /// with defmt-print first if `defmt_elf` names the ELF.
    fn finish(
        mut self,
        board: &Board,
        timeout: Duration,
        defmt_elf: Option<&Path>,
    ) -> Result<QemuRun, QemuError> {
        let status = loop {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(|e| QemuError::Io(self.program, e))?
            {
                break status;
            }
            if self.start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stdout =
                    String::from_utf8_lossy(&self.out.join().unwrap_or_default()).into_owned();
                return Err(QemuError::Timeout {
                    board: board.name,
                    seconds: timeout.as_secs(),
                    stdout,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let raw = self.out.join().unwrap_or_default();
        let stdout = match defmt_elf {
            Some(elf) => defmt_print(elf, &raw)?,
            None => String::from_utf8_lossy(&raw).into_owned(),
        };
        let stderr = String::from_utf8_lossy(&self.err.join().unwrap_or_default()).into_owned();
        let report = parse(&stdout);
        Ok(QemuRun {
            code: status.code(),
            stdout,
            stderr,
            report,
            wall: self.start.elapsed(),
        })
    }
}

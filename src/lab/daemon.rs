//! A `braid edge` or `braid core` process in a lab namespace that the caller stops, kills and
//! starts again at will (the fault bench restarts them): started from a given binary with
//! `--stderr`, its output appended to a log file, extra environment variables (libfaketime),
//! and files bound over others in a mount namespace of its own (a resolv.conf over
//! /etc/resolv.conf, as `ip netns exec` does with /etc/netns/NAME/). Killed on drop.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One daemon process.
pub(crate) struct Daemon {
    pub(crate) log: PathBuf,
    child: Option<Child>,
}

/// How to start a daemon: `exe ROLE --config CONFIG --stderr ARGS..` in namespace `ns`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Start {
    pub(crate) exe: PathBuf,
    pub(crate) ns: String,
    pub(crate) role: String,
    pub(crate) config: PathBuf,
    pub(crate) log: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    /// (file, over): `file` bound over `over` for this process only.
    pub(crate) binds: Vec<(PathBuf, PathBuf)>,
}

impl Daemon {
    pub(crate) fn start(s: &Start) -> io::Result<Daemon> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&s.log)?;
        let nsfile = std::fs::File::open(format!("/run/netns/{}", s.ns))
            .map_err(|e| io::Error::new(e.kind(), format!("namespace {}: {e}", s.ns)))?;
        let nsfd = nsfile.as_raw_fd();
        let cstr = |p: &Path| {
            CString::new(p.as_os_str().as_encoded_bytes())
                .map_err(|_| io::Error::other("a path with a NUL byte"))
        };
        let binds = s
            .binds
            .iter()
            .map(|(a, b)| Ok((cstr(a)?, cstr(b)?)))
            .collect::<io::Result<Vec<(CString, CString)>>>()?;
        let mut cmd = Command::new(&s.exe);
        cmd.args([s.role.as_str(), "--config"])
            .arg(&s.config)
            .arg("--stderr")
            .args(&s.args)
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f)
            .envs(s.env.iter().map(|(k, v)| (k, v)));
        // SAFETY: setns(2), unshare(2) and mount(2) are async-signal-safe; the namespace fd stays
        // open in the parent until spawn returns, and the C strings live in the closure.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(nsfd, libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if binds.is_empty() {
                    return Ok(());
                }
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // Mounts made here stay here.
                let flags = libc::MS_REC | libc::MS_PRIVATE;
                let (null, root) = (std::ptr::null(), c"/".as_ptr());
                if libc::mount(null, root, null, flags, std::ptr::null()) != 0 {
                    return Err(io::Error::last_os_error());
                }
                for (from, over) in &binds {
                    let r = libc::mount(
                        from.as_ptr(),
                        over.as_ptr(),
                        null,
                        libc::MS_BIND,
                        std::ptr::null(),
                    );
                    if r != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", s.exe.display())))?;
        drop(nsfile);
        Ok(Daemon {
            log: s.log.clone(),
            child: Some(child),
        })
    }

    /// Whether it has exited (reaps it).
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(st)) => {
                self.child = None;
                Some(st)
            }
            _ => None,
        }
    }

    /// SIGTERM, and SIGKILL if it has not exited within `grace`. Whether it exited by itself.
    pub(crate) fn term(&mut self, grace: Duration) -> bool {
        let Some(c) = self.child.as_mut() else {
            return true;
        };
        // Our own child, not yet reaped.
        let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if let Ok(Some(_)) = c.try_wait() {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill9();
        false
    }

    /// SIGKILL and reap.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

//! The daemon side of the control socket ([`crate::control`] holds the protocol, the client
//! and the status types): [`ControlServer`] listens, reads one request per connection and
//! hands it to the event loop as a [`ControlCall`]; what the loop refuses is a
//! [`RequestError`], whose words are the reply's `error` text that `braid` prints.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

use super::RequestError;
use crate::control::{self, Reply, Request};

/// Parses a request as the daemon receives it.
pub(crate) fn parse_request(bytes: &[u8]) -> Result<Request, RequestError> {
    serde_json::from_slice(bytes).map_err(|e| RequestError::Malformed(e.to_string()))
}

/// A request from the control socket, with the channel its reply goes back on.
pub(crate) struct ControlCall {
    pub(crate) request: Request,
    pub(crate) reply: oneshot::Sender<Reply>,
}

/// Listens on the control socket (mode 0600) and forwards each request to the event loop.
/// Removes a stale socket file left by a crash; refuses to start if a daemon answers there, or
/// if the path is anything but a socket (option control_socket is set by whoever may write
/// /etc/config/braid, LuCI logins included: root must not delete a file named there).
pub(crate) struct ControlServer {
    path: PathBuf,
}

impl ControlServer {
    /// The daemon's control socket at `path` (option control_socket), and the calls it
    /// receives (a few wait; more clients wait in turn).
    pub(crate) fn open(
        path: &str,
    ) -> Result<(ControlServer, mpsc::Receiver<ControlCall>), super::Error> {
        let (tx, rx) = mpsc::channel(16);
        let server = ControlServer::bind(Path::new(path), tx).map_err(|err| {
            super::Error::ControlSocket {
                path: path.to_string(),
                err,
            }
        })?;
        Ok((server, rx))
    }

    pub(crate) fn bind(
        path: &Path,
        calls: mpsc::Sender<ControlCall>,
    ) -> std::io::Result<ControlServer> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a socket: not removed (check option control_socket)",
                        path.display()
                    ),
                ));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("another braid answers on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = bind_private(path)?;
        tokio::task::spawn_local(serve(listener, calls));
        Ok(ControlServer {
            path: path.to_owned(),
        })
    }
}

/// Binds a Unix socket at `path` that is never reachable with a mode other than 0600: it is
/// bound in a fresh directory of mode 0700 beside `path`, made 0600 there, then renamed into
/// place (binding at `path` and then changing the mode left a moment when any local user
/// could connect; the umask is process-wide, so not changed here).
fn bind_private(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the control socket path names no file"))?;
    let mut private_name = std::ffi::OsString::from(".");
    private_name.push(name);
    private_name.push(format!(".{}", std::process::id()));
    let private = dir.join(private_name);
    // A leftover of a crashed daemon that had this pid: only ever a directory we made.
    if std::fs::symlink_metadata(&private).is_ok_and(|m| m.is_dir()) {
        let _ = std::fs::remove_file(private.join("s"));
        let _ = std::fs::remove_dir(&private);
    }
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let inner = private.join("s");
    let bound = UnixListener::bind(&inner).and_then(|l| {
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&inner, path)?;
        Ok(l)
    });
    if bound.is_err() {
        let _ = std::fs::remove_file(&inner);
    }
    let _ = std::fs::remove_dir(&private);
    bound
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve(listener: UnixListener, calls: mpsc::Sender<ControlCall>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let calls = calls.clone();
        tokio::task::spawn_local(async move {
            let mut buf = Vec::new();
            let read = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                (&mut stream)
                    .take(control::MAX_MESSAGE as u64)
                    .read_to_end(&mut buf),
            )
            .await;
            let reply = match read {
                Ok(Ok(_)) => match parse_request(&buf) {
                    Ok(request) => {
                        let (tx, rx) = oneshot::channel();
                        if calls
                            .send(ControlCall { request, reply: tx })
                            .await
                            .is_err()
                        {
                            RequestError::Stopping.into()
                        } else {
                            rx.await.unwrap_or_else(|_| RequestError::Stopping.into())
                        }
                    }
                    Err(e) => e.into(),
                },
                _ => RequestError::NotInTime.into(),
            };
            let body = serde_json::to_vec(&reply).expect("replies serialize");
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_command_is_a_bad_request() {
        assert_eq!(parse_request(br#"{"cmd":"reload"}"#), Ok(Request::Reload));
        let e = parse_request(br#"{"cmd":"format-disk"}"#).unwrap_err();
        assert!(matches!(e, RequestError::Malformed(_)), "{e:?}");
        assert!(e.to_string().starts_with("bad request: "), "{e}");
    }

    #[test]
    fn a_control_socket_path_that_is_not_a_socket_is_left_alone() {
        let dir = std::env::temp_dir().join(format!("braid-ctl-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("passwd");
        std::fs::write(&path, "root:x:0:0\n").unwrap();
        let link = dir.join("link.sock");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        crate::daemon::block_on_local(async {
            for p in [&path, &link] {
                let (tx, _rx) = mpsc::channel(4);
                let e = ControlServer::bind(p, tx).err().expect("refused");
                assert!(e.to_string().contains("is not a socket"), "{e}");
            }
        });
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "root:x:0:0\n");
        assert!(std::fs::symlink_metadata(&link).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The socket is never seen at its path with a mode other than 0600 (another thread
    /// watches the path while the socket is made again and again), and nothing else is left.
    #[test]
    fn the_control_socket_is_never_open_to_others() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = std::env::temp_dir().join(format!("braid-ctl-mode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let watcher = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = std::collections::BTreeSet::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(m) = std::fs::symlink_metadata(&path) {
                        seen.insert(m.permissions().mode() & 0o777);
                    }
                }
                seen
            })
        };
        crate::daemon::block_on_local(async {
            for _ in 0..300 {
                let l = bind_private(&path).unwrap();
                drop(l);
                std::fs::remove_file(&path).unwrap();
            }
        });
        stop.store(true, Ordering::Relaxed);
        let seen = watcher.join().unwrap();
        assert!(!seen.is_empty(), "the watcher saw the socket");
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0o600]);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn control_round_trip_over_a_real_socket() {
        let dir = std::env::temp_dir().join(format!("braid-ctl-{}", std::process::id()));
        let path = dir.join("ctl.sock");
        crate::daemon::block_on_local(async {
            let (tx, mut rx) = mpsc::channel(4);
            let server = ControlServer::bind(&path, tx).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "root only");
            let p2 = path.clone();
            let client = tokio::task::spawn_blocking(move || {
                let link = control::request(
                    &p2,
                    &Request::Link {
                        name: "wwan".into(),
                        up: false,
                        device: None,
                    },
                );
                let status = control::request(&p2, &Request::Status);
                (link.map(|r| r.ok), status.map(|r| r.status.unwrap().role))
            });
            for _ in 0..2 {
                let call = rx.recv().await.unwrap();
                let reply = match call.request {
                    Request::Link { name, up, .. } => {
                        assert_eq!((name.as_str(), up), ("wwan", false));
                        Reply::ok()
                    }
                    Request::Status => Reply {
                        status: Some(control::Status {
                            role: "edge".into(),
                            ..Default::default()
                        }),
                        ..Reply::ok()
                    },
                    Request::Reload | Request::Stop => Reply::error("unexpected"),
                };
                call.reply.send(reply).unwrap();
            }
            let (link, status) = client.await.unwrap();
            assert!(link.unwrap());
            assert_eq!(status.unwrap(), "edge");
            // A second daemon on the same socket is refused.
            let (tx2, _rx2) = mpsc::channel(1);
            assert!(ControlServer::bind(&path, tx2).is_err());
            drop(server);
            assert!(!path.exists(), "socket removed on drop");
        });
        let _ = std::fs::remove_dir_all(dir);
    }
}

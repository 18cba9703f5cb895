//! A guest-side test program: listens on vsock (any CID, the port given as the
//! first argument, 1024 by default), prints `listening` on stdout, and echoes
//! every connection back until the peer closes it. Boot tests pack it into a
//! busybox initrd to check the host-guest channel without the agent.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};

fn main() {
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(1024u32);
    let listener = match listen(port) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("vsock-echo: cannot listen on port {port}: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on vsock port {port}");
    loop {
        match accept(&listener) {
            Ok(conn) => echo(std::fs::File::from(conn)),
            Err(e) => eprintln!("vsock-echo: accept: {e}"),
        }
    }
}

fn listen(port: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_vm is plain data; zeroed is a valid starting value.
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    addr.svm_cid = libc::VMADDR_CID_ANY;
    addr.svm_port = port;
    let len = std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t;
    // SAFETY: addr is a valid sockaddr_vm of `len` bytes for the call's duration.
    let rc = unsafe { libc::bind(fd, (&addr as *const libc::sockaddr_vm).cast(), len) };
    // SAFETY: listen on the socket bound above.
    if rc < 0 || unsafe { libc::listen(fd, 8) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sock)
}

fn accept(listener: &OwnedFd) -> std::io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    // SAFETY: accept without peer address on a listening socket we own.
    let fd = unsafe {
        libc::accept(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: accept returned a fresh descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn echo(mut conn: std::fs::File) {
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

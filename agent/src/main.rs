//! The Hull guest agent: PID 1 of a Hull guest, serving the Kata-compatible agent API
//! on vsock.

fn main() {
    eprintln!("hull-agent: the agent server is not built yet");
    std::process::exit(1);
}

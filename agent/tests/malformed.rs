//! Malformed input on the raw socket: each gets the right status or a closed
//! connection, and the agent keeps serving other connections.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{ctx, AgentProcess};
use hull_protocols::health::CheckRequest;
use hull_protocols::protobuf::Message;
use hull_protocols::ttrpc::{Code, Request, Response};

const MAX_PAYLOAD: usize = 4 << 20;
const TYPE_REQUEST: u8 = 1;
const TYPE_RESPONSE: u8 = 2;

fn frame(stream_id: u32, kind: u8, payload: &[u8]) -> Vec<u8> {
    frame_with_len(payload.len() as u32, stream_id, kind, payload)
}

fn frame_with_len(len: u32, stream_id: u32, kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(10 + payload.len());
    bytes.extend(len.to_be_bytes());
    bytes.extend(stream_id.to_be_bytes());
    bytes.push(kind);
    bytes.push(0);
    bytes.extend(payload);
    bytes
}

fn request(service: &str, method: &str, payload: &[u8]) -> Vec<u8> {
    let req = Request {
        service: service.into(),
        method: method.into(),
        payload: payload.to_vec(),
        ..Default::default()
    };
    req.write_to_bytes().unwrap()
}

fn connect(agent: &AgentProcess) -> UnixStream {
    let s = UnixStream::connect(&agent.socket).unwrap();
    // A guard against a hang, not a timing check.
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads one response frame: (stream id, status code, message).
fn read_response(s: &mut UnixStream) -> (u32, Code, String) {
    let mut header = [0u8; 10];
    s.read_exact(&mut header).unwrap();
    let len = u32::from_be_bytes(header[0..4].try_into().unwrap()) as usize;
    let stream_id = u32::from_be_bytes(header[4..8].try_into().unwrap());
    assert_eq!(header[8], TYPE_RESPONSE);
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).unwrap();
    let response = Response::parse_from_bytes(&payload).unwrap();
    let status = response.status();
    (stream_id, status.code(), status.message().to_string())
}

fn call(
    s: &mut UnixStream,
    stream_id: u32,
    service: &str,
    method: &str,
    payload: &[u8],
) -> (u32, Code, String) {
    s.write_all(&frame(
        stream_id,
        TYPE_REQUEST,
        &request(service, method, payload),
    ))
    .unwrap();
    read_response(s)
}

/// The agent still answers Health.Check on a fresh connection.
async fn still_serving(agent: &AgentProcess) {
    let (_, health) = agent.client().await;
    health.check(ctx(), &CheckRequest::new()).await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn oversized_frame_is_invalid_argument_and_connection_goes_on() {
    let agent = AgentProcess::start(&[]);
    let mut s = connect(&agent);
    let body = vec![0u8; MAX_PAYLOAD + 1];
    s.write_all(&frame(1, TYPE_REQUEST, &body)).unwrap();
    let (id, code, message) = read_response(&mut s);
    assert_eq!((id, code), (1, Code::INVALID_ARGUMENT), "{message}");
    let check = CheckRequest::new().write_to_bytes().unwrap();
    let (id, code, _) = call(&mut s, 3, "grpc.Health", "Check", &check);
    assert_eq!((id, code), (3, Code::OK));
    still_serving(&agent).await;
}

#[tokio::test(flavor = "current_thread")]
async fn unknown_service_and_method() {
    let agent = AgentProcess::start(&[]);
    let mut s = connect(&agent);
    let (_, code, message) = call(&mut s, 1, "grpc.NoSuchService", "Check", b"");
    assert_eq!(code, Code::INVALID_ARGUMENT, "{message}");
    let (_, code, message) = call(&mut s, 3, "grpc.AgentService", "NoSuchMethod", b"");
    assert_eq!(code, Code::UNIMPLEMENTED, "{message}");
    still_serving(&agent).await;
}

#[tokio::test(flavor = "current_thread")]
async fn truncated_protobuf_is_invalid_argument() {
    let agent = AgentProcess::start(&[]);
    let mut s = connect(&agent);
    // CopyFileRequest field 1 (path) announces 20 bytes; 3 follow.
    let truncated = [0x0a, 20, b'/', b'r', b'u'];
    let (_, code, message) = call(&mut s, 1, "grpc.AgentService", "CopyFile", &truncated);
    assert_eq!(code, Code::INVALID_ARGUMENT, "{message}");
    assert!(message.contains("CopyFile"), "{message}");
    // A frame whose ttrpc.Request itself is truncated.
    let whole = request("grpc.Health", "Check", b"");
    s.write_all(&frame(3, TYPE_REQUEST, &whole[..whole.len() - 3]))
        .unwrap();
    let (id, code, _) = read_response(&mut s);
    assert_eq!((id, code), (3, Code::INVALID_ARGUMENT));
    still_serving(&agent).await;
}

#[tokio::test(flavor = "current_thread")]
async fn even_stream_ids_and_unknown_frame_types() {
    let agent = AgentProcess::start(&[]);
    let mut s = connect(&agent);
    let check = CheckRequest::new().write_to_bytes().unwrap();
    let (id, code, _) = call(&mut s, 2, "grpc.Health", "Check", &check);
    assert_eq!((id, code), (2, Code::INVALID_ARGUMENT));
    // An unknown frame type is skipped; the connection goes on.
    s.write_all(&frame(5, 9, b"junk")).unwrap();
    let (id, code, _) = call(&mut s, 7, "grpc.Health", "Check", &check);
    assert_eq!((id, code), (7, Code::OK));
}

#[tokio::test(flavor = "current_thread")]
async fn garbage_bytes_do_not_stop_the_agent() {
    let agent = AgentProcess::start(&[]);
    // Text where a header belongs: its "length" is far over the limit.
    let mut s = connect(&agent);
    s.write_all(b"GET / HTTP/1.1\r\nHost: agent\r\n\r\n")
        .unwrap();
    still_serving(&agent).await;
    drop(s);
    // Garbage with a small length: the payload is not a ttrpc.Request.
    let mut s = connect(&agent);
    s.write_all(&frame(1, TYPE_REQUEST, &[0xff; 16])).unwrap();
    let (_, code, _) = read_response(&mut s);
    assert_eq!(code, Code::INVALID_ARGUMENT);
    // A header cut short, then the connection closed.
    let mut s = connect(&agent);
    s.write_all(&[0, 0, 0]).unwrap();
    drop(s);
    still_serving(&agent).await;
}

//! Hardening 5: the connection-level limits. A client that sends headers slowly (slowloris), one that
//! stays idle on a kept-alive connection, and one whose body never arrives are cut off by their
//! deadlines; the connection cap makes extra clients wait, not fail, and never for long.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::TestOp;

async fn start() -> TestOp {
    TestOp::start_with(|c| {
        c.header_read_timeout = 1;
        c.body_read_timeout = 1;
        c.max_connections = 2;
    })
    .await
}

async fn connect(op: &TestOp) -> TcpStream {
    TcpStream::connect(op.nodes[0].trim_start_matches("http://")).await.unwrap()
}

/// Everything the server sends until it closes the connection, or None if it is still open after
/// `patience`.
async fn until_closed(stream: &mut TcpStream, patience: Duration) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(patience, stream.read_to_end(&mut received)).await;
    read.ok().map(|_| String::from_utf8_lossy(&received).into_owned())
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let op = start().await;
    let mut slow = connect(&op).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: op\r\n").await.unwrap();
    assert!(until_closed(&mut slow, Duration::from_secs(10)).await.is_some(), "slowloris connection closed");

    let mut idle = connect(&op).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: op\r\n\r\n").await.unwrap();
    let seen = until_closed(&mut idle, Duration::from_secs(10)).await.expect("idle keep-alive connection closed");
    assert!(seen.starts_with("HTTP/1.1 200"), "the request itself was answered: {seen}");
}

#[tokio::test]
async fn a_body_that_never_arrives_is_408() {
    let op = start().await;
    let mut stream = connect(&op).await;
    let head = "POST /token HTTP/1.1\r\nHost: op\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                Content-Length: 100\r\n\r\ngrant_type=client_cre";
    stream.write_all(head.as_bytes()).await.unwrap();
    let seen = until_closed(&mut stream, Duration::from_secs(10)).await.expect("answered and closed");
    assert!(seen.starts_with("HTTP/1.1 408"), "{seen}");
}

#[tokio::test]
async fn clients_beyond_the_connection_cap_wait_and_are_served() {
    let op = start().await;
    // Two connections that send nothing fill the cap of two…
    let mut hogs = [connect(&op).await, connect(&op).await];
    for hog in &mut hogs {
        hog.write_all(b"GET /heal").await.unwrap();
    }
    // …and a third client is still served once their header deadline has closed them.
    let answered = tokio::time::timeout(Duration::from_secs(10), reqwest::get(op.url("/healthz"))).await;
    assert_eq!(answered.expect("served within the deadlines").unwrap().status(), 200);
    for hog in &mut hogs {
        assert!(until_closed(hog, Duration::from_secs(10)).await.is_some());
    }
}

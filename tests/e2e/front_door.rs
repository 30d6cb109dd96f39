//! The HTTP front door under attack, over raw TCP: bodies refused before
//! they are read, the shared body budget, header and idle timeouts, the
//! connection cap and the bounded shutdown drain. Every test names the
//! attack it answers.

use crate::support::{self, WAIT, World, eventually, payloads};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// One HTTP response as it came off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Reads one response (status line, headers, then a body of its
/// Content-Length), failing the test if none comes within [`WAIT`].
async fn answer(stream: &mut (impl AsyncRead + Unpin)) -> Answer {
    tokio::time::timeout(WAIT, try_answer(stream))
        .await
        .unwrap_or_else(|_| panic!("no response within {WAIT:?}"))
        .unwrap_or_else(|err| panic!("{err}"))
}

/// One response, or why there was none.
async fn try_answer(stream: &mut (impl AsyncRead + Unpin)) -> Result<Answer, String> {
    let mut buf = Vec::new();
    let mut chunk = [0; 4096];
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            other => {
                let got = String::from_utf8_lossy(&buf);
                return Err(format!("closed before a response ({other:?}): {got:?}"));
            }
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    let status = status.ok_or_else(|| format!("not an HTTP response: {head:?}"))?;
    let length = head
        .lines()
        .find_map(|l| {
            let l = l.to_ascii_lowercase();
            l.strip_prefix("content-length:")?.trim().parse().ok()
        })
        .unwrap_or(0);
    let mut body = buf[end..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(n) if n > 0 => body.extend_from_slice(&chunk[..n]),
            other => return Err(format!("closed in a response body ({other:?})")),
        }
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    Ok(Answer { status, head, body })
}

/// Sends a request and reads its answer at once, as a client that gets
/// its answer before it has sent its whole body (the write is then cut
/// off, which is not an error here).
async fn exchange(stream: TcpStream, request: &[u8]) -> Result<Answer, String> {
    let (mut read, mut write) = stream.into_split();
    let (_, got) = tokio::join!(write.write_all(request), try_answer(&mut read));
    got
}

/// Reads until the server closes the connection (an end or a reset),
/// failing the test if it is still open after [`WAIT`]; returns what came.
async fn until_closed(stream: &mut TcpStream) -> String {
    let read = async {
        let mut got = Vec::new();
        let mut chunk = [0; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return String::from_utf8_lossy(&got).into_owned(),
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .unwrap_or_else(|_| panic!("connection still open after {WAIT:?}"))
}

/// A `POST /webhook` head with these headers and a declared body length.
fn post_head(headers: &[(&str, String)], content_length: usize) -> Vec<u8> {
    let mut head = format!(
        "POST /webhook HTTP/1.1\r\nhost: pullstack\r\ncontent-length: {content_length}\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: pullstack\r\n\r\n";

/// Attack: uploads that declare a gigabyte and never finish, sent to make
/// the server hold memory before it can tell they are not GitHub's. Each is
/// answered while the client has sent only a few bytes of its body.
#[tokio::test]
async fn refused_before_the_body_is_read() {
    let mut world = World::new("door-huge", "").await;
    world.start().await;
    let cases = [
        // A signature of the right form: only the size gives it away.
        (Some(format!("sha256={}", "0".repeat(64))), 413, "25 MB"),
        (None, 401, "missing X-Hub-Signature-256"),
    ];
    for (signature, status, reason) in cases {
        let mut stream = TcpStream::connect(world.addr()).await.unwrap();
        let mut headers = vec![("x-github-event", "push".to_owned())];
        headers.extend(signature.map(|s| ("x-hub-signature-256", s)));
        stream
            .write_all(&post_head(&headers, 1 << 30))
            .await
            .unwrap();
        stream.write_all(b"{\"ref\": \"refs/heads/").await.unwrap();
        let got = answer(&mut stream).await;
        assert_eq!(got.status, status, "{got:?}");
        assert!(got.body.contains(reason), "{got:?}");
    }
}

/// Attack: a signature header that can never match, sent to make the server
/// read and hash a body anyway. Refused on the header alone.
#[tokio::test]
async fn a_malformed_signature_is_refused_before_the_body() {
    let mut world = World::new("door-sig", "").await;
    world.start().await;
    for signature in [
        "sha256=zz".to_owned(),
        format!("sha256={}", "a".repeat(63)),
        format!("sha1={}", "a".repeat(40)),
    ] {
        let mut stream = TcpStream::connect(world.addr()).await.unwrap();
        let headers = [
            ("x-github-event", "push".to_owned()),
            ("x-hub-signature-256", signature.clone()),
        ];
        stream
            .write_all(&post_head(&headers, 1 << 20))
            .await
            .unwrap();
        stream.write_all(b"{\"ref\"").await.unwrap();
        let got = answer(&mut stream).await;
        assert_eq!(got.status, 401, "{signature}: {got:?}");
        assert!(got.body.contains("64 hex digits"), "{signature}: {got:?}");
    }
}

/// Attack: many concurrent uploads that stall halfway through their bodies,
/// to pin the server's memory. Past the shared budget they are told to come
/// back later, a normal delivery still lands, and the budget is whole again
/// once the stalled clients leave.
#[tokio::test]
async fn uploads_beyond_the_body_budget_are_told_to_retry() {
    const KIB: usize = 1024;
    let mut world = World::new("door-budget", "").await;
    world.http_limits.body_memory = 1024 * KIB;
    world.start().await;

    // Six uploads of 600 KiB stall after 400 KiB: two at most fit, so four
    // or more must be refused.
    let body = payloads::pad_to(
        payloads::fixture("rust-lang-bors/pull-request-opened.json"),
        600 * KIB,
    );
    let headers = payloads::delivery_headers("pull_request", support::SECRET.as_bytes(), &body);
    let (answers, mut answered) = mpsc::unbounded_channel();
    let mut stalled = Vec::new();
    for _ in 0..6 {
        let stream = TcpStream::connect(world.addr()).await.unwrap();
        let mut request = post_head(&headers, body.len());
        request.extend_from_slice(&body[..400 * KIB]);
        let answers = answers.clone();
        stalled.push(tokio::spawn(async move {
            let (mut read, mut write) = stream.into_split();
            // A refused upload may be cut off mid-write; it is answered anyway.
            let (_, got) = tokio::join!(write.write_all(&request), answer(&mut read));
            answers.send(got).unwrap();
            // Stay stalled, the connection open, until the test ends.
            std::future::pending::<()>().await;
        }));
    }
    drop(answers);
    for _ in 0..4 {
        let got = tokio::time::timeout(WAIT, answered.recv())
            .await
            .expect("four uploads answered")
            .expect("an answer");
        assert_eq!(got.status, 503, "{got:?}");
        assert!(
            got.head.to_ascii_lowercase().contains("retry-after: 1"),
            "{got:?}"
        );
    }

    // While the stalled uploads still hold their share, a delivery lands.
    let (status, reply) = world
        .deliver("ping", payloads::fixture("ping/payload.json"))
        .await;
    assert_eq!((status, reply["status"].as_str()), (200, Some("pong")));

    // Once they leave, a delivery that needs almost all of it fits again.
    for upload in stalled {
        upload.abort();
    }
    let large = payloads::pad_to(
        payloads::fixture("rust-lang-bors/pull-request-opened.json"),
        1000 * KIB,
    );
    let headers = payloads::delivery_headers("pull_request", support::SECRET.as_bytes(), &large);
    let mut request = post_head(&headers, large.len());
    request.extend_from_slice(&large);
    let addr = world.addr();
    eventually("the budget is returned", WAIT, || {
        let request = request.clone();
        async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            exchange(stream, &request)
                .await
                .is_ok_and(|a| a.status == 202)
        }
    })
    .await;
}

/// Attack: slowloris, half a header and then silence, to hold connections
/// open forever; and connections kept alive and idle for the same end.
/// Both are closed after the header timeout.
#[tokio::test]
async fn stalled_and_idle_connections_are_closed_after_the_header_timeout() {
    let mut world = World::new("door-slow", "").await;
    world.http_limits.header_timeout = Duration::from_millis(300);
    world.start().await;

    let mut slow = TcpStream::connect(world.addr()).await.unwrap();
    slow.write_all(b"POST /webhook HTTP/1.1\r\nhost: pullstack\r\nx-hub-sig")
        .await
        .unwrap();
    let got = until_closed(&mut slow).await;
    assert!(!got.contains(" 200 "), "{got}");

    let mut idle = TcpStream::connect(world.addr()).await.unwrap();
    idle.write_all(HEALTHZ).await.unwrap();
    assert_eq!(answer(&mut idle).await.status, 200);
    assert_eq!(until_closed(&mut idle).await, "", "closed without a word");
}

/// Attack: more connections than the server has descriptors for, held
/// idle, to starve `accept`. Those over the cap are told so and closed at
/// once; a client already connected is still served, and a freed slot is
/// given to the next client.
#[tokio::test]
async fn connections_over_the_cap_are_refused_while_others_are_served() {
    let mut world = World::new("door-cap", "").await;
    world.http_limits.max_connections = 4;
    world.http_limits.header_timeout = Duration::from_secs(60);
    world.start().await;

    let mut healthy = TcpStream::connect(world.addr()).await.unwrap();
    healthy.write_all(HEALTHZ).await.unwrap();
    assert_eq!(answer(&mut healthy).await.status, 200);
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(world.addr()).await.unwrap());
    }
    // Accepted in the order they connected: this one is the fifth.
    let mut over = TcpStream::connect(world.addr()).await.unwrap();
    let got = until_closed(&mut over).await;
    assert!(got.starts_with("HTTP/1.1 503 "), "{got:?}");
    assert!(
        got.to_ascii_lowercase().contains("retry-after: 1"),
        "{got:?}"
    );

    healthy.write_all(HEALTHZ).await.unwrap();
    assert_eq!(answer(&mut healthy).await.status, 200, "still served");

    drop(idle.pop());
    let addr = world.addr();
    eventually("a freed slot is given out", WAIT, || async move {
        let mut next = TcpStream::connect(addr).await.unwrap();
        next.write_all(HEALTHZ).await.unwrap();
        answer(&mut next).await.status == 200
    })
    .await;
}

/// Attack: a client stuck in the middle of a body, holding shutdown open
/// for as long as it stays. Shutdown drops it once the drain runs out.
#[tokio::test]
async fn shutdown_drops_a_stuck_client_after_the_drain() {
    let mut world = World::new("door-drain", "").await;
    world.http_limits.header_timeout = Duration::from_secs(120);
    world.http_limits.request_timeout = Duration::from_secs(120);
    world.http_limits.shutdown_drain = Duration::from_millis(300);
    world.start().await;

    let body = payloads::fixture("ping/payload.json");
    let mut headers = payloads::delivery_headers("ping", support::SECRET.as_bytes(), &body);
    // The server says `100 Continue` once the handler reads the body: from
    // then on the request is in flight.
    headers.push(("expect", "100-continue".to_owned()));
    let mut stuck = TcpStream::connect(world.addr()).await.unwrap();
    stuck
        .write_all(&post_head(&headers, body.len()))
        .await
        .unwrap();
    assert_eq!(answer(&mut stuck).await.status, 100);
    stuck.write_all(&body[..10]).await.unwrap();

    // Only a guard: without a bounded drain this waits for the client forever.
    tokio::time::timeout(WAIT, world.stop())
        .await
        .expect("shutdown finished within the drain");
    until_closed(&mut stuck).await;
}

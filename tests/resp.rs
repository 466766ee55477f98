//! The Redis-protocol example (`examples/resp_server/`) over real TCP connections: every reply
//! byte-exact, inline commands, pipelining, requests split across reads, and the errors.
//!
//! The example's modules are compiled into this test (`#[path]`) and served by a reactor on a
//! thread of the test, so no binary has to be built first. Where `redis-server` is installed,
//! `replies_match_a_real_redis_server` also sends the same bytes to a real Redis and compares.

#[allow(dead_code)]
#[path = "../examples/resp_server/commands.rs"]
mod commands;
#[allow(dead_code)]
#[path = "../examples/resp_server/num.rs"]
mod num;
#[allow(dead_code)]
#[path = "../examples/resp_server/parse.rs"]
mod parse;
#[allow(dead_code)] // the servers' flag; the handlers use only `peer`
#[path = "../examples/common/proxy.rs"]
mod proxy;
#[allow(dead_code)]
#[path = "../examples/resp_server/reply.rs"]
mod reply;
#[path = "../examples/resp_server/session.rs"]
mod session;
mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;

use sockloop::ListenOptions;

use session::Session;
use util::{assert_eof, client, read_exactly, read_to_eof, spawn_reactor, ReactorThread, TIMEOUT};

/// Serves the example's handler on 127.0.0.1:0 with `options`.
fn start_with(options: ListenOptions) -> (SocketAddr, ReactorThread) {
    spawn_reactor(move |reactor| {
        let shared = session::shared();
        reactor
            .listen_with(util::localhost(), options, move || {
                Session::new(Rc::clone(&shared))
            })
            .expect("listen")
            .1
    })
}

/// The example's own limits (see its `main.rs`).
fn start() -> (SocketAddr, ReactorThread) {
    start_with(ListenOptions::new().max_input(1 << 30).max_output(1 << 30))
}

/// A RESP2 multibulk request.
fn req(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Sends `request` and asserts the next bytes are exactly `reply`.
#[track_caller]
fn exchange(stream: &mut TcpStream, request: &[u8], reply: &[u8]) {
    stream.write_all(request).unwrap();
    let got = read_exactly(stream, reply.len());
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(reply),
        "reply to {:?}",
        String::from_utf8_lossy(request)
    );
}

#[test]
fn every_command_replies_byte_exact() {
    let (addr, _server) = start();
    let mut c = client(addr);
    let script: &[(&[&[u8]], &[u8])] = &[
        (&[b"PING"], b"+PONG\r\n"),
        (&[b"ping", b"hello"], b"$5\r\nhello\r\n"),
        (&[b"ECHO", b""], b"$0\r\n\r\n"),
        (&[b"echo", b"a\r\nb"], b"$4\r\na\r\nb\r\n"),
        (&[b"GET", b"k"], b"$-1\r\n"),
        (&[b"SET", b"k", b"v1"], b"+OK\r\n"),
        (&[b"GET", b"k"], b"$2\r\nv1\r\n"),
        (&[b"set", b"k", b"v2", b"NX"], b"$-1\r\n"),
        (&[b"SET", b"k", b"v3", b"xx", b"get"], b"$2\r\nv1\r\n"),
        (&[b"SET", b"nokey", b"v", b"XX"], b"$-1\r\n"),
        (
            &[b"SET", b"k", b"v", b"NX", b"XX"],
            b"-ERR syntax error\r\n",
        ),
        (&[b"EXISTS", b"k", b"nokey", b"k"], b":2\r\n"),
        (&[b"INCR", b"n"], b":1\r\n"),
        (&[b"INCR", b"n"], b":2\r\n"),
        (&[b"SET", b"n", b"-10"], b"+OK\r\n"),
        (&[b"INCR", b"n"], b":-9\r\n"),
        (&[b"GET", b"n"], b"$2\r\n-9\r\n"),
        (&[b"DEL", b"k", b"n", b"nokey", b"k"], b":2\r\n"),
        (&[b"EXISTS", b"k"], b":0\r\n"),
        (
            &[b"CONFIG", b"GET", b"save"],
            b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n",
        ),
        (&[b"config", b"get", b"nosuch"], b"*0\r\n"),
    ];
    for (args, reply) in script {
        exchange(&mut c, &req(args), reply);
    }
}

#[test]
fn incr_refuses_what_redis_refuses() {
    let (addr, _server) = start();
    let mut c = client(addr);
    const NOT_INT: &[u8] = b"-ERR value is not an integer or out of range\r\n";
    for value in [
        &b"abc"[..],
        b"",
        b"01",
        b"+1",
        b" 1",
        b"-0",
        b"1.5",
        b"99999999999999999999",
    ] {
        exchange(&mut c, &req(&[b"SET", b"x", value]), b"+OK\r\n");
        exchange(&mut c, &req(&[b"INCR", b"x"]), NOT_INT);
        // A refused INCR leaves the value as it was.
        let mut kept = format!("${}\r\n", value.len()).into_bytes();
        kept.extend_from_slice(value);
        kept.extend_from_slice(b"\r\n");
        exchange(&mut c, &req(&[b"GET", b"x"]), &kept);
    }
    exchange(
        &mut c,
        &req(&[b"SET", b"x", b"9223372036854775807"]),
        b"+OK\r\n",
    );
    exchange(
        &mut c,
        &req(&[b"INCR", b"x"]),
        b"-ERR increment or decrement would overflow\r\n",
    );
}

#[test]
fn unknown_commands_and_wrong_arity_are_errors_that_keep_the_connection() {
    let (addr, _server) = start();
    let mut c = client(addr);
    exchange(
        &mut c,
        &req(&[b"FOO"]),
        b"-ERR unknown command 'FOO', with args beginning with: \r\n",
    );
    exchange(
        &mut c,
        &req(&[b"foo", b"a", b"b\r\nc"]),
        b"-ERR unknown command 'foo', with args beginning with: 'a' 'b  c' \r\n",
    );
    // Arguments are quoted until 128 bytes of them were: the second is cut, the third left out.
    let (a, b) = (vec![b'a'; 50], vec![b'b'; 100]);
    let mut want = b"-ERR unknown command 'x', with args beginning with: '".to_vec();
    want.extend_from_slice(&a);
    want.extend_from_slice(b"' '");
    want.extend_from_slice(&b[..75]);
    want.extend_from_slice(b"' \r\n");
    exchange(&mut c, &req(&[b"x", &a, &b, b"c"]), &want);
    for (args, name) in [
        (&[&b"GET"[..]][..], "get"),
        (&[b"get", b"a", b"b"], "get"),
        (&[b"SET", b"k"], "set"),
        (&[b"INCR"], "incr"),
        (&[b"DEL"], "del"),
        (&[b"EXISTS"], "exists"),
        (&[b"ECHO"], "echo"),
        (&[b"PING", b"a", b"b"], "ping"),
        (&[b"CONFIG", b"GET"], "config|get"),
    ] {
        let want = format!("-ERR wrong number of arguments for '{name}' command\r\n");
        exchange(&mut c, &req(args), want.as_bytes());
    }
    exchange(&mut c, &req(&[b"PING"]), b"+PONG\r\n");
}

#[test]
fn inline_commands_are_answered_like_multibulk_ones() {
    let (addr, _server) = start();
    let mut c = client(addr);
    exchange(&mut c, b"PING\r\n", b"+PONG\r\n");
    exchange(&mut c, b"ping\n", b"+PONG\r\n"); // a bare LF, as `nc` without -C sends
    exchange(&mut c, b"\r\n  \r\nPING\r\n", b"+PONG\r\n"); // empty lines are skipped
    exchange(&mut c, b"SET greeting \"hello world\"\r\n", b"+OK\r\n");
    exchange(&mut c, b"GET greeting\r\n", b"$11\r\nhello world\r\n");
    exchange(
        &mut c,
        b"ECHO \"\\x41\\tB\" 'it\\'s'\r\n",
        b"-ERR wrong number of arguments for 'echo' command\r\n",
    );
    exchange(&mut c, b"ECHO \"\\x41\\tB\"\r\n", b"$3\r\nA\tB\r\n");
    exchange(&mut c, b"EXISTS greeting greeting nope\r\n", b":2\r\n");
}

#[test]
fn pipeline_of_100_commands_in_one_write_is_answered_in_order() {
    let (addr, _server) = start();
    let mut c = client(addr);
    let (mut request, mut want) = (Vec::new(), Vec::new());
    for i in 0..100 {
        let key = format!("key{}", i % 7);
        match i % 4 {
            0 => {
                request.extend(req(&[b"INCR", key.as_bytes()]));
                want.extend(format!(":{}\r\n", i / 28 + 1).as_bytes());
            }
            1 => {
                // Inline, mid-pipeline, about the key the previous command created.
                request.extend(format!("EXISTS key{}\r\n", (i - 1) % 7).as_bytes());
                want.extend(b":1\r\n");
            }
            2 => {
                request.extend(req(&[b"ECHO", format!("m{i}").as_bytes()]));
                want.extend(format!("${}\r\nm{i}\r\n", format!("m{i}").len()).as_bytes());
            }
            _ => {
                request.extend(req(&[b"PING"]));
                want.extend(b"+PONG\r\n");
            }
        }
    }
    exchange(&mut c, &request, &want);
}

#[test]
fn request_split_byte_by_byte_is_answered_once_complete() {
    let (addr, _server) = start();
    let mut c = client(addr);
    let mut other = client(addr);
    let request = req(&[b"SET", b"split", b"across many reads"]);
    for &byte in &request {
        c.write_all(&[byte]).unwrap();
        // A round trip on another connection between bytes: the reactor runs iterations, so
        // the bytes arrive in many reads rather than one.
        exchange(&mut other, b"PING\r\n", b"+PONG\r\n");
    }
    for &byte in b"GET split\r\n" {
        c.write_all(&[byte]).unwrap();
        exchange(&mut other, b"PING\r\n", b"+PONG\r\n");
    }
    // Exactly one reply each, and nothing earlier: a premature or repeated one would shift these.
    exchange(
        &mut c,
        b"PING\r\n",
        b"+OK\r\n$17\r\nacross many reads\r\n+PONG\r\n",
    );
}

#[test]
fn big_values_cross_many_reads_intact() {
    let (addr, _server) = start();
    let mut c = client(addr);
    let value = util::pattern(7, 3 << 20);
    let request = req(&[b"SET", b"big", &value]);
    // Written from another thread in uneven chunks while this one waits for the reply.
    let mut writer = c.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        for chunk in request.chunks(100_003) {
            writer.write_all(chunk).unwrap();
        }
    });
    assert_eq!(read_exactly(&mut c, 5), b"+OK\r\n");
    sender.join().unwrap();
    c.write_all(&req(&[b"GET", b"big"])).unwrap();
    let head = format!("${}\r\n", value.len());
    assert_eq!(read_exactly(&mut c, head.len()), head.as_bytes());
    util::assert_bytes_eq(&read_exactly(&mut c, value.len()), &value, "GET big");
    assert_eq!(read_exactly(&mut c, 2), b"\r\n");
}

#[test]
fn request_with_many_arguments_crosses_many_reads() {
    let (addr, _server) = start();
    let mut c = client(addr);
    exchange(&mut c, &req(&[b"SET", b"k7", b"x"]), b"+OK\r\n");
    exchange(&mut c, &req(&[b"SET", b"k49999", b"x"]), b"+OK\r\n");
    // EXISTS k0 ... k49999 (about 590 KB), in uneven chunks: the parser resumes at the next
    // argument each time instead of starting the request over.
    let keys: Vec<Vec<u8>> = (0..50_000).map(|i| format!("k{i}").into_bytes()).collect();
    let mut args: Vec<&[u8]> = vec![b"EXISTS"];
    args.extend(keys.iter().map(Vec::as_slice));
    let request = req(&args);
    let mut writer = c.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        for chunk in request.chunks(9_973) {
            writer.write_all(chunk).unwrap();
        }
    });
    assert_eq!(read_exactly(&mut c, 4), b":2\r\n");
    sender.join().unwrap();
    exchange(&mut c, b"PING\r\n", b"+PONG\r\n");
}

#[test]
fn shared_keyspace_is_seen_by_every_connection() {
    let (addr, _server) = start();
    let (mut a, mut b) = (client(addr), client(addr));
    exchange(&mut a, &req(&[b"SET", b"shared", b"1"]), b"+OK\r\n");
    exchange(&mut b, &req(&[b"INCR", b"shared"]), b":2\r\n");
    exchange(&mut a, &req(&[b"GET", b"shared"]), b"$1\r\n2\r\n");
}

#[test]
fn protocol_errors_are_answered_then_the_connection_closes() {
    let (addr, _server) = start();
    let cases: &[(&[u8], &[u8])] = &[
        (
            b"*x\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n:3\r\n",
            b"-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        (
            b"*1\r\n$-1\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$536870913\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*2\r\n$3\r\nGET\r\n$1\r\nkkk\r\n",
            b"-ERR Protocol error: expected CRLF after a length or bulk\r\n",
        ),
        (
            b"GET \"k\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        // The requests before the bad one are run and answered first; what follows it is not.
        (
            b"PING\r\n*1\r\n$4\r\nPING\r\n*?\r\nPING\r\n",
            b"+PONG\r\n+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n",
        ),
    ];
    for (request, reply) in cases {
        let mut c = client(addr);
        exchange(&mut c, request, reply);
        assert_eof(&mut c);
    }
    let mut c = client(addr);
    c.write_all(&vec![b'x'; 70_000]).unwrap();
    assert_eq!(
        read_to_eof(&mut c),
        b"-ERR Protocol error: too big inline request\r\n"
    );
}

#[test]
fn quit_replies_ok_and_closes() {
    let (addr, _server) = start();
    let mut c = client(addr);
    exchange(&mut c, b"PING\r\nQUIT\r\nPING\r\n", b"+PONG\r\n+OK\r\n");
    assert_eof(&mut c);
}

#[test]
fn unparsed_input_beyond_max_input_resets_the_connection() {
    let (addr, _server) = start_with(ListenOptions::new().max_input(64 * 1024));
    let mut c = client(addr);
    // A bulk announced as 1 MiB can never be parsed within 64 KiB of input.
    c.write_all(b"*2\r\n$4\r\nECHO\r\n$1048576\r\n").unwrap();
    let _ = c.write_all(&vec![b'a'; 200 * 1024]); // may fail: the server resets meanwhile
    let mut buf = [0u8; 64];
    match c.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection to end, got {other:?}"),
    }
    // The server goes on serving others.
    exchange(&mut client(addr), b"PING\r\n", b"+PONG\r\n");
}

// ---------------------------------------------------------------------------------------------
// The same bytes to a real Redis
// ---------------------------------------------------------------------------------------------

/// A `redis-server` listening only on a Unix socket (no port to race for), killed on drop.
struct RealRedis {
    child: Child,
    dir: util::TempDir,
}

impl RealRedis {
    fn start() -> Option<RealRedis> {
        let dir = util::TempDir::new("resp-redis");
        let sock = dir.join("redis.sock");
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--unixsocket",
            ])
            .arg(&sock)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let redis = RealRedis { child, dir };
        util::wait_until("redis-server to accept on its socket", || {
            UnixStream::connect(&sock).is_ok()
        });
        Some(redis)
    }

    /// Sends `request` on a new connection and returns every byte until Redis closes it.
    fn replies(&self, request: &[u8]) -> Vec<u8> {
        let mut s = UnixStream::connect(self.dir.join("redis.sock")).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.write_all(request).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        out
    }
}

impl Drop for RealRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn replies_match_a_real_redis_server() {
    let Some(redis) = RealRedis::start() else {
        eprintln!("skipped: redis-server is not installed (apt-get install redis-server)");
        return;
    };
    let (addr, _server) = start();
    // Each script ends with QUIT or a protocol error, so both servers close and the whole
    // answer is compared. The scripts run in order on both, so both keyspaces stay equal.
    let scripts: Vec<Vec<u8>> = vec![
        [
            req(&[b"PING"]),
            req(&[b"PING", b"x"]),
            req(&[b"ECHO", b"hi"]),
            req(&[b"SET", b"d:k", b"v"]),
            req(&[b"GET", b"d:k"]),
            req(&[b"GET", b"d:none"]),
            req(&[b"SET", b"d:k", b"w", b"NX", b"GET"]),
            req(&[b"SET", b"d:k", b"w", b"XX", b"GET"]),
            req(&[b"SET", b"d:k", b"w", b"NX", b"XX"]),
            req(&[b"SET", b"d:k", b"w", b"bogus"]),
            req(&[b"INCR", b"d:k"]),
            req(&[b"INCR", b"d:n"]),
            req(&[b"SET", b"d:m", b"9223372036854775807"]),
            req(&[b"INCR", b"d:m"]),
            req(&[b"EXISTS", b"d:k", b"d:n", b"d:k", b"d:none"]),
            req(&[b"DEL", b"d:k", b"d:k", b"d:none"]),
            req(&[b"EXISTS"]),
            req(&[b"GET", b"a", b"b"]),
            req(&[b"NOPE", b"a\r\nb", &[b'z'; 200]]),
            req(&[b""]),
            req(&[b"CONFIG", b"BOGUS"]),
            req(&[b"CONFIG", b"GET", b"save"]),
            req(&[b"CONFIG", b"GET", b"APPENDONLY"]),
            req(&[b"CONFIG", b"GET", b"nosuch"]),
            b"*0\r\n*-1\r\n\r\n\n".to_vec(),
            b"PING\r\nSET d:q \"a b\\x41\" \r\nGET d:q\r\nGET 'it\\'s'\nFOO\tx\x0by\r\n".to_vec(),
            b"QUIT\r\nPING\r\n".to_vec(),
        ]
        .concat(),
        b"*x\r\n".to_vec(),
        b"*1\r\n$+4\r\nPING\r\n".to_vec(),
        b"*1\r\n:3\r\n".to_vec(),
        b"*1\r\n$536870913\r\n".to_vec(),
        b"PING\r\nGET \"a\"b\r\n".to_vec(),
        b"*2147483648\r\n".to_vec(),
        vec![b'x'; 70_000],
    ];
    for script in &scripts {
        let mut ours = client(addr);
        ours.write_all(script).unwrap();
        let got = read_to_eof(&mut ours);
        let want = redis.replies(script);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "script {:?}",
            String::from_utf8_lossy(&script[..script.len().min(200)])
        );
    }
}

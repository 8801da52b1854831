//! The server binary as a child process, for the tests that need a real process (kill -9,
//! CPU use at idle): spawn it, wait for its `ready` line, kill it when the test ends.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `flashsale-engine serve`; killed (and reaped) when dropped, so a failing check
/// never leaves a server behind.
pub struct ChildServer {
    pub child: Child,
    /// The TCP address its `ready` line names.
    pub tcp: SocketAddr,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `serve` (a command with its flags, `--tcp 127.0.0.1:0` among them) with its output
/// piped, and waits up to `ready_within` for the `ready … tcp=ADDR` line. Its output keeps being
/// drained after that, so the server never blocks on its log. Panics with everything it
/// printed if it does not become ready.
pub fn spawn_until_ready(mut serve: Command, ready_within: Duration) -> ChildServer {
    let mut child = serve
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the server binary");
    let (sender, receiver) = std::sync::mpsc::channel::<String>();
    let outputs: [Box<dyn std::io::Read + Send>; 2] = [
        Box::new(child.stdout.take().expect("piped stdout")),
        Box::new(child.stderr.take().expect("piped stderr")),
    ];
    for output in outputs {
        let sender = sender.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
    }
    let deadline = Instant::now() + ready_within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = receiver.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not become ready:\n{}", seen.join("\n"));
        };
        if line.contains("ready")
            && let Some(addr) = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("tcp="))
        {
            let tcp = addr.parse().expect("tcp address in the ready line");
            return ChildServer { child, tcp };
        }
        seen.push(line);
    }
}

//! `scorer healthcheck`: asks the server on this machine whether it is ready, over plain
//! HTTP/1.0 on loopback, so that a container image needs no curl for its HEALTHCHECK.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// `Ok(())` when `GET path` on `127.0.0.1:port` answers 200.
pub fn probe(port: u16, path: &str, timeout: Duration) -> Result<(), String> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        TcpStream::connect_timeout(&address, timeout).map_err(|e| format!("cannot connect to {address}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: scorer-healthcheck\r\n\r\n")
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut head = [0u8; 32];
    let read = stream.read(&mut head).map_err(|e| format!("no answer: {e}"))?;
    let status_line = String::from_utf8_lossy(&head[..read]);
    let status = status_line.split_whitespace().nth(1).unwrap_or("none");
    if status == "200" { Ok(()) } else { Err(format!("GET {path} answered {status}")) }
}
